namespace XenSharp.Integration.Tests;

/// <summary>
/// The hostile PV guest (guests/pv-hostile) throws wild pointers, bad ports, huge counts, bad descriptors and
/// unknown hypercalls at the hypervisor, checks each answer against Xen's errno, then crashes itself. A
/// well-behaved HVM domain beside it must keep running and answering, and xld must stay up.
/// </summary>
public sealed class HostilePvGuestTests : IClassFixture<XldFixture>
{
    private static readonly string Hostile = Path.Combine(Paths.Repo, "guests", "build", "pv-hostile.elf");
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(180);
    private readonly XldFixture _xld;

    public HostilePvGuestTests(XldFixture xld) => _xld = xld;

    private string[] Row(string name) =>
        _xld.Xl("list").Stdout.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).FirstOrDefault(c => c.Length > 0 && c[0] == name) ?? [];

    private void Create(string name, string body)
    {
        var cfg = Path.Combine(_xld.Directory, $"{name}.cfg");
        File.WriteAllText(cfg, $"name=\"{name}\"\n{body}\n");
        var r = _xld.Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    [SkippableFact]
    public void HostileGuestGetsXensErrnosAndCrashesAloneWhileANeighbourKeepsRunning()
    {
        Skip.IfNot(File.Exists(Hostile), $"{Hostile} is not built (run make -C guests)");
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        Create("hvm-neighbour", $"type=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory=16");
        Create("pv-hostile", $"type=\"pv\"\nkernel=\"{Hostile}\"\nmemory=32\nvcpus=1\non_crash=\"preserve\"");

        XldFixture.WaitUntil(() => Row("pv-hostile") is { Length: > 4 } r && r[4] == "----c-", Timeout,
            () => _xld.Xl("list").Stdout + _xld.ConsoleLog("pv-hostile") + _xld.XldOutput);
        var log = _xld.ConsoleLog("pv-hostile");
        Assert.Contains("HOSTILE start", log);
        Assert.True(log.Contains("HOSTILE done, mismatches 0"), log + _xld.Xl("dmesg").Stdout);
        var lines = log.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("HOSTILE ")).ToList();
        Assert.DoesNotContain(lines, l => l.Contains("MISMATCH"));
        var results = lines.Where(l => l.Contains(" rc=")).Select(l => l.Split(' ')[1]).Distinct().ToList();
        Assert.True(results.Count >= 50, $"only {results.Count} checks ran:\n{log}");
        foreach (var name in results) Assert.Contains($"HOSTILE {name} ok", lines);
        foreach (var name in new[] { "hypercall_45", "hypercall_63", "hypercall_1000", "multicall_count_1<<30",
                     "mmu_update_hypervisor_l4_slot", "update_descriptor_tss", "grant_setup_bad_frame_list_status", "evtchn_send_port_ffffffff" })
            Assert.Contains($"HOSTILE {name} ok", lines);

        // xld is up, the neighbour still runs and answers on its console.
        var list = _xld.Xl("list");
        Assert.Equal(0, list.ExitCode);
        Assert.True(Row("hvm-neighbour") is { Length: > 4 } n && n[4] != "----c-" && n[4] != "---s--", list.Stdout);
        Assert.False(_xld.XldProcess.HasExited);
        string seen = "";
        XldFixture.WaitUntil(() => (seen += _xld.Type("hvm-neighbour", "hello\r").Stdout).Contains("hello from the guest"), Timeout,
            () => seen + _xld.ConsoleLog("hvm-neighbour"));

        // The unimplemented hypercall numbers are logged with their -ENOSYS answer.
        var dmesg = _xld.Xl("dmesg").Stdout;
        foreach (var nr in new[] { 45, 63, 1000 })
            Assert.Matches($@"unimplemented .*\(nr {nr}\) -> -ENOSYS", dmesg);
        // The crash is the one the guest asked for last (iret with an unreadable frame), not an earlier accident.
        Assert.Contains("(pv-hostile): shutdown, reason crash: vcpu0: iret: cannot read frame at 0x2000", dmesg);

        Assert.Equal(0, _xld.Xl("destroy", "pv-hostile").ExitCode);
        Assert.Equal(0, _xld.Xl("destroy", "hvm-neighbour").ExitCode);
    }
}
