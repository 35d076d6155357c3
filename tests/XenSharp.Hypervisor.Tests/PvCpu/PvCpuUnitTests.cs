using System.Buffers.Binary;
using Iced.Intel;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Cpu;
using Xunit;

namespace XenSharp.Hypervisor.Tests.PvCpu;

public sealed class StubTests
{
    private static List<Instruction> DecodeAt(Stubs s, ulong va, int count)
    {
        var d = Decoder.Create(64, new ByteArrayCodeReader(s.Code, (int)(va - s.Base), s.Code.Length - (int)(va - s.Base)), va);
        var list = new List<Instruction>();
        for (int i = 0; i < count; i++) { d.Decode(out var ins); list.Add(ins); }
        return list;
    }

    [Theory]
    [InlineData(0, PvLayout.DoorbellPortSyscall)]
    [InlineData(1, PvLayout.DoorbellPortSyscall32)]
    [InlineData(2, PvLayout.DoorbellPortSysenter)]
    public void SyscallEntriesRingTheirPortWithoutWritingARegister(int entry, int port)
    {
        var s = new Stubs(PvLayout.StubVa);
        var ins = DecodeAt(s, new[] { s.SyscallEntry, s.Syscall32Entry, s.SysenterEntry }[entry], 2);
        Assert.Equal(Code.Out_imm8_AL, ins[0].Code); // reads al, writes nothing: every guest register survives
        Assert.Equal((ulong)port, ins[0].GetImmediate(0));
        Assert.Equal(Mnemonic.Ud2, ins[1].Mnemonic);
    }

    [Fact]
    public void TheTssIoBitmapLetsCpl3UseOnlyTheDoorbellPorts()
    {
        using var hv = new HypervisorArea(64 << 20, 1);
        ulong tss = hv.CommandPageOffset(0) - PvLayout.CommandPage + PvLayout.TssPage;
        Assert.Equal((ushort)PvLayout.IoBitmapOffset, hv.Memory.ReadUInt16(tss + 102));
        bool Allowed(int port) => port / 8 < PvLayout.IoBitmapBytes && (hv.Memory.ReadByte(tss + PvLayout.IoBitmapOffset + (ulong)(port / 8)) & (1 << (port % 8))) == 0;
        var allowed = Enumerable.Range(0, 0x10000).Where(Allowed).ToArray();
        Assert.Equal(new[] { PvLayout.DoorbellPortSyscall, PvLayout.DoorbellPortSyscall32, PvLayout.DoorbellPortSysenter }, allowed);
        Assert.Equal(0xff, hv.Memory.ReadByte(tss + PvLayout.IoBitmapOffset + PvLayout.IoBitmapBytes)); // terminator, inside the limit
        Assert.Equal(PvLayout.IoBitmapOffset + PvLayout.IoBitmapBytes, (int)PvLayout.TssLimit);
    }

    [Theory]
    [InlineData(14, true)]
    [InlineData(13, true)]
    [InlineData(0, false)]
    [InlineData(3, false)]
    public void ExceptionStubsPushErrorCodeOnlyWhenTheCpuDoesNot(int vector, bool hasErrorCode)
    {
        var s = new Stubs(PvLayout.StubVa);
        var ins = DecodeAt(s, s.ExceptionEntry[vector], 5);
        int i = 0;
        if (!hasErrorCode) { Assert.Equal(Mnemonic.Push, ins[i].Mnemonic); Assert.Equal(0UL, ins[i].GetImmediate(0)); i++; }
        Assert.Equal(Mnemonic.Push, ins[i].Mnemonic); Assert.Equal(Register.RAX, ins[i++].Op0Register);
        Assert.Equal(Mnemonic.Mov, ins[i].Mnemonic); Assert.Equal(Register.CR2, ins[i++].Op1Register);
        Assert.Equal(PvLayout.DoorbellVa + (ulong)vector * 8, ins[i++].IPRelativeMemoryAddress);
        Assert.Equal(Mnemonic.Ud2, ins[i].Mnemonic);
    }

    [Fact]
    public void ResumeFindsItsCommandPageFromRspAndEndsWithIretq()
    {
        var s = new Stubs(PvLayout.StubVa);
        var ins = DecodeAt(s, s.Resume, 80);
        Assert.Equal(Mnemonic.Push, ins[0].Mnemonic);
        Assert.Equal(Register.RDI, ins[0].Op0Register);
        Assert.Equal(Mnemonic.Mov, ins[1].Mnemonic);
        Assert.Equal(Register.RSP, ins[1].Op1Register);
        Assert.Equal(Mnemonic.And, ins[2].Mnemonic);
        Assert.Equal(unchecked((ulong)-(long)PvLayout.VcpuStride), ins[2].GetImmediate(1));
        Assert.Contains(ins, x => x.Mnemonic == Mnemonic.Iretq);
        Assert.Contains(ins, x => x.Mnemonic == Mnemonic.Invlpg);
        Assert.Contains(ins, x => x.Mnemonic == Mnemonic.Wrmsr);
        Assert.Contains(ins, x => x.Mnemonic == Mnemonic.Mov && x.Op0Register == Register.CR3);
        var enter = DecodeAt(s, s.EnterRing0, 1)[0];
        Assert.Equal(Mnemonic.Ud2, enter.Mnemonic);
    }

    [Fact]
    public void TheUdEntryTakesOnlyTheRing0EntrysUd2ToTheResumeStub()
    {
        var s = new Stubs(PvLayout.StubVa);
        var ins = DecodeAt(s, s.ExceptionEntry[X86.VectorUd], 7);
        Assert.Equal(Mnemonic.Push, ins[0].Mnemonic);
        Assert.Equal(Mnemonic.Lea, ins[1].Mnemonic);
        Assert.Equal(s.EnterRing0, ins[1].IPRelativeMemoryAddress);
        Assert.Equal(Mnemonic.Cmp, ins[2].Mnemonic);
        Assert.Equal(8L, (long)ins[2].MemoryDisplacement64);
        Assert.Equal(Mnemonic.Pop, ins[3].Mnemonic);
        Assert.Equal(Mnemonic.Jne, ins[4].Mnemonic);
        Assert.Equal(Mnemonic.Jmp, ins[5].Mnemonic);
        Assert.Equal(s.Resume, ins[5].NearBranchTarget);
        Assert.Equal(ins[6].IP, ins[4].NearBranchTarget);
    }

    [Fact]
    public void HypervisorAreaGdtHasXensSelectorsAndIdtPointsAtStubs()
    {
        using var hv = new HypervisorArea(64 << 20, 2);
        Assert.True(hv.Stubs.Code.Length < PvLayout.StubPages * 4096);
        Assert.Equal(PvLayout.HvGpa, hv.L4Entries().First().Entry & X86.PteAddressMask & ~0xfffffUL & PvLayout.HvGpa);
        Assert.Equal(3, hv.L4Entries().Count());
        Assert.All(hv.L4Entries(), e => Assert.InRange(e.Slot, 257, 271));
        Assert.True(hv.M2pEnd > hv.M2pStart);
        Assert.Equal((64UL << 20 >> 12) - 1, hv.MaxMfn);
    }
}

/// <summary>A domain with identity-mapped low memory (L4@1, L3@2, L2@3, L1@4 mapping VA 0-2 MiB → frames 0-511).</summary>
internal sealed class SmallDomain : IDisposable
{
    public XenHypervisor Hv { get; }
    public Domain Domain { get; }
    public PvDomainState Services { get; }
    public HypervisorArea Area { get; }
    public PvMmu Mmu { get; }
    public GuestMemory Ram => Domain.Memory;
    public const ulong L4 = 1, L3 = 2, L2 = 3, L1 = 4;

    public SmallDomain(bool mapTablesReadOnly = true)
    {
        Hv = new XenHypervisor(new XenSharp.Emu.EmuAccelerator(), new HostMemory(4UL << 30, 0));
        Domain = Hv.CreateDomain(new DomainCreateSpec("unit", DomainType.Pv, 16 << 20, 16 << 20, 1, 1));
        Domain.AddVcpu(0);
        Services = new PvDomainState(Domain);
        Area = new HypervisorArea(Domain.Memory.Size, 1);
        Mmu = new PvMmu(Domain.Memory, Area);
        const ulong up = X86.PtePresent | X86.PteRw | X86.PteAccessed;
        Ram.WriteUInt64(L4 << 12, (L3 << 12) | up);
        Ram.WriteUInt64(L3 << 12, (L2 << 12) | up);
        Ram.WriteUInt64(L2 << 12, (L1 << 12) | up);
        for (ulong i = 0; i < 512; i++)
        {
            bool table = i is >= L4 and <= L1;
            Ram.WriteUInt64((L1 << 12) + i * 8, (i << 12) | X86.PtePresent | X86.PteAccessed | (table && mapTablesReadOnly ? 0 : X86.PteRw));
        }
    }

    public IPtWriter Host => new HostPtWriter(Ram, Area);
    public PvVcpuState Vcpu0 => Services.Vcpu(0)!;

    public void Dispose() => Hv.Dispose();
}

public sealed class MmuTests
{
    [Fact]
    public void PinValidatesAddsUserAndTheHypervisorSlots()
    {
        using var d = new SmallDomain();
        Assert.Equal(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        Assert.Equal(PageType.L4, d.Mmu.TypeOf(SmallDomain.L4));
        Assert.Equal(PageType.L1, d.Mmu.TypeOf(SmallDomain.L1));
        Assert.NotEqual(0UL, d.Ram.ReadUInt64((SmallDomain.L1 << 12) + 10 * 8) & X86.PteUser);
        foreach (var (slot, entry) in d.Area.L4Entries())
            Assert.Equal(entry, d.Ram.ReadUInt64((SmallDomain.L4 << 12) + (ulong)slot * 8));
        Assert.Equal(1, d.Mmu.WritableMappings(10));
    }

    [Fact]
    public void WritableMappingOfAPageTableIsRefused()
    {
        using var d = new SmallDomain(mapTablesReadOnly: false);
        Assert.NotEqual(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        Assert.Equal(PageType.None, d.Mmu.TypeOf(SmallDomain.L1));
        Assert.Equal(0, d.Mmu.WritableMappings(10)); // rolled back
    }

    [Fact]
    public void UpdatesAreValidated()
    {
        using var d = new SmallDomain();
        Assert.Equal(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        ulong pte20 = (SmallDomain.L1 << 12) + 20 * 8;
        // a writable mapping of the L2 table: refused with -EBUSY, as Xen's get_page_from_l1e does
        Assert.Equal(-XenErrno.EBUSY, d.Mmu.UpdateEntry(pte20, (SmallDomain.L2 << 12) | 3, false, d.Host));
        // read-only is fine, and gets USER
        Assert.Equal(0, d.Mmu.UpdateEntry(pte20, (SmallDomain.L2 << 12) | 1, false, d.Host));
        Assert.Equal((SmallDomain.L2 << 12) | 5, d.Ram.ReadUInt64(pte20));
        // the hypervisor slots of an L4 are not the guest's
        Assert.Equal(-22, d.Mmu.UpdateEntry((SmallDomain.L4 << 12) + 257 * 8, 0, false, d.Host));
        Assert.Equal(-22, d.Mmu.UpdateEntry((SmallDomain.L4 << 12) + 256 * 8, 0, false, d.Host));
        // PSE in an L2 entry
        Assert.Equal(-22, d.Mmu.UpdateEntry((SmallDomain.L2 << 12) + 8, 0x200000 | 0x83, false, d.Host));
        // a frame outside RAM that is not a special frame
        Assert.Equal(-22, d.Mmu.UpdateEntry(pte20, (1UL << 40) | 1, false, d.Host));
        // frame 10 becomes read-only: the writable count drops
        Assert.Equal(0, d.Mmu.UpdateEntry((SmallDomain.L1 << 12) + 10 * 8, (10UL << 12) | 1, false, d.Host));
        Assert.Equal(0, d.Mmu.WritableMappings(10));
    }

    [Fact]
    public void PreserveAdKeepsAccessedAndDirty()
    {
        using var d = new SmallDomain();
        Assert.Equal(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        ulong pte = (SmallDomain.L1 << 12) + 30 * 8;
        d.Ram.WriteUInt64(pte, d.Ram.ReadUInt64(pte) | X86.PteDirty | X86.PteAccessed); // as the CPU would
        Assert.Equal(0, d.Mmu.UpdateEntry(pte, (31UL << 12) | 3, true, d.Host));
        Assert.Equal((31UL << 12) | 3 | X86.PteUser | X86.PteAccessed | X86.PteDirty, d.Ram.ReadUInt64(pte));
        Assert.Equal(0, d.Mmu.UpdateEntry(pte, (31UL << 12) | 3, false, d.Host));
        Assert.Equal((31UL << 12) | 3 | X86.PteUser, d.Ram.ReadUInt64(pte));
    }

    [Fact]
    public void UnpinReleasesTypesAndCommandWriterQueuesDirectMapStores()
    {
        using var d = new SmallDomain();
        Assert.Equal(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        Assert.Equal(-22, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        Assert.Equal(0, d.Mmu.Unpin(SmallDomain.L4, d.Host));
        Assert.Equal(PageType.None, d.Mmu.TypeOf(SmallDomain.L1));
        var st = d.Vcpu0;
        var w = new CommandPtWriter(d.Ram, d.Area, st);
        Assert.Equal(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, w));
        Assert.Contains(st.Commands, c => c.Op == CommandPage.OpStore && c.A == PvLayout.DirectMapBase + (SmallDomain.L4 << 12) + 257 * 8);
    }
}

public sealed class DescriptorTests
{
    [Fact]
    public void CodeAndDataGetDpl3()
    {
        Assert.True(Descriptors.Check(0x00af9b000000ffffUL, out var f));
        Assert.Equal(0x00affb000000ffffUL, f);
        Assert.True(Descriptors.Check(0x00cff3000000ffffUL, out f));
        Assert.Equal(0x00cff3000000ffffUL, f);
    }

    [Fact]
    public void NotPresentAndEmptyPass_SystemDescriptorsFail()
    {
        Assert.True(Descriptors.Check(0, out _));
        Assert.True(Descriptors.Check(0x0000000000001234, out _));
        Assert.False(Descriptors.Check(0x0000890000000067UL, out _));  // 64-bit TSS
        Assert.False(Descriptors.Check(0x0000820000000000UL, out _));  // LDT
        Assert.True(Descriptors.Check(0x0000ec0000330000UL | 0x1000, out var gate)); // call gate to 0x33
        Assert.Equal(3UL << 45, gate & (3UL << 45));
    }
}

public sealed class CpuidTests
{
    [Fact]
    public void XenLeavesAndHypervisorBit()
    {
        var (a, b, c, d) = PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 0x40000000, 0);
        Assert.Equal(0x40000005u, a);
        Assert.Equal((0x566e6558u, 0x65584d4du, 0x4d4d566eu), (b, c, d));
        Assert.Equal((uint)(XenVersion.Major << 16 | XenVersion.Minor), PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 0x40000001, 0).Eax);
        Assert.Equal(1u, PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 0x40000002, 0).Ecx & 1); // PRESERVE_AD
        var l1 = PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 1, 0);
        Assert.NotEqual(0u, l1.Ecx & (1u << 31));
        Assert.Equal(0u, l1.Edx & ((1u << 3) | (1u << 13)));  // PSE, PGE hidden
        Assert.Equal(0u, l1.Ecx & (1u << 27));                // OSXSAVE
    }

    private const uint Sse3 = 1u << 0, Ssse3 = 1u << 9, Sse41 = 1u << 19, Sse42 = 1u << 20, Aes = 1u << 25, Avx = 1u << 28;

    [Fact]
    public void The_software_cpu_hides_what_it_cannot_execute()
    {
        var emu = new XenSharp.Emu.EmuAccelerator();
        var l1 = PvCpuid.Query(emu, 1, 0);
        Assert.Equal(0u, l1.Ecx & (Sse3 | Ssse3 | Sse41 | Sse42 | Aes | Avx | (1u << 1) /* PCLMUL */ | (1u << 30) /* RDRAND */));
        Assert.Equal(3u << 25, l1.Edx & (3u << 25));          // SSE, SSE2
        Assert.Equal(1u << 23, l1.Edx & (1u << 23));          // MMX: with SSE/SSE2, FXSR, CMOV, CX8 the baseline glibc insists on
        Assert.Equal(1u << 31, l1.Ecx & (1u << 31));          // hypervisor
        var l7 = PvCpuid.Query(emu, 7, 0);
        Assert.Equal(0u, l7.Ebx & ((1u << 5) | (1u << 29)));  // AVX2, SHA
        Assert.Equal(PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 0, 0), PvCpuid.Query(emu, 0, 0)); // vendor and max leaf pass
        Assert.Equal(PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 0x40000000, 0), PvCpuid.Query(emu, 0x40000000, 0));
        // The table the vCPU's plain CPUID uses agrees with the forced-emulation answer.
        var e1 = CpuidFeatures.Find(PvCpuid.Table(emu), 1, 0)!.Value;
        Assert.Equal((l1.Ecx, l1.Edx), (e1.Ecx, e1.Edx));
    }

    [Fact]
    public void A_back_end_that_supports_everything_changes_nothing()
    {
        var l1 = PvCpuid.Query(new XenSharp.Hypervisor.Tests.PvServices.InertAccelerator(), 1, 0);
        var e = new CpuidEntry(1, 0, l1.Eax, l1.Ebx, l1.Ecx, l1.Edx);
        Assert.Equal(e, CpuidFeatures.Intersect(e, new CpuidEntry(1, 0, ~0u, ~0u, ~0u, ~0u)));
        // With nothing supported only flags go: family/model (eax), APIC id (ebx) and the VMM's hypervisor bit stay.
        var none = CpuidFeatures.Intersect(e, null);
        Assert.Equal((e.Eax, e.Ebx, e.Ecx & (1u << 31 | 1u << 27), 0u), (none.Eax, none.Ebx, none.Ecx, none.Edx));
        var vendor = new CpuidEntry(0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69);
        Assert.Equal(vendor, CpuidFeatures.Intersect(vendor, null));
    }

    [Fact]
    public void Hvm_table_is_filtered_too()
    {
        var t = XenSharp.Hypervisor.Hvm.HvmCpuid.Table(new XenSharp.Emu.EmuAccelerator());
        var l1 = CpuidFeatures.Find(t, 1, 0)!.Value;
        Assert.Equal(0u, l1.Ecx & (Sse3 | Ssse3 | Sse41 | Sse42 | Avx));
        Assert.Equal(3u << 25, l1.Edx & (3u << 25));
    }
}

public sealed class BounceAndIretTests
{
    private static (SmallDomain D, PvTraps T, PvVcpuState St) Setup()
    {
        var d = new SmallDomain();
        Assert.Equal(0, d.Mmu.Pin(SmallDomain.L4, PageType.L4, d.Host));
        var t = new PvTraps(new GuestPageWalker(d.Ram));
        var st = d.Vcpu0;
        st.KernelL4 = SmallDomain.L4;
        st.CurrentCr3 = SmallDomain.L4 << 12;
        return (d, t, st);
    }

    private static ulong[] Words(SmallDomain d, ulong va, int n) => Enumerable.Range(0, n).Select(i => d.Ram.ReadUInt64(va + (ulong)i * 8)).ToArray();

    [Fact]
    public void KernelModeFrameWithErrorCodeIsByteExact()
    {
        var (d, t, st) = Setup();
        using var _ = d;
        st.EvtchnUpcallMask = false;
        var ctx = new GuestContext { Cs = 0xe033, Ss = 0xe02b };
        ctx.Regs.Rip = 0x1234; ctx.Regs.Rsp = 0x10008; ctx.Regs.Rflags = 0x302 | X86.RflagsAc; ctx.Regs.Rcx = 0xc1; ctx.Regs.R11 = 0x11;
        t.Bounce(st, ref ctx, 0x5000, 7, maskEvents: true);
        Assert.Equal(0x10000UL - 64, ctx.Regs.Rsp);
        Assert.Equal(new ulong[] { 0xc1, 0x11, 7, 0x1234, 0xe030, 0x302 | X86.RflagsAc, 0x10008, 0xe02b }, Words(d, ctx.Regs.Rsp, 8));
        Assert.Equal(0x5000UL, ctx.Regs.Rip);
        Assert.Equal((ushort)0xe033, ctx.Cs);
        Assert.Equal(0UL, ctx.Regs.Rflags & (X86.RflagsTf | X86.RflagsAc));
        Assert.True(st.EvtchnUpcallMask);
    }

    [Fact]
    public void MaskedEventsShowAsClearIfAndSavedMaskInCs()
    {
        var (d, t, st) = Setup();
        using var _ = d;
        st.EvtchnUpcallMask = true;
        var ctx = new GuestContext { Cs = 0xe033, Ss = 0xe02b };
        ctx.Regs.Rip = 0x2000; ctx.Regs.Rsp = 0x20000; ctx.Regs.Rflags = 0x202;
        t.Bounce(st, ref ctx, 0x5000, null, maskEvents: false);
        var f = Words(d, ctx.Regs.Rsp, 7);
        Assert.Equal(0x20000UL - 56, ctx.Regs.Rsp);
        Assert.Equal(0xe030UL | (1UL << 32), f[3]);
        Assert.Equal(0x2UL, f[4]);
    }

    [Fact]
    public void UserModeBounceSwitchesToKernelStackAndL4()
    {
        var (d, t, st) = Setup();
        using var _ = d;
        st.KernelMode = false; st.UserL4 = SmallDomain.L4; st.KernelSp = 0x30000; st.GsBaseKernel = 0xabc;
        var ctx = new GuestContext { Cs = 0x33, Ss = 0x2b };
        ctx.Regs.Rip = 0x4000; ctx.Regs.Rsp = 0x7000;
        t.Bounce(st, ref ctx, 0x5000, null, maskEvents: false);
        Assert.True(st.KernelMode);
        Assert.Equal(0x30000UL - 56, ctx.Regs.Rsp);
        Assert.Equal(0x33UL, Words(d, ctx.Regs.Rsp, 7)[3] & 0xffff); // user CS keeps its RPL
        Assert.Contains(st.Commands, c => c.Op == CommandPage.OpLoadCr3 && c.A == SmallDomain.L4 << 12);
        Assert.Contains(st.Commands, c => c.Op == CommandPage.OpWrmsr && c.A == X86.MsrGsBase && c.B == 0xabc);
    }

    [Fact]
    public void IretRestoresFrameMaskAndMode()
    {
        var (d, t, st) = Setup();
        using var _ = d;
        ulong sp = 0x40000;
        ulong[] frame = { 0xaa, 0x11, 0xc1, 0, 0x6000, 0x33, 0x3246 | X86.RflagsVm, 0x8000, 0x2b };
        for (int i = 0; i < frame.Length; i++) d.Ram.WriteUInt64(sp + (ulong)i * 8, frame[i]);
        st.UserL4 = SmallDomain.L4;
        st.EvtchnUpcallMask = true;
        var ctx = new GuestContext { Cs = 0xe033, Ss = 0xe02b };
        ctx.Regs.Rsp = sp;
        t.Iret(st, ref ctx);
        Assert.Equal(0xaaUL, ctx.Regs.Rax);
        Assert.Equal(0x11UL, ctx.Regs.R11);
        Assert.Equal(0xc1UL, ctx.Regs.Rcx);
        Assert.Equal(0x6000UL, ctx.Regs.Rip);
        Assert.Equal(0x8000UL, ctx.Regs.Rsp);
        Assert.Equal((ushort)0x33, ctx.Cs);
        Assert.Equal((ushort)0x2b, ctx.Ss);
        Assert.Equal(0x0246UL | 0x200, ctx.Regs.Rflags);         // IOPL and VM dropped, IF set
        Assert.False(st.EvtchnUpcallMask);                          // saved IF was set
        Assert.False(st.KernelMode);
    }

    [Fact]
    public void IretInSyscallKeepsRcxR11AndKernelReturnStaysInKernel()
    {
        var (d, t, st) = Setup();
        using var _ = d;
        ulong sp = 0x40000;
        ulong[] frame = { 1, 0x11, 0xc1, 1 << 8, 0x6000, 0xe030, 0x2, 0x8000, 0xe02b };
        for (int i = 0; i < frame.Length; i++) d.Ram.WriteUInt64(sp + (ulong)i * 8, frame[i]);
        var ctx = new GuestContext { Cs = 0xe033, Ss = 0xe02b };
        ctx.Regs.Rsp = sp; ctx.Regs.Rcx = 5; ctx.Regs.R11 = 6;
        t.Iret(st, ref ctx);
        Assert.Equal((5UL, 6UL), (ctx.Regs.Rcx, ctx.Regs.R11));
        Assert.Equal((ushort)0xe033, ctx.Cs);
        Assert.True(st.KernelMode);
        Assert.True(st.EvtchnUpcallMask);                           // saved IF clear
    }
}
