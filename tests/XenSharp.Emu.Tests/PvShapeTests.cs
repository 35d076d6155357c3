using XenSharp.Accel;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

/// <summary>
/// The shape the hypervisor uses for a PV domain (ARCHITECTURE.md): a 64 KiB GDT with Xen's selectors in the hypervisor
/// area (PML4 slot 257), the guest kernel at 0xffffffff80000000 running at ring 3, hypercalls by SYSCALL into a ring-0
/// stub and faults through the IDT into a ring-0 stub, both reporting by a store to an MMIO doorbell; the VMM returns
/// to the guest kernel by setting registers.
/// </summary>
public sealed class PvShapeTests
{
    private const ulong Hv = 0xffff808000000000UL;      // PML4 slot 257
    private const ulong HvPhys = 0x400000;
    private const ulong KernelVa = 0xffffffff80000000UL, KernelPhys = 0x600000;
    private const ulong Doorbell = TestMachine.Mmio;
    private const ulong GdtVa = Hv, IdtVa = Hv + 0x10000, TssVa = Hv + 0x11000, Ring0StackTop = Hv + 0x30000;
    private const ulong FaultStub = Hv + 0x40000, SyscallStub = Hv + 0x41000;
    private const ushort Ring0Cs = 0xe008, Ring0Ds = 0xe010, KernelCs = 0xe033, KernelDs = 0xe02b, TssSel = 0xe040;

    [Fact]
    public void Hypercall_and_fault_reach_ring0_stubs_and_the_vmm_returns_by_setting_registers()
    {
        using var m = new TestMachine();
        var mem = m.Memory;
        const ulong rwu = X86.PtePresent | X86.PteRw | X86.PteUser;
        // Slot 257 -> 2 MiB at HvPhys; slot 511 / entry 510 -> 2 MiB at KernelPhys.
        mem.WriteUInt64(TestMachine.Pml4 + 257 * 8, 0x9000 | rwu);
        mem.WriteUInt64(0x9000, 0xa000 | rwu);
        mem.WriteUInt64(0xa000, HvPhys | rwu | X86.PtePse);
        mem.WriteUInt64(TestMachine.Pml4 + 511 * 8, 0xb000 | rwu);
        mem.WriteUInt64(0xb000 + 510 * 8, 0xc000 | rwu);
        mem.WriteUInt64(0xc000, KernelPhys | rwu | X86.PtePse);

        ulong P(ulong va) => HvPhys + (va - Hv);
        mem.WriteUInt64(P(GdtVa) + Ring0Cs, 0x00af9b000000ffffUL);
        mem.WriteUInt64(P(GdtVa) + Ring0Ds, 0x00cf93000000ffffUL);
        mem.WriteUInt64(P(GdtVa) + (KernelDs & ~7), 0x00cff3000000ffffUL);
        mem.WriteUInt64(P(GdtVa) + (KernelCs & ~7), 0x00affb000000ffffUL);
        mem.WriteUInt64(P(TssVa) + 4, Ring0StackTop);
        ulong gate = (FaultStub & 0xffff) | ((ulong)Ring0Cs << 16) | (0x8eUL << 40) | ((FaultStub >> 16 & 0xffff) << 48);
        mem.WriteUInt64(P(IdtVa) + 14 * 16, gate);
        mem.WriteUInt64(P(IdtVa) + 14 * 16 + 8, FaultStub >> 32);

        byte[] Asm(ulong va, Action<Iced.Intel.Assembler> build)
        {
            var a = new Iced.Intel.Assembler(64);
            build(a);
            using var ms = new MemoryStream();
            a.Assemble(new Iced.Intel.StreamCodeWriter(ms), va);
            return ms.ToArray();
        }
        mem.Write(P(FaultStub), Asm(FaultStub, a => { a.mov(rax, Doorbell); a.mov(__dword_ptr[rax], 14); a.ud2(); }));
        mem.Write(P(SyscallStub), Asm(SyscallStub, a => { a.mov(rdx, Doorbell + 8); a.mov(__qword_ptr[rdx], rax); a.ud2(); }));
        mem.Write(KernelPhys, Asm(KernelVa, a =>
        {
            a.mov(eax, 17);
            a.syscall();
            a.mov(rbx, rax);
            a.mov(rcx, __qword_ptr[0x10]); // page 0 is not present: #PF from ring 3
        }));

        var sregs = m.LongModeSregs(3);
        sregs.Cs = SegmentRegister.Code64(KernelCs, 3);
        sregs.Ss = sregs.Ds = sregs.Es = SegmentRegister.Data(KernelDs, 3);
        sregs.Gdt = new DescriptorTableRegister { Base = GdtVa, Limit = 0xffff };
        sregs.Idt = new DescriptorTableRegister { Base = IdtVa, Limit = 0xfff };
        sregs.Tr = new SegmentRegister { Selector = TssSel, Base = TssVa, Limit = 0x67, Type = 0xb, Present = 1 };
        m.Cpu.SetSpecialRegisters(sregs);
        m.Cpu.SetRegisters(new VcpuRegisters { Rip = KernelVa, Rsp = KernelVa + 0x100000, Rflags = 2 | X86.RflagsIf });
        m.Cpu.SetMsr(X86.MsrStar, (ulong)Ring0Cs << 32);
        m.Cpu.SetMsr(X86.MsrLstar, SyscallStub);
        m.Cpu.SetMsr(X86.MsrSyscallMask, X86.RflagsIf);

        // Hypercall: the doorbell store exits after retiring, in ring 0.
        var e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, Doorbell + 8, 8, true, 17), e);
        var r = m.Regs;
        var s = m.Cpu.GetSpecialRegisters();
        Assert.Equal(Ring0Cs, s.Cs.Selector);
        Assert.Equal(0, s.Cs.Dpl);
        Assert.Equal(KernelVa + 7, r.Rcx);
        // VMM: result in RAX, back to the guest kernel at ring 3.
        m.Cpu.SetRegisters(r with { Rax = 0x1234, Rip = r.Rcx, Rflags = r.R11 });
        s.Cs = SegmentRegister.Code64(KernelCs, 3);
        s.Ss = SegmentRegister.Data(KernelDs, 3);
        m.Cpu.SetSpecialRegisters(s);

        // Page fault from ring 3: delivered on the TSS ring-0 stack to the stub, which rings the doorbell.
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, Doorbell, 4, true, 14), e);
        r = m.Regs;
        Assert.Equal(0x1234UL, r.Rbx);
        Assert.Equal(Ring0StackTop - 48, r.Rsp);
        Assert.Equal(4UL, mem.ReadUInt64(P(r.Rsp)));                      // user read, not present
        Assert.Equal(KernelVa + 7 + 3, mem.ReadUInt64(P(r.Rsp + 8)));     // faulting RIP
        Assert.Equal((ulong)KernelCs, mem.ReadUInt64(P(r.Rsp + 16)));
        Assert.Equal((ulong)KernelDs, mem.ReadUInt64(P(r.Rsp + 40)));
        Assert.Equal(0x10UL, m.Cpu.GetSpecialRegisters().Cr2);
    }
}
