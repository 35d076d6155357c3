using XenSharp.Panel.Data;
using XenSharp.Panel.Xld;

namespace XenSharp.Panel.Services;

/// <summary>
/// Polls every host's <c>list</c> on a timer and stores one sample per VPS (CPU seconds, memory, running) for the
/// graphs, and feeds the traffic accounting. Hosts are polled one after another: a panel has few hosts, many VPSes.
/// </summary>
public sealed class Sampler(Store store, XldClients xld, TrafficAccounting traffic, IConfiguration config, ILogger<Sampler> log) : BackgroundService
{
    public TimeSpan Interval { get; } = TimeSpan.FromSeconds(config.GetValue("Panel:SampleSeconds", 10.0));

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Interval);
        do
        {
            try { await SampleOnceAsync(ct); }
            catch (Exception e) when (e is not OperationCanceledException) { log.LogWarning(e, "sampling failed"); }
        } while (await timer.WaitForNextTickAsync(ct));
    }

    public async Task SampleOnceAsync(CancellationToken ct)
    {
        foreach (var host in store.ListHosts())
        {
            var vpses = store.VpsOnHost(host.Id);
            if (vpses.Count == 0) continue;
            List<XldDomain> domains;
            try { domains = await xld.For(host).ListAsync(ct); }
            catch (XldException e) { log.LogDebug("host {Host}: {Error}", host.Name, e.Message); continue; }
            var byName = domains.ToDictionary(d => d.Name);
            store.AddSamples(vpses.Select(v => byName.TryGetValue(v.Name, out var d)
                ? (v.Id, d.CpuSeconds, (long)d.MemoryMiB, true)
                : (v.Id, 0.0, 0L, false)));
            // xld does not report per-vif byte counters yet (no network backend): nothing to add this round.
            foreach (var v in vpses) traffic.Observe(v.Id, rxTotal: null, txTotal: null);
        }
        store.PruneSamples(DateTime.UtcNow.AddDays(-7));
    }
}

/// <summary>
/// Monthly traffic per VPS. Hosts report running byte counters that restart with the domain; this turns them into
/// deltas and adds those to the month's row. Until xld reports counters, every VPS shows 0 used.
/// </summary>
public sealed class TrafficAccounting(Store store)
{
    private readonly Dictionary<long, (long Rx, long Tx)> _last = new();
    private readonly Lock _lock = new();

    public static string MonthOf(DateTime t) => t.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);

    public void Observe(long vpsId, long? rxTotal, long? txTotal)
    {
        if (rxTotal is not { } rx || txTotal is not { } tx) return;
        long drx, dtx;
        lock (_lock)
        {
            var prev = _last.GetValueOrDefault(vpsId);
            // A counter that went down means the domain restarted: count from zero.
            drx = rx >= prev.Rx ? rx - prev.Rx : rx;
            dtx = tx >= prev.Tx ? tx - prev.Tx : tx;
            _last[vpsId] = (rx, tx);
        }
        if (drx > 0 || dtx > 0) store.AddTraffic(vpsId, MonthOf(DateTime.UtcNow), drx, dtx);
    }
}
