using XenSharp.Panel.Data;
using XenSharp.Panel.Xld;

namespace XenSharp.Panel.Services;

/// <summary>
/// Polls every host's <c>list</c> and <c>stats</c> on a timer and stores one sample per VPS (CPU seconds, memory,
/// running, and the disk/network byte counters) for the graphs, and feeds the traffic accounting from the same
/// counters. Hosts are polled one after another: a panel has few hosts, many VPSes.
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
            var client = xld.For(host);
            List<XldDomain> domains;
            try { domains = await client.ListAsync(ct); }
            catch (XldException e) { log.LogDebug("host {Host}: {Error}", host.Name, e.Message); continue; }
            // An xld from before the stats command answers "unknown command": CPU and memory graphs still work.
            Dictionary<string, XldStats> stats;
            try { stats = (await client.StatsAsync(ct)).ToDictionary(s => s.Name); }
            catch (XldException e) { log.LogDebug("host {Host}: no stats ({Error})", host.Name, e.Message); stats = new(); }
            var byName = domains.ToDictionary(d => d.Name);
            var rows = vpses.Select(v =>
            {
                if (!byName.TryGetValue(v.Name, out var d)) return (v.Id, 0.0, 0L, false, (IoCounters?)null);
                IoCounters? io = stats.TryGetValue(v.Name, out var s) && s.Id == d.Id
                    ? new IoCounters(s.Id, s.NetRxBytes, s.NetTxBytes, s.VbdReadBytes, s.VbdWriteBytes) : null;
                return (v.Id, d.CpuSeconds, (long)d.MemoryMiB, true, io);
            }).ToList();
            store.AddSamples(rows);
            foreach (var r in rows)
                if (r.Item5 is { } io) traffic.Observe(r.Item1, io.DomId, io.NetRxBytes, io.NetTxBytes);
        }
        store.PruneSamples(DateTime.UtcNow.AddDays(-7));
    }
}

/// <summary>
/// Monthly traffic per VPS from the host's per-vif byte counters. Those are running totals that start again at
/// zero whenever the domain is rebuilt (reboot, restart, boot after a shutdown), which also gives it a new domain id.
/// Each observation adds the growth since the last one to the current month; after a restart (new domain id, or a
/// counter that went down) the new totals are all new traffic. The last counters seen are kept in the database, so
/// a panel restart neither loses nor double-counts traffic of a domain that kept running. Traffic a domain moved
/// after the last sample and before it was rebuilt is not seen (at most one sampling interval's worth).
/// </summary>
public sealed class TrafficAccounting(Store store)
{
    private readonly Lock _lock = new();

    public static string MonthOf(DateTime t) => t.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);

    public void Observe(long vpsId, uint domid, long rxTotal, long txTotal)
    {
        lock (_lock)
        {
            long drx = rxTotal, dtx = txTotal;
            if (store.TrafficCounters(vpsId) is { } prev && prev.DomId == domid && rxTotal >= prev.Rx && txTotal >= prev.Tx)
                (drx, dtx) = (rxTotal - prev.Rx, txTotal - prev.Tx);
            store.RecordTraffic(vpsId, MonthOf(DateTime.UtcNow), drx, dtx, domid, rxTotal, txTotal);
        }
    }
}
