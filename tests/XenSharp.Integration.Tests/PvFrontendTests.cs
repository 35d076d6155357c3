using System.Diagnostics;
using System.Net.NetworkInformation;
using System.Text.RegularExpressions;

namespace XenSharp.Integration.Tests;

/// <summary>
/// blkback and netback against real frontends: the PV test kernel with <c>extra="xenbus …"</c> runs its blkfront
/// (write a pattern, flush, read back) on every <c>device/vbd</c> and its netfront (ARP, ICMP echo, ping) on its
/// first <c>device/vif</c>, all through the xenstore ring, grants and event channels of Xen's public ABI.
/// </summary>
public sealed class PvFrontendTests : IClassFixture<XldFixture>
{
    private static readonly string Kernel = Path.Combine(Paths.Repo, "guests", "build", "pv-test.elf");
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private readonly XldFixture _xld;

    public PvFrontendTests(XldFixture xld) => _xld = xld;

    private string Image(string name, int mib)
    {
        var path = Path.Combine(_xld.Directory, name);
        using (var f = File.Create(path)) f.SetLength((long)mib << 20);
        return path;
    }

    /// <summary>Creates a two-vCPU PV test guest; the kernel's own checks run first, then the frontends.</summary>
    private void Create(string name, string extra, string settings = "")
    {
        Skip.IfNot(File.Exists(Kernel), $"{Kernel} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, $"{name}.cfg");
        File.WriteAllText(cfg, $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{Kernel}\"\nextra=\"reason=0 xenbus {extra}\"\nmemory=32\nvcpus=2\n{settings}\n");
        var r = _xld.Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    private void WaitConsole(string name, string text) =>
        XldFixture.WaitUntil(() => _xld.ConsoleLog(name).Contains(text), Timeout,
            () => $"\"{text}\" on {name}'s console:\n{_xld.ConsoleLog(name)}\n{_xld.Xl("dmesg").Stdout}");

    private bool Listed(string name) => _xld.Xl("list").Stdout.Split('\n').Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() == name);

    /// <summary>The bytes blkfront writes to sector <paramref name="sector"/> (guests/pv/blkfront.c fill_pattern).</summary>
    internal static byte[] Pattern(long sector)
    {
        var p = new byte[512];
        "XSPVBLK!"u8.CopyTo(p);
        BitConverter.TryWriteBytes(p.AsSpan(8), (ulong)sector);
        for (int j = 16; j < 512; j++) p[j] = (byte)(sector * 31 + j * 7 + 1);
        return p;
    }

    private static void AssertPatternInFile(string image, long first, int count)
    {
        using var f = new FileStream(image, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buf = new byte[512];
        for (long s = first; s < first + count; s++)
        {
            f.Position = s * 512;
            f.ReadExactly(buf);
            Assert.True(buf.AsSpan().SequenceEqual(Pattern(s)), $"sector {s} of {image} does not hold the guest's pattern");
        }
    }

    [SkippableFact]
    public void BlkfrontWritesFlushesAndReadsBackAndTheDataIsInTheHostFile()
    {
        var img = Image("front-rw.img", 16);
        Create("fe-rw", "blksector=200", $"disk = [ \"{img},raw,xvda,rw\" ]\non_poweroff = \"destroy\"");
        WaitConsole("fe-rw", "PVTEST done");
        var log = _xld.ConsoleLog("fe-rw");
        Assert.Contains("PVTEST xenbus ok", log);
        Assert.Contains("PVTEST blk connected device/vbd/51712 sectors=32768 sector-size=512 info=0 flush-cache barrier", log);
        Assert.Contains("PVTEST blk ok sectors=32768 wrote=32 at=200 flush=flush-cache", log);
        Assert.DoesNotContain("FAIL", log);
        // Powered off and destroyed: the backend has closed the image; the guest's sectors are in the file.
        XldFixture.WaitUntil(() => !Listed("fe-rw"), Timeout, () => _xld.Xl("list").Stdout);
        AssertPatternInFile(img, 200, 32);
        using var f = File.OpenRead(img);
        var before = new byte[200 * 512];
        f.ReadExactly(before);
        Assert.True(before.All(b => b == 0), "the guest wrote outside the sectors it reported");
    }

    /// <summary>
    /// A qcow2 overlay on a raw template, as a VPS disk: the guest's blkfront writes, flushes and reads back through
    /// xl's format=qcow2; qemu-img then finds the overlay consistent and holding the guest's sectors, and the template
    /// is unchanged.
    /// </summary>
    [SkippableFact]
    public void AQcow2OverlayTakesTheGuestsWritesAndLeavesItsBackingFileAlone()
    {
        Skip.If(Which("qemu-img") is null, "qemu-img is not installed (scripts/setup.sh installs qemu-utils)");
        var template = Image("front-template.img", 16);
        using (var t = new FileStream(template, FileMode.Open, FileAccess.Write)) { t.Position = 300 * 512; t.Write(Pattern(300)); }
        var templateBytes = File.ReadAllBytes(template);
        var overlay = Path.Combine(_xld.Directory, "front-overlay.qcow2");
        Assert.Equal(0, RunTool("qemu-img", "create", "-q", "-f", "qcow2", "-b", template, "-F", "raw", overlay).Code);
        Create("fe-qcow2", "blksector=200", $"disk = [ \"{overlay},qcow2,xvda,rw\" ]\non_poweroff = \"destroy\"");
        WaitConsole("fe-qcow2", "PVTEST done");
        var log = _xld.ConsoleLog("fe-qcow2");
        Assert.Contains("PVTEST blk ok sectors=32768 wrote=32 at=200 flush=flush-cache", log);
        Assert.DoesNotContain("FAIL", log);
        XldFixture.WaitUntil(() => !Listed("fe-qcow2"), Timeout, () => _xld.Xl("list").Stdout);
        var check = RunTool("qemu-img", "check", overlay);
        Assert.True(check.Code == 0, check.Output);
        var raw = Path.Combine(_xld.Directory, "front-overlay.raw");
        Assert.Equal(0, RunTool("qemu-img", "convert", "-O", "raw", overlay, raw).Code);
        AssertPatternInFile(raw, 200, 32);
        AssertPatternInFile(raw, 300, 1); // read through to the template
        Assert.True(File.ReadAllBytes(template).AsSpan().SequenceEqual(templateBytes), "the backing file changed");
    }

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private static (int Code, string Output) RunTool(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    [SkippableFact]
    public void AReadOnlyDiskAnswersWritesWithAnError()
    {
        var img = Image("front-ro.img", 8);
        Create("fe-ro", "", $"disk = [ \"{img},raw,xvdb,ro\" ]\non_poweroff = \"destroy\"");
        WaitConsole("fe-ro", "PVTEST done");
        var log = _xld.ConsoleLog("fe-ro");
        Assert.Contains("PVTEST blk connected device/vbd/51728 sectors=16384 sector-size=512 info=4", log);
        Assert.Contains("PVTEST blk ro write refused status=-1", log);
        Assert.Contains("PVTEST blk ro read ok", log);
        XldFixture.WaitUntil(() => !Listed("fe-ro"), Timeout, () => _xld.Xl("list").Stdout);
        Assert.True(File.ReadAllBytes(img).All(b => b == 0), "a read-only image was modified");
    }

    [SkippableFact]
    public void TwoGuestsOnTheSoftwareSwitchPingEachOther()
    {
        // A bridge name with no Linux bridge behind it: the switch stays internal to xld (no TAP uplink).
        string br = $"xsgg{Environment.ProcessId % 100000}";
        Create("fe-net1", "ip=10.231.0.1 ping=10.231.0.2 count=5 arpwait=90", $"vif = [ \"mac=00:16:3e:5a:00:01,bridge={br}\" ]");
        Create("fe-net2", "ip=10.231.0.2 ping=10.231.0.1 count=5 arpwait=90", $"vif = [ \"mac=00:16:3e:5a:00:02,bridge={br}\" ]");
        foreach (var (name, peer) in new[] { ("fe-net1", "10.231.0.2"), ("fe-net2", "10.231.0.1") })
        {
            WaitConsole(name, $"PVTEST ping {peer} ");
            WaitConsole(name, "PVTEST serving");
            var log = _xld.ConsoleLog(name);
            Assert.Contains($"PVTEST net connected device/vif/0 mac=00:16:3e:5a:00:0{name[^1]} ip=10.231.0.{name[^1]}", log);
            Assert.Matches($@"PVTEST ping {Regex.Escape(peer)} replies=5/5 rtt_us min=\d+ avg=\d+ max=\d+", log);
        }
        // The guests follow control/shutdown (xl shutdown) while serving.
        foreach (var name in new[] { "fe-net1", "fe-net2" })
        {
            var r = _xld.Xl("shutdown", "-w", name);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("PVTEST control/shutdown poweroff", _xld.ConsoleLog(name));
        }
    }

    [SkippableFact]
    public void TheHostPingsAGuestThroughATapUplink()
    {
        // xld enslaves its TAP uplink to the Linux bridge named by vif bridge=; the host's address lives on the bridge.
        using var bridge = HostBridge.Create("xsbt", 232);
        string host = bridge.HostAddress, guest = bridge.Guest(5);
        Create("fe-tap", $"ip={guest} ping={host} count=3 arpwait=90", $"vif = [ \"bridge={bridge.Name}\" ]");
        WaitConsole("fe-tap", "PVTEST serving");
        string? noUplink = File.ReadAllLines(Path.Combine(_xld.LogDirectory, "xld.log")).FirstOrDefault(l => l.Contains($"switch {bridge.Name}: no TAP uplink"));
        Skip.If(noUplink is not null, $"xld made no TAP uplink: {noUplink}");
        // The guest reached the host's stack through the TAP ...
        Assert.Matches($@"PVTEST ping {Regex.Escape(host)} replies=3/3 rtt_us", _xld.ConsoleLog("fe-tap"));
        // ... and the host's ICMP echo requests reach the guest, which answers.
        using var ping = new Ping();
        int replies = 0;
        for (int i = 0; i < 3; i++)
            if (ping.Send(guest, 5000).Status == IPStatus.Success) replies++;
        Assert.Equal(3, replies);
        Assert.Equal(0, _xld.Xl("destroy", "fe-tap").ExitCode);
    }

    [SkippableFact]
    public void ABlockDeviceHotPluggedWhileRunningIsUsedAndDetachedCleanly()
    {
        Create("fe-hot", "serve");
        WaitConsole("fe-hot", "PVTEST serving");
        var img = Image("front-hot.img", 8);
        var attach = _xld.Xl("block-attach", "fe-hot", $"{img},raw,xvdc,rw");
        Assert.True(attach.ExitCode == 0, attach.ToString());
        WaitConsole("fe-hot", "PVTEST blk ok sectors=16384 wrote=32 at=64");
        var detach = _xld.Xl("block-detach", "fe-hot", "xvdc");
        Assert.True(detach.ExitCode == 0, detach.ToString());
        // The guest saw its backend close and closed its end (no forced detach).
        WaitConsole("fe-hot", "PVTEST blk closed device/vbd/51744");
        Assert.DoesNotContain("frontend did not close", File.ReadAllText(Path.Combine(_xld.LogDirectory, "xld.log")));
        Assert.DoesNotContain(img, _xld.Xl("block-list", "fe-hot").Stdout);
        AssertPatternInFile(img, 64, 32);
        var r = _xld.Xl("shutdown", "-w", "fe-hot");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("PVTEST control/shutdown poweroff", _xld.ConsoleLog("fe-hot"));
    }

    [SkippableFact]
    public void AHostileFrontendGetsErrorsAndLosesOnlyItsOwnDevices()
    {
        var bad = Image("front-bad.img", 8);
        Create("fe-bad", "blkhostile nethostile ip=10.234.0.9", $"disk = [ \"{bad},raw,xvda,rw\" ]\nvif = [ \"bridge=xsbad{Environment.ProcessId % 100000}\" ]");
        WaitConsole("fe-bad", "PVTEST done");
        var log = _xld.ConsoleLog("fe-bad");
        // no segments, too many segments, ungranted ref, first > last, beyond the end, unknown op, read into a read-only grant
        Assert.Contains("PVTEST blk hostile statuses=-1,-1,-1,-1,-1,-2,-1 good=0", log);
        Assert.Contains("PVTEST blk hostile overrun: backend state=6 error=ring overrun", log);
        // oversized, ungranted ref, crossing the page end, runt
        Assert.Contains("PVTEST net hostile statuses=-1,-1,-1,-1 good=0", log);
        Assert.Contains("PVTEST net hostile overrun: backend state=6 error=tx ring overrun", log);
        // xld carries on, and another guest's disk works.
        Assert.False(_xld.XldProcess.HasExited, _xld.XldOutput);
        var good = Image("front-good.img", 8);
        Create("fe-good", "", $"disk = [ \"{good},raw,xvda,rw\" ]");
        WaitConsole("fe-good", "PVTEST blk ok sectors=16384");
        WaitConsole("fe-good", "PVTEST done");
    }
}
