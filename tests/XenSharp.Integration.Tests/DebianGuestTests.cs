using System.Text.RegularExpressions;

namespace XenSharp.Integration.Tests;

/// <summary>
/// Debian's stock cloud kernel (linux-image-cloud-amd64, unmodified) as a PV domU under xl, with the images
/// scripts/guest-images.sh makes: its own xen-blkfront, xen-netfront, hvc console, balloon and CPU hot-plug drivers
/// talk to our backends. guests/linux/init prints the XENSHARP-* markers asserted here.
/// </summary>
public sealed class DebianGuestTests : IClassFixture<XldFixture>
{
    private static readonly string Images = Path.Combine(Paths.Repo, ".cache", "guest-images");
    private static readonly string Kernel = Path.Combine(Images, "vmlinuz-cloud");
    private static readonly string Initrd = Path.Combine(Images, "initrd.cpio.gz");
    private static readonly string Rootfs = Path.Combine(Images, "rootfs.ext4");
    // Boot on the software CPU takes tens of seconds (see bench/README.md); the kernel's crypto self-tests alone
    // would add as much again, so the guests skip them (cryptomgr.notests), as a test guest may.
    private const string BaseCmdline = "console=hvc0 cryptomgr.notests";
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(240);
    private readonly XldFixture _xld;

    public DebianGuestTests(XldFixture xld) => _xld = xld;

    private static void RequireImages()
    {
        foreach (var f in new[] { Kernel, Initrd, Rootfs })
            Skip.IfNot(File.Exists(f), $"{f} is missing: run scripts/guest-images.sh");
    }

    private void Create(string name, string extra, string settings)
    {
        var cfg = Path.Combine(_xld.Directory, $"{name}.cfg");
        File.WriteAllText(cfg, $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{Kernel}\"\nramdisk=\"{Initrd}\"\nextra=\"{BaseCmdline} {extra}\"\n{settings}\n");
        var r = _xld.Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    /// <summary>Waits for <paramref name="text"/> on the console; fails at once if the domain crashed or went first.</summary>
    private void WaitConsole(string name, string text, TimeSpan? timeout = null, bool mayStop = false)
    {
        var next = DateTime.UtcNow;
        XldFixture.WaitUntil(() =>
        {
            if (_xld.ConsoleLog(name).Contains(text)) return true;
            if (!mayStop && DateTime.UtcNow >= next)
            {
                next = DateTime.UtcNow.AddSeconds(1);
                if (Row(name) is not { Length: > 4 } r || r[4].Contains('c') || r[4].Contains('s'))
                    throw new InvalidOperationException($"{name} stopped before '{text}':\n{_xld.ConsoleLog(name)}\n{_xld.Xl("dmesg").Stdout}");
            }
            return false;
        }, timeout ?? Boot, () => $"'{text}' on {name}'s console:\n{_xld.ConsoleLog(name)}\n{_xld.Xl("dmesg").Stdout}");
    }

    private string[] Row(string name) =>
        _xld.Xl("list").Stdout.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).FirstOrDefault(c => c.Length > 0 && c[0] == name) ?? [];

    /// <summary>Types a command on the guest's shell and returns what it printed (up to a marker echoed after it).</summary>
    private string Shell(string name, string command, TimeSpan? timeout = null)
    {
        string id = $"XS{Guid.NewGuid():N}"[..12];
        // Typed as id""-end, printed as id-end: the tty's echo of the command line never matches the printed marker.
        string typed = $"{id}\"\"-end", printed = $"{id}-end";
        int before = _xld.ConsoleLog(name).Length;
        _xld.Type(name, $"{command}; echo {typed}\n");
        string log = "";
        XldFixture.WaitUntil(() => (log = _xld.ConsoleLog(name)).IndexOf(printed, before, StringComparison.Ordinal) >= 0,
            timeout ?? TimeSpan.FromSeconds(60), () => $"'{command}' on {name}:\n{_xld.ConsoleLog(name)[before..]}");
        int echo = log.IndexOf(typed, before, StringComparison.Ordinal);
        int start = echo < 0 ? before : log.IndexOf('\n', echo) + 1;
        int end = log.IndexOf(printed, before, StringComparison.Ordinal);
        return start > 0 && start < end ? log[start..end] : "";
    }

    [SkippableFact]
    public void BootsMountsItsDiskWritesPingsTheHostAndPowersOff()
    {
        RequireImages();
        using var bridge = HostBridge.Create("xsdb", 233);
        string disk = Path.Combine(_xld.Directory, "debian-root.ext4");
        File.Copy(Rootfs, disk, overwrite: true);
        string guestIp = bridge.Guest(2), peerIp = bridge.Guest(3);
        // A second Debian guest on the same switch, answering pings from its shell.
        Create("deb-peer", $"xs.ip={peerIp}/24", $"memory=128\nvcpus=1\nvif=[ \"mac=00:16:3e:44:00:03,bridge={bridge.Name}\" ]");
        WaitConsole("deb-peer", "XENSHARP-INIT done");
        Create("deb-boot", $"xs.root=/dev/xvda xs.write=1 xs.ip={guestIp}/24 xs.ping={bridge.HostAddress},{peerIp} xs.end=poweroff",
            $"memory=256\nvcpus=2\ndisk=[ \"{disk},raw,xvda,rw\" ]\nvif=[ \"mac=00:16:3e:44:00:02,bridge={bridge.Name}\" ]\non_poweroff=\"preserve\"");
        WaitConsole("deb-boot", "XENSHARP-INIT done", mayStop: true);
        XldFixture.WaitUntil(() => Row("deb-boot") is { Length: > 4 } r && r[4] == "---s--", TimeSpan.FromSeconds(60), () => _xld.Xl("list").Stdout + _xld.ConsoleLog("deb-boot"));

        var log = _xld.ConsoleLog("deb-boot");
        Assert.Matches(@"Linux version 6\.\d+\.\d+-\d+-cloud-amd64", log);
        Assert.Contains("Booting kernel on Xen", log);
        Assert.Contains("Run /init as init process", log);
        Assert.Contains("XENSHARP-INIT stage=initramfs cpus=2", log);
        Assert.Contains("XENSHARP-INIT mounted /dev/xvda", log);
        Assert.Contains("XENSHARP-INIT stage=root cpus=2", log);
        Assert.Contains("XENSHARP-WRITE ok", log);
        Assert.Matches($@"XENSHARP-NET eth0 {Regex.Escape(guestIp)}/24 00:16:3e:44:00:02", log);
        Assert.Contains($"XENSHARP-PING ok {bridge.HostAddress}", log);
        Assert.Contains($"XENSHARP-PING ok {peerIp}", log);
        Assert.Equal(0, _xld.Xl("destroy", "deb-peer").ExitCode);
        Assert.Matches("reboot: (Power down|System halted)", log); // halt when the kernel has no pm_power_off; both end in SHUTDOWN_poweroff
        Assert.Contains("reason poweroff", _xld.Xl("dmesg").Stdout);
        Assert.Equal(0, _xld.Xl("destroy", "deb-boot").ExitCode);

        // What the guest wrote is in the image file on the host (read with e2fsprogs' debugfs, no mount needed).
        var cat = HostBridge.Run("debugfs", $"-R \"cat /xensharp-guest-wrote\" {disk}");
        Assert.True(cat.Exit == 0, cat.Output);
        Assert.Contains("written by xensharp-guest", cat.Output);
    }

    [SkippableFact]
    public void ShellVcpuSetMemSetPauseAndCleanShutdown()
    {
        RequireImages();
        Create("deb-ctl", "xs.mem=1", "memory=256\nmaxmem=256\nvcpus=1\nmaxvcpus=2\non_poweroff=\"preserve\"");
        WaitConsole("deb-ctl", "XENSHARP-INIT done");
        Assert.Contains("XENSHARP-INIT stage=initramfs cpus=1", _xld.ConsoleLog("deb-ctl"));
        Assert.Contains("42", Shell("deb-ctl", "echo $((6*7))"));

        // vcpu-set: the guest's hot-plug watcher brings CPU 1 up (VCPUOP_up), then takes it down again.
        Assert.Equal(0, _xld.Xl("vcpu-set", "deb-ctl", "2").ExitCode);
        XldFixture.WaitUntil(() => Shell("deb-ctl", "cat /sys/devices/system/cpu/online").Contains("0-1"), TimeSpan.FromSeconds(90), () => _xld.ConsoleLog("deb-ctl"));
        Assert.Equal(0, _xld.Xl("vcpu-set", "deb-ctl", "1").ExitCode);
        XldFixture.WaitUntil(() => Shell("deb-ctl", "cat /sys/devices/system/cpu/online").Trim().EndsWith('0'), TimeSpan.FromSeconds(90), () => _xld.ConsoleLog("deb-ctl"));

        // mem-set: the balloon driver gives 64 MiB back (MemTotal drops), then takes it again.
        long Total() => long.Parse(Regex.Match(Shell("deb-ctl", "grep MemTotal /proc/meminfo"), @"MemTotal:\s+(\d+) kB").Groups[1].Value);
        long before = Total();
        Assert.Equal(0, _xld.Xl("mem-set", "deb-ctl", "192").ExitCode);
        XldFixture.WaitUntil(() => before - Total() >= 60 * 1024, TimeSpan.FromSeconds(90), () => $"MemTotal {Total()} kB, was {before} kB");
        Assert.Equal("192", Row("deb-ctl")[2]);
        Assert.Equal(0, _xld.Xl("mem-set", "deb-ctl", "256").ExitCode);
        XldFixture.WaitUntil(() => before - Total() < 4 * 1024, TimeSpan.FromSeconds(90), () => $"MemTotal {Total()} kB, was {before} kB");

        // pause/unpause while the guest runs a workload: its CPU time stops, then it carries on.
        _xld.Type("deb-ctl", "(i=0; while [ $i -lt 100000000 ]; do i=$((i+1)); done) &\n");
        Assert.Equal(0, _xld.Xl("pause", "deb-ctl").ExitCode);
        Assert.Equal("--p---", Row("deb-ctl")[4]);
        string t0 = Row("deb-ctl")[5];
        Thread.Sleep(1500);
        Assert.Equal(t0, Row("deb-ctl")[5]);
        Assert.Equal(0, _xld.Xl("unpause", "deb-ctl").ExitCode);
        Assert.Contains("still here", Shell("deb-ctl", "echo still here"));

        // xl shutdown: control/shutdown -> the kernel's orderly poweroff -> init's trap -> SCHEDOP_shutdown(poweroff).
        var r = _xld.Xl("shutdown", "-w", "deb-ctl");
        Assert.True(r.ExitCode == 0, r + _xld.ConsoleLog("deb-ctl"));
        Assert.Contains("XENSHARP-INIT poweroff", _xld.ConsoleLog("deb-ctl"));
        Assert.Matches("reboot: (Power down|System halted)", _xld.ConsoleLog("deb-ctl"));
        Assert.Equal(0, _xld.Xl("destroy", "deb-ctl").ExitCode);
    }

    [SkippableFact]
    public void RebootRestartsAndAPanicEndsAsOnCrashSays()
    {
        RequireImages();
        Create("deb-rb", "", "memory=192\nvcpus=1\non_reboot=\"restart\"\non_crash=\"preserve\"");
        WaitConsole("deb-rb", "XENSHARP-INIT done");
        string firstId = _xld.DomainId("deb-rb");
        var r = _xld.Xl("reboot", "deb-rb");
        Assert.True(r.ExitCode == 0, r.ToString());
        // The guest reboots through control/shutdown; on_reboot=restart builds it again under a new id.
        XldFixture.WaitUntil(() => Row("deb-rb") is { Length: > 1 } row && row[1] != firstId, Boot, () => _xld.Xl("list").Stdout + _xld.ConsoleLog("deb-rb"));
        XldFixture.WaitUntil(() => _xld.ConsoleLog("deb-rb").Split("XENSHARP-INIT done").Length >= 3, Boot, () => _xld.ConsoleLog("deb-rb"));
        Assert.Contains("XENSHARP-INIT reboot", _xld.ConsoleLog("deb-rb"));
        Assert.Contains("reason reboot", _xld.Xl("dmesg").Stdout);

        // A kernel panic (sysrq crash): Linux's panic notifier says SHUTDOWN_crash, on_crash=preserve keeps the domain.
        _xld.Type("deb-rb", "echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger\n");
        XldFixture.WaitUntil(() => Row("deb-rb") is { Length: > 4 } row && row[4] == "----c-", TimeSpan.FromSeconds(120), () => _xld.Xl("list").Stdout + _xld.ConsoleLog("deb-rb"));
        Assert.Contains("Kernel panic", _xld.ConsoleLog("deb-rb"));
        Assert.Contains("reason crash", _xld.Xl("dmesg").Stdout);
        Assert.Equal(0, _xld.Xl("destroy", "deb-rb").ExitCode);
    }
}
