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

    /// <summary>
    /// 64-bit paging at CPL3, as kvmdoorbell.c: VA 0..2 MiB identity-mapped (2 MiB user page), VA 0x200000 → GPA
    /// 0x10000000 where there is no memory (MMIO), code at 0x100000; plus a real GDT at 0x1000 with user code 0x23
    /// and user data 0x1b, CPUID from KVM_GET_SUPPORTED_CPUID.
    /// </summary>
    public static TestGuest LongMode(byte[] code, bool syncRegisters = true)
    {
        var g = new TestGuest(0x800000, syncRegisters, irqchip: false);
        var m = g.Memory;
        const ulong gdt = 0x1000, pml4 = 0x2000, pdpt = 0x3000, pd = 0x4000, pt = 0x5000;
        m.WriteUInt64(gdt + 0x08, 0x00209a0000000000); // kernel code64
        m.WriteUInt64(gdt + 0x10, 0x00cf92000000ffff); // kernel data
        m.WriteUInt64(gdt + 0x18, 0x00cff2000000ffff); // user data (0x1b)
        m.WriteUInt64(gdt + 0x20, 0x0020fa0000000000); // user code64 (0x23)
        const ulong U = X86.PtePresent | X86.PteRw | X86.PteUser;
        m.WriteUInt64(pml4, pdpt | U);
        m.WriteUInt64(pdpt, pd | U);
        m.WriteUInt64(pd, 0 | U | X86.PtePse);
        m.WriteUInt64(pd + 8, pt | U);
        m.WriteUInt64(pt, MmioPhysical | U);
        m.Write(CodeAddress, code);

        g.Vcpu.SetCpuid(g.Accelerator.System.GetSupportedCpuid());
        var s = g.Vcpu.GetSpecialRegisters();
        s.Cr3 = pml4;
        s.Cr4 = X86.Cr4Pae;
        s.Cr0 = X86.Cr0Pe | X86.Cr0Et | X86.Cr0Pg;
        s.Efer = X86.EferSce | X86.EferLme | X86.EferLma;
        s.Cs = SegmentRegister.Code64(0x23, 3);
        s.Ds = s.Es = s.Fs = s.Gs = s.Ss = SegmentRegister.Data(0x1b, 3);
        s.Gdt = new DescriptorTableRegister { Base = gdt, Limit = 0x27 };
        g.Vcpu.SetSpecialRegisters(s);
        g.Vcpu.SetRegisters(new VcpuRegisters { Rip = CodeAddress, Rflags = 0x202, Rsp = StackTop });
        return g;
    }

    /// <summary>Runs until an exit other than Interrupted (a stray signal), with a bound.</summary>
    public VcpuExit RunToExit()
    {
        for (int i = 0; i < 100; i++)
        {
            var e = Vcpu.Run();
            if (e.Reason != ExitReason.Interrupted) return e;
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
