using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

/// <summary>
/// Debian's cloud kernel as a PV domU under a real xld (guest images from scripts/guest-images.sh), beside peers measured
/// in the same run:
///   xl create → init marker, split into domain build (xl create returning), kernel boot (to "Run /init") and init,
///     with the exits by kind (xl perfc) during the boot; the peer is the same kernel and initramfs under
///     qemu-system-x86_64 -accel tcg;
///   a CPU-bound shell loop (busybox) inside the guest vs the same binary on the host (and inside the QEMU guest);
///   dd on the guest's xvdb (O_DIRECT) vs host dd on the same image file.
/// </summary>
static partial class LinuxBootBench
{
    private const int Loops = 200000;
    private const string Cmdline = "cryptomgr.notests xs.end=poweroff";

    public static void Run(string repo)
    {
        string images = Path.Combine(repo, ".cache", "guest-images");
        string kernel = Path.Combine(images, "vmlinuz-cloud"), initrd = Path.Combine(images, "initrd.cpio.gz");
        string xld = Path.Combine(repo, "src", "XenSharp.Daemon", "bin", "Release", "net10.0", "xld.dll");
        string xl = Path.Combine(repo, "src", "XenSharp.Cli", "bin", "Release", "net10.0", "xl.dll");
        foreach (var f in new[] { kernel, initrd, xld, xl })
            if (!File.Exists(f)) { Console.WriteLine($"Debian PV guest: skipped ({f} missing: bench/run.sh builds it, scripts/guest-images.sh fetches the images)"); return; }
        if (Environment.UserName != "root") { Console.WriteLine("Debian PV guest: skipped (xld needs root)"); return; }
        Console.WriteLine("\n== Debian cloud kernel as a PV guest (xld) beside QEMU TCG and the host");

        var ours = Ours(repo, xld, xl, kernel, initrd);
        var qemu = Qemu(kernel, initrd);
        double host = HostLoop();

        if (ours is { } o)
        {
            Console.WriteLine($"boot: xl create → init marker {o.Total:F1} s = domain build {o.Build:F2} s + kernel to \"Run /init\" {o.Kernel:F1} s + init {o.Init:F1} s"
                + (qemu is { } q0 ? $"; QEMU TCG (same kernel, initramfs, command line) {q0.Boot:F1} s; ratio {o.Total / q0.Boot:F2}" : "; QEMU: " + QemuSkip));
            Console.WriteLine($"boot exits ({o.Exits.GetValueOrDefault("exits")} in all): " + string.Join(", ",
                o.Exits.Where(e => e.Key != "exits").OrderByDescending(e => e.Value).Take(12).Select(e => $"{e.Key} {e.Value}")));
            Console.WriteLine($"cpu: {Loops} busybox shell iterations in the guest {o.Loop:F2} s, on the host {host:F2} s, ratio {o.Loop / host:F1}"
                + (qemu is { } q1 ? $"; in the QEMU TCG guest {q1.Loop:F2} s, ratio {q1.Loop / host:F1}" : ""));
            if (o.DdWrite is { } w && o.DdRead is { } r)
            {
                var (hw, hr) = HostDd(o.Disk);
                Console.WriteLine($"disk: dd 32 MiB O_DIRECT write in the guest {32 / w:F1} MiB/s, host dd {hw:F1} MiB/s, ratio {32 / w / hw:F2}");
                Console.WriteLine($"disk: dd 32 MiB O_DIRECT read in the guest {32 / r:F1} MiB/s, host dd {hr:F1} MiB/s, ratio {32 / r / hr:F2}");
            }
            File.Delete(o.Disk);
        }
    }

    private static string QemuSkip = "not installed (apt-get install qemu-system-x86)";

    private sealed record OurFigures(double Build, double Kernel, double Init, double Total, double Loop, double? DdWrite, double? DdRead,
        Dictionary<string, long> Exits, string Disk);

    [GeneratedRegex(@"XENSHARP-BENCH (\w+)[^\n]*? seconds=([\d.]+)")]
    private static partial Regex BenchLine();

    private static Dictionary<string, double> Figures(string log) =>
        BenchLine().Matches(log).ToDictionary(m => m.Groups[1].Value, m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));

    private static OurFigures? Ours(string repo, string xld, string xl, string kernel, string initrd)
    {
        using var d = new BenchDaemon(xld, xl, repo);
        string disk = Path.Combine(Path.GetTempPath(), $"xensharp-bench-xvdb-{Environment.ProcessId}.img");
        using (var f = File.Create(disk)) f.SetLength(64 << 20);
        var cfg = Path.Combine(d.Dir, "deb.cfg");
        File.WriteAllText(cfg, $"name=\"deb-bench\"\ntype=\"pv\"\nkernel=\"{kernel}\"\nramdisk=\"{initrd}\"\n" +
            $"extra=\"console=hvc0 {Cmdline} xs.bench={Loops}\"\nmemory=256\nvcpus=1\ndisk=[ \"{disk},raw,xvdb,rw\" ]\non_poweroff=\"preserve\"\n");
        try
        {
            var sw = Stopwatch.StartNew();
            d.Create(cfg);
            double build = sw.Elapsed.TotalSeconds;
            double kernelDone = WaitMarker(d, "Run /init", sw);
            double initDone = WaitMarker(d, "XENSHARP-INIT stage=", sw);
            var exits = d.Xl("perfc", "deb-bench").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToDictionary(c => c[0], c => long.Parse(c[1], CultureInfo.InvariantCulture));
            string log = d.WaitConsole("deb-bench", "XENSHARP-INIT done", TimeSpan.FromMinutes(10));
            var f = Figures(log);
            return new OurFigures(build, kernelDone - build, initDone - kernelDone, initDone, f["cpu"], f.GetValueOrDefault("ddwrite"), f.GetValueOrDefault("ddread"), exits, disk);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or KeyNotFoundException)
        {
            Console.WriteLine($"Debian PV guest: stopped: {e.Message}");
            File.Delete(disk);
            return null;
        }
    }

    private static double WaitMarker(BenchDaemon d, string text, Stopwatch sw)
    {
        var end = DateTime.UtcNow.AddMinutes(10);
        while (!d.Console("deb-bench").Contains(text))
        {
            if (DateTime.UtcNow > end) throw new TimeoutException($"no \"{text}\" on the console:\n{d.Console("deb-bench")}");
            Thread.Sleep(10);
        }
        return sw.Elapsed.TotalSeconds;
    }

    private sealed record QemuFigures(double Boot, double Loop);

    private static QemuFigures? Qemu(string kernel, string initrd)
    {
        string? qemu = new[] { "/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64" }.FirstOrDefault(File.Exists);
        if (qemu is null) return null;
        var psi = new ProcessStartInfo(qemu) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "-accel", "tcg", "-m", "256", "-smp", "1", "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
                     "-append", $"console=ttyS0 {Cmdline} xs.bench={Loops} panic=-1" })
            psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        double boot = 0;
        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        string? line;
        while ((line = p.StandardOutput.ReadLine()) is not null)
        {
            output.AppendLine(line);
            if (boot == 0 && line.Contains("XENSHARP-INIT stage=")) boot = sw.Elapsed.TotalSeconds;
            if (line.Contains("XENSHARP-INIT done") || sw.Elapsed > TimeSpan.FromMinutes(5)) break;
        }
        try { p.Kill(true); } catch (InvalidOperationException) { }
        var f = Figures(output.ToString());
        return boot > 0 && f.TryGetValue("cpu", out double loop) ? new QemuFigures(boot, loop) : null;
    }

    private static double HostLoop()
    {
        var psi = new ProcessStartInfo("/bin/busybox") { UseShellExecute = false };
        foreach (var a in new[] { "sh", "-c", $"i=0; while [ $i -lt {Loops} ]; do i=$((i+1)); done" }) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return sw.Elapsed.TotalSeconds;
    }

    private static (double Write, double Read) HostDd(string disk)
    {
        double Dd(string args)
        {
            var psi = new ProcessStartInfo("dd") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args.Split(' ')) psi.ArgumentList.Add(a);
            var sw = Stopwatch.StartNew();
            using var p = Process.Start(psi)!;
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return 32 / sw.Elapsed.TotalSeconds;
        }
        return (Dd($"if=/dev/zero of={disk} bs=1M count=32 oflag=direct conv=notrunc"), Dd($"if={disk} of=/dev/null bs=1M count=32 iflag=direct"));
    }
}
