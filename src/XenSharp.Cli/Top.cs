using System.Globalization;
using XenSharp.Api;

namespace XenSharp.Cli;

/// <summary>
/// <c>xl top</c>: xentop's table, refreshed every delay. <c>-b</c> prints frames one after another for scripts,
/// <c>-i N</c> stops after N frames, <c>-d S</c> sets the delay. NETS/NETTX/NETRX/VBDS/VBD_RD/VBD_WR come from xld's
/// <c>stats</c> (the per-vif/vbd counters of network-list/block-list): NETTX/NETRX in KiB sent/received by the
/// guest, VBD_RD/VBD_WR in requests, as xentop counts them.
/// </summary>
public static class Top
{
    public static async Task<int> RunAsync(XldClient xld, string[] a, TextWriter stdout)
    {
        bool batch = Console.IsOutputRedirected;
        int iterations = int.MaxValue;
        double delay = 3;
        for (int i = 0; i < a.Length; i++)
        {
            string Value() => i + 1 < a.Length ? a[++i] : throw new UsageException($"xl top: {a[i]} needs a value");
            switch (a[i])
            {
                case "-b" or "--batch": batch = true; break;
                case "-i" or "--iterations": iterations = int.TryParse(Value(), out int n) && n > 0 ? n : throw new UsageException("xl top: -i needs a positive number"); break;
                case "-d" or "--delay": delay = double.TryParse(Value(), CultureInfo.InvariantCulture, out double d) && d > 0 ? d : throw new UsageException("xl top: -d needs a positive number of seconds"); break;
                default: throw new UsageException("Usage: xl top [-b] [-i iterations] [-d delay]");
            }
        }
        var info = await xld.CallAsync<HostInfo>("info");
        Dictionary<uint, (double Cpu, DateTime At)> last = new();
        for (int frame = 0; frame < iterations; frame++)
        {
            if (frame > 0) await Task.Delay(TimeSpan.FromSeconds(delay));
            var rows = await xld.CallAsync<DomainSummary[]>("list");
            var stats = (await xld.CallAsync<DomainStats[]>("stats")).ToDictionary(x => x.Id);
            var now = DateTime.UtcNow;
            if (!batch) stdout.Write("\u001b[H\u001b[2J");
            stdout.WriteLine($"xl top - {DateTime.Now:HH:mm:ss}   XenSharp {info.XenVersion} ({info.Accelerator})");
            stdout.WriteLine($"{rows.Length} domains: {rows.Count(r => r.State.Contains('r'))} running, {rows.Count(r => r.State.Contains('b'))} blocked, " +
                $"{rows.Count(r => r.State.Contains('p'))} paused, {rows.Count(r => r.State.Contains('c'))} crashed, {rows.Count(r => r.State.Contains('s'))} shutdown");
            stdout.WriteLine($"Mem: {info.TotalMemoryMiB * 1024}k total, {(await xld.CallAsync<HostInfo>("info")).FreeMemoryMiB * 1024}k free    CPUs: {info.NrCpus} @ {info.CpuMhz}MHz");
            stdout.WriteLine(Header);
            foreach (var r in rows)
            {
                double pct = last.TryGetValue(r.Id, out var prev) && now > prev.At ? 100 * (r.CpuSeconds - prev.Cpu) / (now - prev.At).TotalSeconds : 0;
                last[r.Id] = (r.CpuSeconds, now);
                stdout.WriteLine(FormatRow(r, Math.Max(0, pct), info.TotalMemoryMiB, stats.GetValueOrDefault(r.Id)));
            }
            if (batch) stdout.WriteLine();
            await stdout.FlushAsync();
        }
        return 0;
    }

    public const string Header = "      NAME  STATE   CPU(sec) CPU(%)     MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS NETTX(k) NETRX(k) VBDS   VBD_OO   VBD_RD   VBD_WR";

    public static string FormatRow(DomainSummary r, double cpuPercent, ulong hostMiB, DomainStats? io = null) => string.Format(CultureInfo.InvariantCulture,
        "{0,10} {1,6} {2,10:F0} {3,6:F1} {4,10} {5,6:F1} {6,10} {7,9:F1} {8,5} {9,4} {10,8} {11,8} {12,4} {13,8} {14,8} {15,8}",
        r.Name.Length > 10 ? r.Name[..10] : r.Name, r.State, r.CpuSeconds, cpuPercent, r.MemoryMiB * 1024, 100.0 * r.MemoryMiB / Math.Max(1, hostMiB),
        r.MaxMemoryMiB * 1024, 100.0 * r.MaxMemoryMiB / Math.Max(1, hostMiB), r.Vcpus,
        io?.Nets ?? 0, (io?.NetTxBytes ?? 0) / 1024, (io?.NetRxBytes ?? 0) / 1024, io?.Vbds ?? 0, 0, io?.VbdReadRequests ?? 0, io?.VbdWriteRequests ?? 0);
}
