using System.Diagnostics;
using Iced.Intel;
using XenSharp.Accel;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Hvm;
using XenSharp.Hypervisor.Pv.Cpu;
using static Iced.Intel.AssemblerRegisters;

/// <summary>
/// Null hypercall round trip: xen_version(0) in a tight loop inside a PV guest (the hostile test kernel's
/// "bench=N" mode) through the full PV path, against the bare floor on the same accelerator: a raw vCPU whose
/// loop does `syscall` to a stub that rings an I/O doorbell, resumed at once by the bench loop, no dispatch.
/// </summary>
static class PvHypercallBench
{
    public static void NullHypercall(Func<IAccelerator> make, string kernel, int iterations)
    {
        var image = File.ReadAllBytes(kernel);
        // Boot and shutdown cost is taken out by running the kernel with 0 and with N hypercalls.
        // Median of three rounds of each, after a JIT warm-up: the host is shared, single rounds are noisy.
        FullPath(make, image, 0); FullPath(make, image, iterations / 10);
        Bare(make, iterations / 10);
        var full = new List<double>(); var bare = new List<double>(); var exitsPer = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            var (t0, e0) = FullPath(make, image, 0);
            var (tn, en) = FullPath(make, image, iterations);
            full.Add((tn - t0) / iterations);
            exitsPer.Add((double)(en - e0) / iterations);
            bare.Add(Bare(make, iterations));
        }
        double f = Median(full), b = Median(bare);
        Console.WriteLine($"null hypercall (xen_version(0), median of 3): full PV path {f:F2} µs, bare syscall->stub->doorbell->resume {b:F2} µs, ratio {f / b:F3}, exits per hypercall {Median(exitsPer):F3}");
    }

    private static double Median(List<double> xs) { var s = xs.OrderBy(x => x).ToList(); return s[s.Count / 2]; }

    /// <summary>Runs the kernel with bench=n to its poweroff; returns elapsed µs and vCPU 0's exits.</summary>
    private static (double Micros, long Exits) FullPath(Func<IAccelerator> make, byte[] kernel, int n)
    {
        using var hv = new XenHypervisor(make(), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30));
        var d = hv.CreateDomain(new DomainCreateSpec("pvbench", DomainType.Pv, 32 << 20, 32 << 20, 1, 1));
        PvDomainSetup.Compose(d, 1, kernel, $"bench={n}");
        var done = new ManualResetEventSlim();
        hv.DomainShutdown += _ => done.Set();
        hv.Start(d);
        var sw = Stopwatch.StartNew();
        d.Unpause();
        if (!done.Wait(TimeSpan.FromMinutes(5))) throw new TimeoutException("PV bench guest did not power off");
        sw.Stop();
        return (sw.Elapsed.TotalMicroseconds, d.Vcpus[0].ExitCount);
    }

    /// <summary>
    /// The floor: a 64-bit vCPU loops `syscall`; LSTAR points at a stub that writes doorbell port 0x80 (an exit
    /// the bench loop resumes at once) and jumps back to rcx. Returns µs per round trip.
    /// </summary>
    private static double Bare(Func<IAccelerator> make, int iterations)
    {
        var a = new Assembler(64);
        var top = a.CreateLabel(); var stub = a.CreateLabel(); var end = a.CreateLabel();
        a.mov(r12d, iterations);
        a.Label(ref top);
        a.xor(edi, edi);
        a.mov(eax, 17);
        a.syscall();
        a.dec(r12d);
        a.jnz(top);
        a.jmp(end);
        a.Label(ref stub);
        a.@out(0x80, al);                                   // doorbell
        a.jmp(rcx);                                         // immediate resume, no dispatch
        a.Label(ref end);
        a.mov(dx, 0x604);
        a.mov(ax, 0x2000);
        a.@out(dx, ax);
        a.hlt();
        var w = new Writer();
        var res = a.Assemble(w, HvmLayout.DefaultFlatLoad, BlockEncoderOptions.ReturnNewInstructionOffsets);
        ulong stubVa = HvmLayout.DefaultFlatLoad + res.Result[0].NewInstructionOffsets[StubIndex];

        using var accel = make();
        using var vm = accel.CreateVirtualMachine();
        using var mem = new GuestMemory(16 << 20);
        vm.MapMemory(0, 0, mem, 0, mem.Size);
        using var cpu = vm.CreateVcpu(0);
        var image = HvmBuilder.LoadFlat(mem, w.Bytes.ToArray(), HvmLayout.DefaultFlatLoad, BootMode.Long);
        HvmBuilder.SetupBootCpu(mem, cpu, image);
        var s = cpu.GetSpecialRegisters();
        ulong cs = s.Cs.Selector;
        s.Efer |= X86.EferSce;
        cpu.SetSpecialRegisters(s);
        cpu.SetMsr(X86.MsrStar, (cs << 32) | (cs << 48));
        cpu.SetMsr(X86.MsrLstar, stubVa);
        cpu.SetMsr(X86.MsrSyscallMask, 0);
        int exits = 0;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var e = cpu.Run();
            if (e.Reason == ExitReason.Io && e.Address == 0x80) { exits++; continue; }
            break;
        }
        sw.Stop();
        if (exits != iterations) throw new InvalidOperationException($"bare loop: {exits} doorbells for {iterations} syscalls");
        return sw.Elapsed.TotalMicroseconds / exits;
    }

    private const int StubIndex = 7; // mov, [top] xor, mov, syscall, dec, jnz, jmp, [stub] out

    private sealed class Writer : CodeWriter
    {
        public readonly List<byte> Bytes = new();
        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
