namespace XenSharp.Integration.Tests;

/// <summary>
/// The PV test kernel (guests/pv, written only against Xen's public ABI) booted with xl: each of its
/// behaviours is reported on its console, and its SCHEDOP_shutdown reason drives on_poweroff/on_reboot/on_crash.
/// </summary>
public sealed class PvGuestTests : IClassFixture<XldFixture>
{
    private static readonly string Kernel = Path.Combine(Paths.Repo, "guests", "build", "pv-test.elf");
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private readonly XldFixture _xld;

    public PvGuestTests(XldFixture xld) => _xld = xld;

    private void Create(string name, int reason, string extra = "")
    {
        Skip.IfNot(File.Exists(Kernel), $"{Kernel} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, $"{name}.cfg");
        File.WriteAllText(cfg, $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{Kernel}\"\nextra=\"reason={reason}\"\nmemory=32\nvcpus=2\n{extra}\n");
        var r = _xld.Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    private string[] Row(string name) =>
        _xld.Xl("list").Stdout.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).FirstOrDefault(c => c.Length > 0 && c[0] == name) ?? [];

    [SkippableFact]
    public void EveryBehaviourOfTheTestKernelWorks()
    {
        Create("pv-all", 2, "on_poweroff = \"preserve\"\non_reboot = \"preserve\"\non_crash = \"preserve\"\non_soft_reset = \"preserve\"");
        XldFixture.WaitUntil(() => _xld.ConsoleLog("pv-all").Contains("PVTEST done"), Timeout, () => _xld.ConsoleLog("pv-all") + _xld.XldOutput);
        var log = _xld.ConsoleLog("pv-all");
        foreach (var line in new[] { "PVTEST console ok", "PVTEST pagefault ok", "PVTEST multicall ok, version 4", "PVTEST evtchn ok",
                     "PVTEST timer ok, ticks 100", "PVTEST grant ok", "PVTEST smp ok", "PVTEST done, shutdown reason 2" })
            Assert.Contains(line, log);
        XldFixture.WaitUntil(() => Row("pv-all") is { Length: > 4 } r && r[4] == "---s--", Timeout, () => _xld.Xl("list").Stdout);
        Assert.Equal("2", Row("pv-all")[3]);
        Assert.Contains("reason suspend", _xld.Xl("dmesg").Stdout);
        Assert.Equal(0, _xld.Xl("destroy", "pv-all").ExitCode);
    }

    [SkippableFact]
    public void PoweroffDestroysAndCrashIsPreserved()
    {
        Create("pv-off", 0);
        Create("pv-crash", 3, "on_crash = \"preserve\"");
        XldFixture.WaitUntil(() => _xld.ConsoleLog("pv-off").Contains("PVTEST done") && Row("pv-off").Length == 0, Timeout, () => _xld.Xl("list").Stdout);
        XldFixture.WaitUntil(() => Row("pv-crash") is { Length: > 4 } r && r[4] == "----c-", Timeout, () => _xld.Xl("list").Stdout);
        Assert.Contains("reason crash", _xld.Xl("dmesg").Stdout);
        Assert.Equal(0, _xld.Xl("destroy", "pv-crash").ExitCode);
    }

    [SkippableFact]
    public void RebootWithRestartBootsTheKernelAgain()
    {
        Create("pv-reboot", 1, "on_reboot = \"restart\"");
        string firstId = "";
        XldFixture.WaitUntil(() => Row("pv-reboot") is { Length: > 1 } r && (firstId = r[1]) != "", Timeout, () => _xld.Xl("list").Stdout);
        // Each run ends in a reboot, so the domain comes back under a new id; catch it at least once, then stop it.
        XldFixture.WaitUntil(() => Row("pv-reboot") is { Length: > 1 } r && r[1] != firstId, Timeout, () => _xld.Xl("list").Stdout);
        XldFixture.WaitUntil(() => _xld.ConsoleLog("pv-reboot").Split("PVTEST console ok").Length >= 3, Timeout, () => "two boots in the console log");
        XldFixture.WaitUntil(() => _xld.Xl("destroy", "pv-reboot").ExitCode == 0, Timeout, () => "destroying pv-reboot");
    }

    [SkippableFact]
    public void TheStoreRingAndConsoleAreInXenstore()
    {
        Create("pv-xs", 0, "on_poweroff = \"preserve\"");
        string id = Row("pv-xs")[1];
        Assert.Matches(@"^\d+$", _xld.Xl("xenstore-read", $"/local/domain/{id}/store/ring-ref").Stdout.Trim());
        Assert.Matches(@"^[1-9]\d*$", _xld.Xl("xenstore-read", $"/local/domain/{id}/store/port").Stdout.Trim());
        Assert.Equal("xenconsoled", _xld.Xl("xenstore-read", $"/local/domain/{id}/console/type").Stdout.Trim());
        Assert.Equal(0, _xld.Xl("destroy", "pv-xs").ExitCode);
    }

    [SkippableFact]
    public void PerfcCountsExitsHypercallsAndExceptions()
    {
        Create("pv-perfc", 0, "on_poweroff = \"preserve\"");
        XldFixture.WaitUntil(() => _xld.ConsoleLog("pv-perfc").Contains("PVTEST done"), Timeout, () => _xld.ConsoleLog("pv-perfc"));
        var r = _xld.Xl("perfc", "pv-perfc");
        Assert.True(r.ExitCode == 0, r.ToString());
        var counters = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToDictionary(c => c[0], c => long.Parse(c[1]));
        // The test kernel prints (console_io), takes a page fault it handles itself (#PF, an MMIO doorbell from the ring-0
        // stub), and each hypercall is a port doorbell (I/O) exit from the syscall stub.
        Assert.True(counters["hypercall/console_io"] > 0, r.Stdout);
        Assert.True(counters["hypercall/sched_op"] > 0, r.Stdout);
        Assert.True(counters["exception/pf"] > 0, r.Stdout);
        Assert.True(counters["exits/mmio"] >= counters["exception/pf"], r.Stdout);
        Assert.True(counters["exits/io"] >= counters["hypercall/console_io"] + counters["hypercall/sched_op"], r.Stdout);
        Assert.True(counters["exits"] >= counters["exits/io"] + counters["exits/mmio"], r.Stdout);
        Assert.Equal(1, _xld.Xl("perfc", "no-such-domain").ExitCode);
        Assert.Equal(0, _xld.Xl("destroy", "pv-perfc").ExitCode);
    }
}
