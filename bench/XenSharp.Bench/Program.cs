using System.Diagnostics;
using Iced.Intel;
using XenSharp.Accel;
using XenSharp.Emu;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Hvm;
using XenSharp.Kvm;
using static Iced.Intel.AssemblerRegisters;

// Benchmarks print each figure beside a baseline measured in the same run, and their ratio. Nothing here
// asserts a threshold: the figures are for people to compare.
string repo = Bench.FindRepo();
if (args.Contains("pv-devices"))
{
    PvDeviceBench.Run(repo);
    return 0;
}
if (args.Contains("linux"))
{
    LinuxBootBench.Run(repo);
    return 0;
}
var accels = new List<(string Name, Func<IAccelerator> Make)>();
var (kvmUsable, kvmReason) = KvmAccelerator.Probe();
if (kvmUsable) accels.Add(("kvm", () => new KvmAccelerator()));
else Console.WriteLine($"kvm: skipped ({kvmReason})");
accels.Add(("emu", () => new EmuAccelerator()));
string guest = Path.Combine(repo, "guests", "build", "hvm-hello.elf");

// "resources" runs only the resource-guarantee figures (weights, cap, balloon).
bool onlyResources = args.Contains("resources");
// "pvabi" runs only the PV ABI figures (event-channel ping-pong, page-fault exits).
bool onlyPvAbi = args.Contains("pvabi");
// "exits" runs only the exit-cost figures (port I/O and the null hypercall) and, on KVM, the C probes beside them.
bool onlyExits = args.Contains("exits");
string pvAbiKernel = Path.Combine(repo, "guests", "build", "pv-abi.elf");
foreach (var (name, make) in onlyResources ? [] : accels)
{
    Console.WriteLine($"\n== accelerator {name}");
    if (onlyExits)
    {
        Bench.ExitCost(make, iterations: name == "kvm" ? 20000 : 200000);
        if (name == "kvm") Bench.ExitCost(make, iterations: 20000, BootMode.Real); // the software CPU is 64-bit only
        PvHypercallBench.NullHypercall(make, Path.Combine(repo, "guests", "build", "pv-hostile.elf"), iterations: name == "kvm" ? 20000 : 200000);
        continue;
    }
    if (onlyPvAbi)
    {
        PvAbiBench.Run(make, pvAbiKernel, roundTrips: name == "kvm" ? 20000 : 5000, faults: 2000);
        continue;
    }
    Bench.ExitCost(make, iterations: name == "kvm" ? 20000 : 200000);
    if (name == "kvm") Bench.ExitCost(make, iterations: 20000, BootMode.Real); // the software CPU is 64-bit only
    if (File.Exists(guest)) Bench.CreateToFirstByte(make, guest, runs: 20);
    else Console.WriteLine($"create-to-first-byte: skipped ({guest} not built: make -C guests)");
    string pvKernel = Path.Combine(repo, "guests", "build", "pv-hostile.elf");
    if (File.Exists(pvKernel)) PvHypercallBench.NullHypercall(make, pvKernel, iterations: name == "kvm" ? 20000 : 200000);
    else Console.WriteLine($"null hypercall: skipped ({pvKernel} not built: make -C guests)");
    if (File.Exists(pvAbiKernel)) PvAbiBench.Run(make, pvAbiKernel, roundTrips: name == "kvm" ? 20000 : 5000, faults: 2000);
    else Console.WriteLine($"PV ABI figures: skipped ({pvAbiKernel} not built: make -C guests)");
}
if (onlyPvAbi) return 0;
if (kvmUsable && !onlyResources) Bench.CompareWithCProbes(repo);
if (onlyExits) return 0;
Console.WriteLine($"\n== resource guarantees ({accels[0].Name})");
ResourceBench.Run(accels[0].Make, repo, seconds: 10);
if (!onlyResources) PvDeviceBench.Run(repo);
if (!onlyResources) LinuxBootBench.Run(repo);
return 0;

static class Bench
{
    public static string FindRepo()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "XenSharp.slnx"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("run from inside the repository");
    }

    /// <summary>Figures kept for the side-by-side with the C probes: name → µs.</summary>
    public static readonly Dictionary<string, double> Figures = new();

    /// <summary>
    /// A guest that writes port 0x80 <paramref name="n"/> times, then powers off through port 0x604: 64-bit, or 16-bit
    /// real mode (the guest of ../shared/probes/kvmloop.c, for the same-instruction comparison on KVM).
    /// </summary>
    private static byte[] PortLoopGuest(int n, BootMode mode)
    {
        var a = new Assembler(mode == BootMode.Real ? 16 : 64);
        var top = a.CreateLabel();
        a.mov(ecx, n);
        a.Label(ref top);
        a.@out(0x80, al);
        a.dec(ecx);
        a.jnz(top);
        a.mov(dx, 0x604);
        a.mov(ax, 0x2000);
        a.@out(dx, ax);
        a.hlt();
        var w = new CodeWriterImpl();
        a.Assemble(w, mode == BootMode.Real ? RealModeLoad : HvmLayout.DefaultFlatLoad);
        return w.Bytes.ToArray();
    }

    private const ulong RealModeLoad = 0x1000;

    private sealed class CodeWriterImpl : CodeWriter
    {
        public readonly List<byte> Bytes = new();
        public override void WriteByte(byte value) => Bytes.Add(value);
    }

    /// <summary>Cost of one port-I/O exit: bare accelerator loop vs the full domain dispatch path (vCPU thread, platform, device bus).</summary>
    public static void ExitCost(Func<IAccelerator> make, int iterations, BootMode mode = BootMode.Long)
    {
        // A first round warms up the JIT on both paths; the second is measured.
        MeasureExitCost(make, iterations / 10, mode, print: false);
        MeasureExitCost(make, iterations, mode, print: true);
    }

    private static void MeasureExitCost(Func<IAccelerator> make, int iterations, BootMode mode, bool print)
    {
        var code = PortLoopGuest(iterations, mode);
        ulong load = mode == BootMode.Real ? RealModeLoad : HvmLayout.DefaultFlatLoad;

        double bare;
        using (var accel = make())
        using (var vm = accel.CreateVirtualMachine())
        using (var mem = new GuestMemory(16 << 20))
        {
            vm.MapMemory(0, 0, mem, 0, mem.Size);
            using var cpu = vm.CreateVcpu(0);
            var image = HvmBuilder.LoadFlat(mem, code, load, mode);
            HvmBuilder.SetupBootCpu(mem, cpu, image);
            var sw = Stopwatch.StartNew();
            int exits = 0;
            while (true)
            {
                var e = cpu.Run();
                if (e.Reason == ExitReason.Io && e.Address == 0x80) { exits++; continue; }
                break;
            }
            sw.Stop();
            bare = sw.Elapsed.TotalMicroseconds / Math.Max(1, exits);
        }

        double full;
        using (var hv = new XenHypervisor(make(), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30)))
        {
            var d = hv.CreateDomain(new DomainCreateSpec("bench", DomainType.Hvm, 16 << 20, 16 << 20, 1, 1));
            var v = d.AddVcpu(0);
            var image = HvmBuilder.LoadFlat(d.Memory, code, load, mode);
            HvmBuilder.SetupBootCpu(d.Memory, v.Cpu, image);
            d.AttachPlatform(new HvmPlatform(d));
            var done = new ManualResetEventSlim();
            hv.DomainShutdown += _ => done.Set();
            hv.Start(d);
            var sw = Stopwatch.StartNew();
            d.Unpause();
            done.Wait();
            sw.Stop();
            full = sw.Elapsed.TotalMicroseconds / iterations;
        }
        if (!print) return;
        Figures[$"port-io-{mode}"] = full;
        Console.WriteLine($"port-I/O exit ({(mode == BootMode.Real ? "real mode" : "64-bit")}): full dispatch {full:F2} µs, bare accelerator loop {bare:F2} µs, ratio {full / bare:F3} (goal <= 1.15)");
    }

    /// <summary>Domain build to the guest's first console byte, inside the daemon's code path, vs the bare floor (memory, VM, vCPU, run to the first OUT).</summary>
    public static void CreateToFirstByte(Func<IAccelerator> make, string guest, int runs)
    {
        var image = File.ReadAllBytes(guest);
        var bare = new List<double>();
        var full = new List<double>();
        using var accel = make();
        for (int i = 0; i < runs + 3; i++)
        {
            var sw = Stopwatch.StartNew();
            using (var mem = new GuestMemory(16 << 20))
            using (var vm = accel.CreateVirtualMachine())
            {
                vm.MapMemory(0, 0, mem, 0, mem.Size);
                using var cpu = vm.CreateVcpu(0);
                HvmBuilder.SetupBootCpu(mem, cpu, HvmBuilder.LoadElf(mem, image));
                while (true)
                {
                    var e = cpu.Run();
                    if (e.Reason == ExitReason.Io && e.IsWrite && e.Address == 0x3f8) break;
                    if (e.Reason == ExitReason.Io && !e.IsWrite) cpu.CompleteRead(e.Address == 0x3fd ? 0x60UL : 0);
                    if (e.Reason is ExitReason.Shutdown or ExitReason.InternalError or ExitReason.Halt) throw new InvalidOperationException($"guest stopped: {e}");
                }
            }
            if (i >= 3) bare.Add(sw.Elapsed.TotalMilliseconds); // the first runs warm up the JIT
        }

        var state = Directory.CreateTempSubdirectory("xensharp-bench");
        var hv = new XenHypervisor(new SharedAccelerator(accel), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30));
        using (var ts = new XenSharp.Toolstack.Toolstack(hv, new XenSharp.Toolstack.ToolstackOptions(Path.Combine(state.FullName, "s"), Path.Combine(state.FullName, "l"))))
        {
            var phases = new Dictionary<string, List<double>>();
            ts.PhaseTimer = (phase, t) => { if (!phases.TryGetValue(phase, out var l)) phases[phase] = l = new(); l.Add(t.TotalMilliseconds); };
            var cfgText = $"name=\"b\"\ntype=\"hvm\"\nkernel=\"{guest}\"\nmemory=16\n";
            var sw0 = Stopwatch.StartNew();
            int created = 0;
            for (int i = 0; i < runs + 3; i++)
            {
                if (i == 3) { sw0.Restart(); created = 0; full.Clear(); }
                var (plan, _) = XenSharp.Toolstack.ConfigLoader.Load(cfgText, "bench.cfg", [$"name=\"b{i}\""], state.FullName);
                var first = new ManualResetEventSlim();
                var sw = Stopwatch.StartNew();
                var d = ts.Create(plan, paused: true);
                using (d.Console.Subscribe(_ => first.Set(), replayHistory: false))
                {
                    d.Unpause();
                    first.Wait();
                }
                full.Add(sw.Elapsed.TotalMilliseconds);
                ts.Destroy(d);
                created++;
            }
            double perSecond = created / sw0.Elapsed.TotalSeconds;
            Console.WriteLine("create phases (median ms): " + string.Join(", ", phases.Select(p => $"{p.Key} {Median(p.Value.Skip(3).ToList()):F2}")));
            Console.WriteLine($"create+destroy: {perSecond:F1} per second (with a boot to the first console byte each)");
        }
        state.Delete(true);
        double fm = Median(full), bm = Median(bare);
        Console.WriteLine($"create -> first console byte: toolstack {fm:F2} ms, bare floor {bm:F2} ms, ratio {fm / bm:F2} (goal < 2 ms inside xld)");
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s[s.Length / 2];
    }

    /// <summary>The C probes from ../shared/probes, run in the same session, for the exit cost baseline on KVM.</summary>
    public static void CompareWithCProbes(string repo)
    {
        var probes = Path.GetFullPath(Path.Combine(repo, "..", "shared", "probes"));
        if (!Directory.Exists(probes))
        {
            Console.WriteLine($"C probes: skipped ({probes} missing)");
            return;
        }
        var outDir = Directory.CreateTempSubdirectory("xensharp-probes").FullName;
        // Each probe beside our figure for the same guest instruction: kvmloop's real-mode port write against the full
        // dispatch of the same loop in an HVM domain; kvmdoorbell kind 2 (CPL3 syscall → stub → doorbell → registers)
        // against the PV null hypercall.
        foreach (var (probe, args, ours, what) in new[] { ("kvmloop", "100000 1", "port-io-Real", "real-mode port-I/O exit, full dispatch"),
                                                           ("kvmdoorbell", "20000 0", "", ""),
                                                           ("kvmdoorbell", "20000 2", "null-hypercall", "PV null hypercall, full path") })
        {
            var bin = Path.Combine(outDir, probe);
            if (!File.Exists(bin) && Run("cc", $"-O2 -o {bin} {Path.Combine(probes, probe + ".c")}") is null) continue;
            string output = Run(bin, args)?.Trim() ?? "";
            Console.WriteLine($"C probe {probe} {args}: {output}");
            var m = System.Text.RegularExpressions.Regex.Match(output, @"per-iter=(\d+) ns|([\d.]+) us each");
            if (ours.Length == 0 || !m.Success || !Figures.TryGetValue(ours, out double mine)) continue;
            double c = m.Groups[1].Success ? double.Parse(m.Groups[1].Value) / 1000 : double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            Console.WriteLine($"  {what} {mine:F2} µs vs this probe {c:F2} µs: ratio {mine / c:F3} (goal <= 1.15)");
        }
    }

    private static string? Run(string file, string args)
    {
        try
        {
            var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string o = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return o;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}

/// <summary>Lets several hypervisors in one benchmark share one accelerator without disposing it.</summary>
sealed class SharedAccelerator(IAccelerator inner) : IAccelerator
{
    public string Name => inner.Name;
    public IVirtualMachine CreateVirtualMachine() => inner.CreateVirtualMachine();
    public CpuidEntry FilterCpuid(CpuidEntry entry) => inner.FilterCpuid(entry);
    public void Dispose() { }
}
