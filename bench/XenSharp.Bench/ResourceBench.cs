using System.Diagnostics;
using System.Text;
using XenSharp.Accel;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Scheduling;

/// <summary>
/// Resource guarantees, measured with guests/pv-res through the toolstack (what xld runs) on its own CPU cgroup:
/// credit weights on a shared host CPU, a cap alone on a CPU, and the balloon's effect on host memory. Each figure
/// is printed beside its target and a baseline from the same run; nothing is asserted.
/// </summary>
static class ResourceBench
{
    public static void Run(Func<IAccelerator> make, string repo, double seconds)
    {
        string guest = Path.Combine(repo, "guests", "build", "pv-res.elf");
        if (!File.Exists(guest)) { Console.WriteLine($"resource figures: skipped ({guest} not built: make -C guests)"); return; }
        int cpu = Environment.ProcessorCount - 1; // the last host CPU: every spinning domain is pinned there
        string group = $"xensharp-bench-{Environment.ProcessId}";
        var scheduler = CreditScheduler.ForHost(group);
        var state = Directory.CreateTempSubdirectory("xensharp-bench-res");
        using var accel = make();
        var hv = new XenHypervisor(new SharedAccelerator(accel), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30), scheduler);
        try
        {
            using var ts = new XenSharp.Toolstack.Toolstack(hv, new XenSharp.Toolstack.ToolstackOptions(Path.Combine(state.FullName, "s"), Path.Combine(state.FullName, "l")));
            Domain Create(string name, int memoryMiB, string extra, string settings = "")
            {
                var cfg = $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{guest}\"\nmemory={memoryMiB}\nextra=\"{extra}\"\n{settings}\n";
                var (plan, _) = XenSharp.Toolstack.ConfigLoader.Load(cfg, "bench.cfg", [], state.FullName);
                return ts.Create(plan, paused: false);
            }

            if (!scheduler.HasCgroup) Console.WriteLine($"credit weight/cap figures: skipped (no writable CPU cgroup: {scheduler.Description})");
            else
            {
                // Other work on this host (builds, tests) runs beside the bench in the root group, where our whole group counts as
                // one task of weight 1024: the group gets the largest share (as a host dedicated to guests would give xld's group),
                // so the figures show the weights and the cap rather than the neighbours.
                string shares = Path.Combine("/sys/fs/cgroup/cpu", group, "cpu.shares");
                if (File.Exists(shares)) File.WriteAllText(shares, "262144");
                Console.WriteLine($"credit scheduler: {scheduler.Description} (group cpu.shares 262144); spinning guests pinned to host CPU {cpu}, {seconds:F0} s per figure");
                var (e1, e2) = CpuShares(ts, Create, cpu, 256, 256, seconds);
                var (w1, w2) = CpuShares(ts, Create, cpu, 256, 512, seconds);
                double ratio = w2 / w1, baseline = e2 / e1;
                Console.WriteLine($"weights 256:512 on one CPU: CPU time ratio {ratio:F3} (target 2.000, {100 * (ratio / 2 - 1):0.0}% off); " +
                                  $"baseline 256:256 ratio {baseline:F3}; shares {w1:P1} / {w2:P1} of the CPU (equal weights: {e1:P1} / {e2:P1})");
                double capped = Alone(ts, Create, cpu, "cap=50", seconds);
                double free = Alone(ts, Create, cpu, "", seconds);
                Console.WriteLine($"cap=50 alone on one CPU: {100 * capped:F1}% of the CPU (target 50.0%, ratio {capped / 0.5:F3}); " +
                                  $"baseline uncapped alone {100 * free:F1}%, capped/uncapped {capped / free:F3}");
            }
            Balloon(ts, Create, 256);
        }
        finally
        {
            hv.Dispose();
            state.Delete(true);
            // Domain groups whose threads were still exiting when the domain went are removed here, then the bench's group.
            var root = Path.Combine("/sys/fs/cgroup/cpu", group);
            for (int attempt = 0; attempt < 50 && Directory.Exists(root); attempt++)
            {
                try
                {
                    foreach (var sub in Directory.GetDirectories(root)) Directory.Delete(sub);
                    Directory.Delete(root);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Thread.Sleep(100); }
            }
        }
    }

    private static (double A, double B) CpuShares(XenSharp.Toolstack.Toolstack ts, Func<string, int, string, string, Domain> create, int cpu, int wa, int wb, double seconds)
    {
        var a = create($"w{wa}a", 32, "spin", $"cpus=\"{cpu}\"\ncpu_weight={wa}");
        var b = create($"w{wb}b", 32, "spin", $"cpus=\"{cpu}\"\ncpu_weight={wb}");
        try
        {
            Thread.Sleep(1500); // both spinning, the scheduler settled
            var (a0, b0, t0) = (a.CpuTime, b.CpuTime, Stopwatch.GetTimestamp());
            Thread.Sleep(TimeSpan.FromSeconds(seconds));
            var (a1, b1, wall) = (a.CpuTime, b.CpuTime, Stopwatch.GetElapsedTime(t0));
            return ((a1 - a0) / wall, (b1 - b0) / wall);
        }
        finally { ts.Destroy(a); ts.Destroy(b); }
    }

    private static double Alone(XenSharp.Toolstack.Toolstack ts, Func<string, int, string, string, Domain> create, int cpu, string settings, double seconds)
    {
        var d = create("alone", 32, "spin", $"cpus=\"{cpu}\"\n{settings}");
        try
        {
            Thread.Sleep(1500);
            var (c0, t0) = (d.CpuTime, Stopwatch.GetTimestamp());
            Thread.Sleep(TimeSpan.FromSeconds(seconds));
            return (d.CpuTime - c0) / Stopwatch.GetElapsedTime(t0);
        }
        finally { ts.Destroy(d); }
    }

    private static void Balloon(XenSharp.Toolstack.Toolstack ts, Func<string, int, string, string, Domain> create, int mib)
    {
        var console = new StringBuilder();
        var d = create("balloon", mib + 64, $"balloon={mib}", "");
        using var sub = d.Console.Subscribe(data => { lock (console) console.Append(Encoding.ASCII.GetString(data.Span)); });
        void WaitFor(string text)
        {
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (true)
            {
                lock (console) if (console.ToString().Contains(text)) return;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"no '{text}' from the balloon guest: {console}");
                Thread.Sleep(20);
            }
        }
        try
        {
            WaitFor($"PVRES touched {mib} MiB");
            Thread.Sleep(500);
            var before = HostMemoryFigures.Read(d);
            var sw = Stopwatch.StartNew();
            d.Console.WriteInput("\n"u8);
            WaitFor($"PVRES down {mib} MiB");
            double downMs = sw.Elapsed.TotalMilliseconds;
            Thread.Sleep(500);
            var down = HostMemoryFigures.Read(d);
            sw.Restart();
            d.Console.WriteInput("\n"u8);
            WaitFor($"PVRES up {mib} MiB");
            double upMs = sw.Elapsed.TotalMilliseconds;
            Thread.Sleep(500);
            var up = HostMemoryFigures.Read(d);
            static double M(long bytes) => bytes / (double)(1 << 20);
            double freed = M(before.Memfd - down.Memfd);
            Console.WriteLine($"balloon down {mib} MiB: domain memfd {M(before.Memfd):F0} -> {M(down.Memfd):F0} MiB, host pages freed {freed:F1} MiB " +
                              $"(target >= 250, ratio {freed / 250:F3} of the target, {freed / mib:F3} of the ballooned size) in {downMs:F0} ms; " +
                              $"host-wide: Shmem {M(down.Shmem - before.Shmem):+0.0;-0.0} MiB, MemAvailable {M(down.Available - before.Available):+0.0;-0.0} MiB, " +
                              $"this process's memory cgroup {M(down.Cgroup - before.Cgroup):+0.0;-0.0} MiB (other processes move the host-wide ones)");
            Console.WriteLine($"balloon up {mib} MiB (populate_physmap + the guest touching every page): memfd {M(up.Memfd):F0} MiB " +
                              $"({M(up.Memfd - down.Memfd):+0.0;-0.0}), Shmem {M(up.Shmem - down.Shmem):+0.0;-0.0} MiB, MemAvailable {M(up.Available - down.Available):+0.0;-0.0} MiB, " +
                              $"memory cgroup {M(up.Cgroup - down.Cgroup):+0.0;-0.0} MiB, in {upMs:F0} ms");
        }
        finally { ts.Destroy(d); }
    }

}

/// <summary>A domain's memfd footprint and the host's memory figures; the host-wide ones are the median of five reads.</summary>
readonly record struct HostMemoryFigures(long Memfd, long Shmem, long Available, long Cgroup)
{
    public static HostMemoryFigures Read(Domain d)
    {
        var reads = Enumerable.Range(0, 5).Select(_ => { Thread.Sleep(20); return (Meminfo("Shmem:"), Meminfo("MemAvailable:"), CgroupUsage()); }).ToList();
        static long Median(IEnumerable<long> xs) => xs.Order().ElementAt(2);
        return new((long)d.Memory.AllocatedBytes, Median(reads.Select(r => r.Item1)), Median(reads.Select(r => r.Item2)), Median(reads.Select(r => r.Item3)));
    }

    private static long Meminfo(string key)
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line.AsSpan(key.Length).Trim().TrimEnd("kB").Trim()) * 1024;
        return 0;
    }

    /// <summary>memory.usage_in_bytes of this process's memory cgroup (v1), or 0.</summary>
    private static long CgroupUsage()
    {
        try
        {
            var line = File.ReadLines("/proc/self/cgroup").FirstOrDefault(l => l.Split(':') is { Length: 3 } p && p[1].Split(',').Contains("memory"));
            if (line is null) return 0;
            return long.Parse(File.ReadAllText($"/sys/fs/cgroup/memory{line.Split(':')[2]}/memory.usage_in_bytes").Trim());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return 0; }
    }
}
