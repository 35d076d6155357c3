using System.Diagnostics;
using System.Globalization;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

/// <summary>
/// PV devices end to end: a real xld (its own temp socket, state, logs, xenstored socket and cgroup) runs the PV test
/// kernel with its xenbus frontends, which time themselves with their pvclock and print the figures on the console.
/// Each figure is printed beside a host baseline measured in the same run:
///   disk sequential write/read (44 KiB requests, 8 in flight) vs host dd on the same image file;
///   disk random 4 KiB write/read vs host pwrite/pread of 4 KiB at random offsets of the same file;
///   guest-to-guest ping RTT over xld's switch vs host loopback ping RTT;
///   xenstore write+read from a guest over its ring vs the same ops from dom0 over the xenstored unix socket.
/// </summary>
static partial class PvDeviceBench
{
    public static void Run(string repo)
    {
        string xld = Path.Combine(repo, "src", "XenSharp.Daemon", "bin", "Release", "net10.0", "xld.dll");
        string xl = Path.Combine(repo, "src", "XenSharp.Cli", "bin", "Release", "net10.0", "xl.dll");
        string kernel = Path.Combine(repo, "guests", "build", "pv-test.elf");
        foreach (var f in new[] { xld, xl, kernel })
            if (!File.Exists(f)) { Console.WriteLine($"PV devices: skipped ({f} not built: bench/run.sh builds it)"); return; }
        if (Environment.UserName != "root") { Console.WriteLine("PV devices: skipped (xld needs root)"); return; }
        Console.WriteLine("\n== PV devices (xld with the PV test kernel's frontends)");
        using var d = new BenchDaemon(xld, xl, repo);
        try
        {
            Disk(d, kernel);
            Ping(d, kernel);
            Xenstore(d, kernel);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            Console.WriteLine($"PV devices: stopped: {e.Message}");
        }
    }

    private static string Cfg(BenchDaemon d, string name, string kernel, string extra, string settings)
    {
        var path = Path.Combine(d.Dir, name + ".cfg");
        File.WriteAllText(path, $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{kernel}\"\nextra=\"reason=0 xenbus {extra}\"\nmemory=32\nvcpus=2\n{settings}\n");
        return path;
    }

    [GeneratedRegex(@"PVTEST blkbench (\w+) bytes=(\d+) requests=(\d+) ns=(\d+) errors=(\d+)")]
    private static partial Regex BlkLine();

    private const int BenchMiB = 64, BenchIops = 2000;

    /// <summary>The PV test kernel's blkfront benchmark on one disk: kind → bytes, requests and seconds, or null.</summary>
    private static Dictionary<string, (double Bytes, double Requests, double Secs)>? GuestDisk(BenchDaemon d, string kernel, string name, string disk)
    {
        d.Create(Cfg(d, name, kernel, $"blkbench={BenchMiB} iops={BenchIops}", $"disk = [ \"{disk}\" ]\non_poweroff=\"destroy\""));
        string log = d.WaitConsole(name, "PVTEST done", TimeSpan.FromMinutes(5));
        d.WaitGone(name);
        var g = BlkLine().Matches(log).ToDictionary(m => m.Groups[1].Value, m => (Bytes: double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            Requests: double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture), Secs: double.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture) / 1e9));
        if (g.Count >= 4) return g;
        Console.WriteLine($"disk: guest did not report its figures:\n{log}");
        return null;
    }

    private static void Disk(BenchDaemon d, string kernel)
    {
        const int mib = BenchMiB, iops = BenchIops;
        string img = Path.Combine(d.Dir, "bench.img");
        using (var f = File.Create(img)) f.SetLength((mib + 16) << 20);
        var g = GuestDisk(d, kernel, "bench-blk", $"{img},raw,xvda,rw");
        if (g is null) return;

        // Host: dd on the same file and the same region (sector 4096 on), 44 KiB blocks as the guest's requests.
        const int bs = 11 * 4096;
        int count = (mib << 20) / bs;
        bool direct = Dd($"if=/dev/zero of={img} bs={bs} count=1 seek=100 oflag=direct conv=notrunc", out _) is not null;
        string of = direct ? "oflag=direct " : "";
        string iff = direct ? "iflag=direct " : "iflag=nocache ";
        double? hw = Dd($"if=/dev/zero of={img} bs={bs} count={count} seek={4096 * 512 / bs} {of}conv=fsync,notrunc", out string werr);
        double? hr = Dd($"if={img} of=/dev/null bs={bs} count={count} skip={4096 * 512 / bs} {iff}", out string rerr);
        double Mib(string k) => g[k].Bytes / (1 << 20) / g[k].Secs;
        string Ratio(double a, double? b) => b is { } x ? $"{a / x:F2}" : "n/a";
        Console.WriteLine($"disk ({(direct ? "O_DIRECT" : "page cache")}): sequential write guest {Mib("seqwrite"):F1} MiB/s, host dd {hw?.ToString("F1", CultureInfo.InvariantCulture) ?? werr} MiB/s, ratio {Ratio(Mib("seqwrite"), hw)}");
        Console.WriteLine($"disk: sequential read guest {Mib("seqread"):F1} MiB/s, host dd {hr?.ToString("F1", CultureInfo.InvariantCulture) ?? rerr} MiB/s, ratio {Ratio(Mib("seqread"), hr)}");
        var (hostW, hostR) = HostRandom(img, iops, direct);
        double gw = g["randwrite4k"].Requests / g["randwrite4k"].Secs, gr = g["randread4k"].Requests / g["randread4k"].Secs;
        Console.WriteLine($"disk: random 4 KiB write guest {gw:F0} IOPS (8 in flight), host pwrite {hostW:F0} IOPS (1 in flight, then fsync), ratio {gw / hostW:F2}");
        Console.WriteLine($"disk: random 4 KiB read guest {gr:F0} IOPS (8 in flight), host pread {hostR:F0} IOPS (1 in flight), ratio {gr / hostR:F2}");
        Qcow2Disk(d, kernel, g);
    }

    /// <summary>The same guest benchmark on a new, empty qcow2 image (every cluster allocated on its first write), beside the raw figures above.</summary>
    private static void Qcow2Disk(BenchDaemon d, string kernel, Dictionary<string, (double Bytes, double Requests, double Secs)> raw)
    {
        string q = Path.Combine(d.Dir, "bench.qcow2");
        if (!File.Exists("/usr/bin/qemu-img")) { Console.WriteLine("disk qcow2: skipped (qemu-img not installed; scripts/setup.sh installs qemu-utils)"); return; }
        var p = System.Diagnostics.Process.Start("/usr/bin/qemu-img", $"create -q -f qcow2 {q} {BenchMiB + 16}M")!;
        p.WaitForExit();
        if (p.ExitCode != 0) { Console.WriteLine("disk qcow2: skipped (qemu-img create failed)"); return; }
        var g = GuestDisk(d, kernel, "bench-qcow2", $"{q},qcow2,xvda,rw");
        if (g is null) return;
        double Mib(Dictionary<string, (double Bytes, double Requests, double Secs)> x, string k) => x[k].Bytes / (1 << 20) / x[k].Secs;
        double Iops(Dictionary<string, (double Bytes, double Requests, double Secs)> x, string k) => x[k].Requests / x[k].Secs;
        // Not like for like on reads: the qcow2 container goes through the host page cache (its metadata is synced at
        // allocation and flush), raw images are opened O_DIRECT, so reading back what was just written comes from memory.
        Console.WriteLine($"disk qcow2 (new image, clusters allocated as written; page cache, raw is O_DIRECT) vs raw: sequential write {Mib(g, "seqwrite"):F1} vs {Mib(raw, "seqwrite"):F1} MiB/s " +
            $"(ratio {Mib(g, "seqwrite") / Mib(raw, "seqwrite"):F2}), read {Mib(g, "seqread"):F1} vs {Mib(raw, "seqread"):F1} ({Mib(g, "seqread") / Mib(raw, "seqread"):F2}), " +
            $"random 4 KiB write {Iops(g, "randwrite4k"):F0} vs {Iops(raw, "randwrite4k"):F0} IOPS ({Iops(g, "randwrite4k") / Iops(raw, "randwrite4k"):F2}), " +
            $"read {Iops(g, "randread4k"):F0} vs {Iops(raw, "randread4k"):F0} ({Iops(g, "randread4k") / Iops(raw, "randread4k"):F2})");
    }

    /// <summary>Runs dd; returns MiB/s from its own timing (null on failure, with the reason).</summary>
    private static double? Dd(string args, out string error)
    {
        var psi = new ProcessStartInfo("dd", args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        error = err.Trim().Split('\n')[0];
        if (p.ExitCode != 0) return null;
        var m = Regex.Match(err, @"(\d+) bytes .* copied, ([\d.]+) s");
        if (!m.Success) return null;
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / (1 << 20) / double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);
    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pread(int fd, void* buf, nint n, long off);
    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pwrite(int fd, void* buf, nint n, long off);
    [LibraryImport("libc")]
    private static partial int fsync(int fd);
    [LibraryImport("libc")]
    private static partial int close(int fd);

    /// <summary>4 KiB pwrite then pread at random 4 KiB-aligned offsets of the guest's region, one at a time.</summary>
    private static unsafe (double Write, double Read) HostRandom(string img, int n, bool direct)
    {
        int fd = open(img, 2 | (direct ? 0x4000 : 0));
        if (fd < 0) return (double.NaN, double.NaN);
        void* buf = NativeMemory.AlignedAlloc(4096, 4096);
        try
        {
            new Span<byte>(buf, 4096).Fill(0x5a);
            long first = 4096 * 512, span = new FileInfo(img).Length - first;
            var rnd = new Random(1);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < n; i++) pwrite(fd, buf, 4096, first + rnd.NextInt64(span / 4096) * 4096);
            fsync(fd);
            double w = n / sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int i = 0; i < n; i++) pread(fd, buf, 4096, first + rnd.NextInt64(span / 4096) * 4096);
            double r = n / sw.Elapsed.TotalSeconds;
            return (w, r);
        }
        finally
        {
            NativeMemory.AlignedFree(buf);
            close(fd);
        }
    }

    [GeneratedRegex(@"PVTEST ping [\d.]+ replies=(\d+)/(\d+) rtt_us min=(\d+) avg=(\d+) max=(\d+)")]
    private static partial Regex PingLine();

    private static void Ping(BenchDaemon d, string kernel)
    {
        const int count = 100;
        d.Create(Cfg(d, "bench-net1", kernel, "ip=10.233.0.1", "vif = [ \"mac=00:16:3e:5b:00:01,bridge=xsbench\" ]"));
        d.WaitConsole("bench-net1", "PVTEST serving", TimeSpan.FromMinutes(2));
        d.Create(Cfg(d, "bench-net2", kernel, $"ip=10.233.0.2 ping=10.233.0.1 count={count}", "vif = [ \"mac=00:16:3e:5b:00:02,bridge=xsbench\" ]"));
        string log = d.WaitConsole("bench-net2", "PVTEST serving", TimeSpan.FromMinutes(2));
        d.Xl("destroy", "bench-net1");
        d.Xl("destroy", "bench-net2");
        var m = PingLine().Match(log);
        if (!m.Success) { Console.WriteLine($"ping: guest did not report:\n{log}"); return; }
        using var ping = new Ping();
        for (int i = 0; i < 10; i++) ping.Send("127.0.0.1", 1000);
        var rtts = new List<double>();
        for (int i = 0; i < count; i++)
        {
            var sw = Stopwatch.StartNew();
            if (ping.Send("127.0.0.1", 1000).Status == IPStatus.Success) rtts.Add(sw.Elapsed.TotalMicroseconds);
        }
        double gAvg = double.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture), gMin = double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
        double hAvg = rtts.Average(), hMin = rtts.Min();
        Console.WriteLine($"ping: guest-to-guest over xld's switch {m.Groups[1].Value}/{m.Groups[2].Value} replies, RTT avg {gAvg:F0} µs (min {gMin:F0}), " +
                          $"host loopback (System.Net Ping, raw ICMP) avg {hAvg:F0} µs (min {hMin:F0}), ratio avg {gAvg / hAvg:F1}");
    }

    [GeneratedRegex(@"PVTEST xsbench ops=(\d+) ns=(\d+)")]
    private static partial Regex XsLine();

    private static void Xenstore(BenchDaemon d, string kernel)
    {
        const int n = 5000;
        d.Create(Cfg(d, "bench-xs", kernel, $"xsbench={n}", "on_poweroff=\"destroy\""));
        string log = d.WaitConsole("bench-xs", "PVTEST done", TimeSpan.FromMinutes(5));
        var m = XsLine().Match(log);
        if (!m.Success) { Console.WriteLine($"xenstore: guest did not report:\n{log}"); return; }
        double guest = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) / (double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) / 1e9);
        double host = SocketOps(d.XenstoredSocket, n);
        Console.WriteLine($"xenstore: write+read from a guest over its ring {guest:F0} ops/s, from dom0 over the xenstored unix socket {host:F0} ops/s, ratio {guest / host:F2}");
    }

    /// <summary>n XS_WRITE + XS_READ pairs of one node over the xenstored unix socket (io/xs_wire.h framing).</summary>
    private static double SocketOps(string path, int n)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(path));
        var hdr = new byte[16];
        var body = new byte[4096];
        uint id = 0;
        string Rpc(uint type, string payload)
        {
            var p = Encoding.ASCII.GetBytes(payload);
            BitConverter.TryWriteBytes(hdr.AsSpan(0), type);
            BitConverter.TryWriteBytes(hdr.AsSpan(4), ++id);
            BitConverter.TryWriteBytes(hdr.AsSpan(8), 0u);
            BitConverter.TryWriteBytes(hdr.AsSpan(12), (uint)p.Length);
            s.Send([.. hdr, .. p]); // one write per request, as libxenstore does
            int got = 0;
            while (got < 16) got += s.Receive(hdr, got, 16 - got, SocketFlags.None);
            int len = (int)BitConverter.ToUInt32(hdr, 12);
            got = 0;
            while (got < len) got += s.Receive(body, got, len - got, SocketFlags.None);
            if (BitConverter.ToUInt32(hdr, 0) == 16) throw new InvalidOperationException($"xenstored: {Encoding.ASCII.GetString(body, 0, len)}");
            return Encoding.ASCII.GetString(body, 0, len);
        }
        const string node = "/local/domain/0/xsbench";
        Rpc(11, node + "\0warm");
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            string v = i.ToString(CultureInfo.InvariantCulture);
            Rpc(11, node + "\0" + v);
            if (Rpc(2, node + "\0").TrimEnd('\0') != v) throw new InvalidOperationException("xenstored read back a different value");
        }
        return 2 * n / sw.Elapsed.TotalSeconds;
    }
}
