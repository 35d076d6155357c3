namespace XenSharp.Integration.Tests;

/// <summary>Many domains at once, and the daemon gives back everything it took.</summary>
public sealed class ConcurrencyTests : IClassFixture<XldFixture>
{
    private readonly XldFixture _xld;

    public ConcurrencyTests(XldFixture xld) => _xld = xld;

    private static int OpenFds(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    private static string[] FdTargets(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Select(f =>
    {
        try { return new FileInfo(f).LinkTarget ?? "?"; } catch (IOException) { return "gone"; }
    }).Order().ToArray();

    private static long RssKiB(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return 0;
    }

    private static int Threads(int pid) => Directory.GetDirectories($"/proc/{pid}/task").Length;

    [SkippableFact]
    public async Task SixteenDomainsStartTogetherAndLeaveNothingBehind()
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        int pid = _xld.XldProcess.Id;
        // Warm up: one create/destroy so that lazily created runtime state is not counted as a leak.
        var warm = Path.Combine(_xld.Directory, "warm.cfg");
        File.WriteAllText(warm, $"name=\"warm\"\ntype=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory=16\n");
        Assert.Equal(0, _xld.Xl("create", warm).ExitCode);
        Assert.Equal(0, _xld.Xl("list").ExitCode);
        Assert.Equal(0, _xld.Xl("destroy", "warm").ExitCode);
        GC.Collect();
        int fds0 = OpenFds(pid), threads0 = Threads(pid);
        var targets0 = FdTargets(pid);
        long rss0 = RssKiB(pid);

        var creates = Enumerable.Range(0, 16).Select(i => Task.Run(() =>
        {
            var cfg = Path.Combine(_xld.Directory, $"many{i}.cfg");
            File.WriteAllText(cfg, $"name=\"many{i}\"\ntype=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory=16\n");
            return _xld.Xl("create", cfg);
        })).ToArray();
        var results = await Task.WhenAll(creates);
        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.ToString()));
        for (int i = 0; i < 16; i++)
        {
            int n = i;
            XldFixture.WaitUntil(() => _xld.ConsoleLog($"many{n}").Contains("ready"), TimeSpan.FromSeconds(120), () => $"many{n} to print ready");
        }
        var list = _xld.Xl("list").Stdout;
        Assert.Equal(16, list.Split('\n').Count(l => l.StartsWith("many")));

        await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(() => Assert.Equal(0, _xld.Xl("destroy", $"many{i}").ExitCode))));
        Assert.DoesNotContain("many", _xld.Xl("list").Stdout);

        XldFixture.WaitUntil(() => OpenFds(pid) <= fds0 && Threads(pid) <= threads0 + 2, TimeSpan.FromSeconds(20),
            () => $"fds {OpenFds(pid)} (were {fds0}: new ones {string.Join(", ", FdTargets(pid).Except(targets0))}), threads {Threads(pid)} (were {threads0})");
        // Guest RAM is memfd-backed and unmapped on destroy: RSS returns to near where it was.
        long rss1 = RssKiB(pid);
        Assert.True(rss1 < rss0 + 64 * 1024, $"RSS grew from {rss0} KiB to {rss1} KiB");
    }
}
