using XenSharp.Accel;
using XenSharp.Kvm;

namespace XenSharp.Kvm.Tests;

internal static class Kvm
{
    private static readonly Lazy<(bool Usable, string Reason)> ProbeResult = new(() => KvmAccelerator.Probe());

    /// <summary>Skips the calling test, with the reason, where KVM cannot be used.</summary>
    public static void Require()
    {
        var (usable, reason) = ProbeResult.Value;
        Skip.IfNot(usable, "needs KVM: " + reason);
    }
}

/// <summary>A VM with one memory slot and one vCPU, set up as the probes in shared/probes do.</summary>
internal sealed class TestGuest : IDisposable
{
    public KvmAccelerator Accelerator { get; }
    public KvmVm Vm { get; }
    public GuestMemory Memory { get; }
    public KvmVcpu Vcpu { get; }

    private TestGuest(ulong memorySize, bool syncRegisters, bool irqchip)
    {
        Accelerator = new KvmAccelerator();
        Vm = Accelerator.CreateKvmVm();
        if (irqchip) Assert.True(Vm.TryCreateInterruptController());
        Memory = new GuestMemory(memorySize);
        Vm.MapMemory(0, 0, Memory, 0, memorySize);
        Vcpu = Vm.CreateVcpu(0, syncRegisters);
    }

    /// <summary>Real mode, CS base 0, code at 0x1000 (kvmloop.c).</summary>
    public static TestGuest RealMode(byte[] code, bool syncRegisters = true, bool irqchip = false)
    {
        var g = new TestGuest(0x10000, syncRegisters, irqchip);
        g.Memory.Write(0x1000, code);
        var s = g.Vcpu.GetSpecialRegisters();
        s.Cs.Base = 0;
        s.Cs.Selector = 0;
        g.Vcpu.SetSpecialRegisters(s);
        g.Vcpu.SetRegisters(new VcpuRegisters { Rip = 0x1000, Rflags = 2 });
        return g;
    }

    public const ulong CodeAddress = 0x100000, MmioVirtual = 0x200000, MmioPhysical = 0x10000000, StackTop = 0x1ff000;
    public const ulong Gdt = 0x400000, Tss = 0x6000, Idt = 0x7000, Pml4 = 0x2000, Pdpt = 0x3000, Pd = 0x4000, Pt = 0x5000;
    public const ulong SupervisorPage = 0x400000, InterruptStackTop = 0x500000;

    /// <summary>
    /// 64-bit paging with the guest at CPL3, as kvmdoorbell.c and kvmpv.c set it up: VA 0..2 MiB identity-mapped
    /// (one 2 MiB user page; code at 0x100000, stack below 0x1ff000), VA 0x200000 → GPA 0x10000000 where there is no
    /// memory (MMIO), VA 0x400000..0x600000 a supervisor 2 MiB page (GDT, interrupt handlers, ring-0 stack). GDT:
    /// 0x08 kernel code64, 0x10 kernel data, 0x1b user data, 0x23 user code64, 0x28 TSS (at 0x6000, RSP0 0x500000);
    /// IDT at 0x7000 (empty until <see cref="SetInterruptGate"/>). CPUID from KVM_GET_SUPPORTED_CPUID.
    /// </summary>
    public static TestGuest LongMode(byte[] code, bool syncRegisters = true)
    {
        var g = new TestGuest(0x800000, syncRegisters, irqchip: false);
        var m = g.Memory;
        m.WriteUInt64(Gdt + 0x08, 0x00209a0000000000); // kernel code64
        m.WriteUInt64(Gdt + 0x10, 0x00cf92000000ffff); // kernel data
        m.WriteUInt64(Gdt + 0x18, 0x00cff2000000ffff); // user data (0x1b)
        m.WriteUInt64(Gdt + 0x20, 0x0020fa0000000000); // user code64 (0x23)
        m.WriteUInt64(Gdt + 0x28, 0x67 | ((Tss & 0xffffff) << 16) | (0x89UL << 40)); // 64-bit TSS, available
        m.WriteUInt64(Gdt + 0x30, 0);
        m.WriteUInt64(Tss + 4, InterruptStackTop); // RSP0
        const ulong U = X86.PtePresent | X86.PteRw | X86.PteUser;
        m.WriteUInt64(Pml4, Pdpt | U);
        m.WriteUInt64(Pdpt, Pd | U);
        m.WriteUInt64(Pd, 0 | U | X86.PtePse);
        m.WriteUInt64(Pd + 8, Pt | U);
        m.WriteUInt64(Pd + 16, SupervisorPage | X86.PtePresent | X86.PteRw | X86.PtePse);
        m.WriteUInt64(Pt, MmioPhysical | U);
        m.Write(CodeAddress, code);

        g.Vcpu.SetCpuid(g.Accelerator.System.GetSupportedCpuid());
        var s = g.Vcpu.GetSpecialRegisters();
        s.SetFlatUserLongMode(Pml4, 0x23, 0x1b, new DescriptorTableRegister { Base = Gdt, Limit = 0x37 }, Tss, 0x67, 0x28);
        s.Idt = new DescriptorTableRegister { Base = Idt, Limit = 0xfff };
        g.Vcpu.SetSpecialRegisters(s);
        g.Vcpu.SetRegisters(new VcpuRegisters { Rip = CodeAddress, Rflags = 0x202, Rsp = StackTop });
        return g;
    }

    /// <summary>A 64-bit interrupt gate (DPL0, kernel CS 0x08) for <paramref name="vector"/> to <paramref name="handler"/>.</summary>
    public void SetInterruptGate(int vector, ulong handler)
    {
        ulong a = Idt + (ulong)vector * 16;
        Memory.WriteUInt64(a, (handler & 0xffff) | (0x08UL << 16) | (0x8eUL << 40) | (((handler >> 16) & 0xffff) << 48));
        Memory.WriteUInt64(a + 8, handler >> 32);
    }

    /// <summary>
    /// Runs until an exit other than Interrupted (a stray signal). A watchdog kicks the vCPU after
    /// <paramref name="timeoutSeconds"/> so a guest that never exits fails the test instead of hanging the run.
    /// </summary>
    public VcpuExit RunToExit(int timeoutSeconds = 20)
    {
        int fired = 0;
        using var watchdog = new Timer(_ => { Volatile.Write(ref fired, 1); Vcpu.Kick(); }, null, timeoutSeconds * 1000, Timeout.Infinite);
        for (int i = 0; i < 100; i++)
        {
            var e = Vcpu.Run();
            if (e.Reason != ExitReason.Interrupted) return e;
            if (Volatile.Read(ref fired) != 0)
                throw new Xunit.Sdk.XunitException($"no exit within {timeoutSeconds} s (rip 0x{Vcpu.GetRegisters().Rip:x})");
        }
        throw new Xunit.Sdk.XunitException("100 Interrupted exits in a row");
    }

    public void Dispose()
    {
        Vm.Dispose();
        Memory.Dispose();
        Accelerator.Dispose();
    }
}
