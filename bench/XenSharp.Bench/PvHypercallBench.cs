using System.Diagnostics;
using Iced.Intel;
using XenSharp.Accel;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Hvm;
using XenSharp.Hypervisor.Pv.Cpu;
using static Iced.Intel.AssemblerRegisters;

/// <summary>
/// Null hypercall round trip: xen_version(0) in a tight loop inside a PV guest (the hostile test kernel's
/// "bench=N" mode) through the full PV path, against the bare floor on the same accelerator: a raw CPL3 vCPU whose
/// loop does `syscall` to a stub that rings the PV port doorbell, returned to by registers alone, no dispatch.
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
        if (make().Name == "kvm") Bench.Figures["null-hypercall"] = f;
        Console.WriteLine($"null hypercall (xen_version(0), median of 3): full PV path {f:F2} µs, bare CPL3 syscall->stub->port doorbell->registers {b:F2} µs, ratio {f / b:F3}, exits per hypercall {Median(exitsPer):F3}");
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
        if (Environment.GetEnvironmentVariable("XS_DEBUG") == "1") foreach (var c in DomainPerfCounters.Of(d)) if (c.Value != 0) Console.WriteLine($"  {c.Name} {c.Value}");
        return (sw.Elapsed.TotalMicroseconds, d.Vcpus[0].ExitCount);
    }

    /// <summary>
    /// The floor, built as a PV guest is: a 64-bit vCPU at CPL3 loops `syscall`; LSTAR points at a stub that rings the
    /// same port doorbell as the PV syscall stub (`out imm8, al`, let through by the TSS I/O bitmap) and stops; the bench
    /// loop returns by registers alone (rip = rcx, rflags = r11), as the PV path's direct return does. No dispatch,
    /// no validation. Under PVM `syscall` stays at CPL3, so this is exactly the world switch our path pays; on
    /// VT-x/AMD-V the stub runs at CPL0. Returns µs per round trip.
    /// </summary>
    private static double Bare(Func<IAccelerator> make, int iterations)
    {
        const ulong Code = 0x100000, Stub = 0x101000, StackTop = 0x1ff000, Gdt = 0x400000, Tss = 0x401000, Pml4 = 0x2000, Pdpt = 0x3000, Pd = 0x4000;
        const int Port = PvLayout.DoorbellPortSyscall;
        var a = new Assembler(64);
        var top = a.CreateLabel();
        a.mov(r12d, iterations);
        a.Label(ref top);
        a.xor(edi, edi);
        a.mov(eax, 17);
        a.syscall();
        a.dec(r12d);
        a.jnz(top);
        a.@out(0x81, al); // done (outside the bitmap: #GP at CPL3 unless the CPU hands it to us, which it does not)
        var w = new Writer();
        a.Assemble(w, Code);
        var stub = new Assembler(64);
        stub.@out(Port, al);
        stub.ud2();
        var ws = new Writer();
        stub.Assemble(ws, Stub);

        using var accel = make();
        using var vm = accel.CreateVirtualMachine();
        using var mem = new GuestMemory(16 << 20);
        vm.MapMemory(0, 0, mem, 0, mem.Size);
        using var cpu = vm.CreateVcpu(0);
        mem.Write(Code, w.Bytes.ToArray());
        mem.Write(Stub, ws.Bytes.ToArray());
        const ulong U = X86.PtePresent | X86.PteRw | X86.PteUser;
        mem.WriteUInt64(Pml4, Pdpt | U);
        mem.WriteUInt64(Pdpt, Pd | U);
        mem.WriteUInt64(Pd, 0 | U | X86.PtePse);                                // 0..2 MiB: code, stub, stack (user)
        mem.WriteUInt64(Pd + 16, Gdt | X86.PtePresent | X86.PteRw | X86.PtePse); // 4..6 MiB: GDT, TSS (supervisor)
        mem.WriteUInt64(Gdt + 0x08, 0x00209a0000000000);                      // kernel code64
        mem.WriteUInt64(Gdt + 0x10, 0x00cf92000000ffff);                      // kernel data
        mem.WriteUInt64(Gdt + 0x18, 0x00cff2000000ffff);                      // user data (0x1b)
        mem.WriteUInt64(Gdt + 0x20, 0x0020fa0000000000);                      // user code64 (0x23)
        mem.WriteUInt64(Gdt + 0x28, PvLayout.TssLimit | ((Tss & 0xffffff) << 16) | (0x89UL << 40) | (((Tss >> 24) & 0xff) << 56));
        mem.WriteUInt64(Tss + 4, Gdt + 0x100000);
        mem.WriteUInt16(Tss + 102, PvLayout.IoBitmapOffset);
        mem.Write(Tss + PvLayout.IoBitmapOffset, PvLayout.IoBitmap(Port));
        cpu.SetCpuid(PvCpuid.Table(accel));
        var sr = cpu.GetSpecialRegisters();
        sr.SetFlatUserLongMode(Pml4, 0x23, 0x1b, new DescriptorTableRegister { Base = Gdt, Limit = 0x37 }, Tss, PvLayout.TssLimit, 0x28);
        cpu.SetSpecialRegisters(sr);
        cpu.SetMsr(X86.MsrStar, (0x08UL << 32) | (0x13UL << 48));
        cpu.SetMsr(X86.MsrLstar, Stub);
        cpu.SetMsr(X86.MsrSyscallMask, 0);
        cpu.SetRegisters(new VcpuRegisters { Rip = Code, Rflags = 0x202, Rsp = StackTop });
        int exits = 0;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var e = cpu.Run();
            if (e.Reason != ExitReason.Io || e.Address != Port) break;
            exits++;
            var r = cpu.GetRegisters();
            r.Rip = r.Rcx;
            r.Rflags = r.R11 | X86.RflagsReserved1;
            cpu.SetRegisters(r);
        }
        sw.Stop();
        if (exits != iterations) throw new InvalidOperationException($"bare loop: {exits} doorbells for {iterations} syscalls");
        return sw.Elapsed.TotalMicroseconds / exits;
    }

    private sealed class Writer : CodeWriter
    {
        public readonly List<byte> Bytes = new();
        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}
