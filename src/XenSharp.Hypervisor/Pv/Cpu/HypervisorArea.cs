using XenSharp.Accel;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// The pages a PV domain sees in Xen's reserved hole: per-vCPU GDTs (guest frames + Xen's reserved page), the IDT, the
/// stubs, the doorbell, per-vCPU TSS/command page/stacks, the read-only M2P (slot 258) and a supervisor-only direct
/// map of guest RAM and of this area (slot 259) through which the resume stub writes page tables. Its frames live in a
/// memory region of their own mapped above guest RAM; its L3/L2/L1 tables are shared by every L4 of the domain.
/// </summary>
public sealed class HypervisorArea : IDisposable
{
    private const ulong P = X86.PtePresent, RW = X86.PteRw, US = X86.PteUser, A = X86.PteAccessed, D = X86.PteDirty, PS = X86.PtePse;
    private const ulong Table = P | RW | US | A;

    public GuestMemory Memory { get; }
    public ulong Gpa => PvLayout.HvGpa;
    public ulong RamFrames { get; }
    public int MaxVcpus { get; }
    public Stubs Stubs { get; }

    /// <summary>Values for XENMEM_machphys_mapping.</summary>
    public ulong M2pStart => PvLayout.M2pBase;
    public ulong M2pEnd { get; }
    public ulong MaxMfn => RamFrames - 1;

    private readonly ulong _l3Hv, _l2Hv, _l1Gdt0, _l1Misc, _l1Vcpu0, _l3M2p, _l2M2p, _l3Dm, _l2Dm0, _l1Ldt0;
    private readonly int _ldtL1s;
    private readonly ulong _idt, _stubs, _zero, _gdtRes0, _vcpuBlocks0, _m2p;
    private readonly int _dmGiB;

    public HypervisorArea(ulong ramBytes, int maxVcpus)
    {
        if (maxVcpus < 1 || maxVcpus > PvLayout.MaxVcpus) throw new ArgumentOutOfRangeException(nameof(maxVcpus));
        if (ramBytes > PvLayout.HvGpa) throw new ArgumentException("guest RAM reaches the hypervisor area's guest-physical base");
        RamFrames = ramBytes >> 12;
        MaxVcpus = maxVcpus;
        ulong next = 0;
        ulong Alloc(ulong pages) { ulong f = next; next += pages; return f; }
        _l3Hv = Alloc(1); _l2Hv = Alloc(1);
        int gdtL1s = (maxVcpus * 16 + 511) / 512;
        _l1Gdt0 = Alloc((ulong)gdtL1s);
        _l1Misc = Alloc(1);
        int vcpuL1s = (maxVcpus * PvLayout.VcpuBlockPages + 511) / 512;
        _l1Vcpu0 = Alloc((ulong)vcpuL1s);
        _l3M2p = Alloc(1); _l2M2p = Alloc(1); _l3Dm = Alloc(1);
        int ramGiB = (int)((ramBytes + (1UL << 30) - 1) >> 30);
        _dmGiB = ramGiB;
        _l2Dm0 = Alloc((ulong)ramGiB + 1); // RAM GiBs, then the GiB holding this area
        _ldtL1s = (maxVcpus * PvLayout.LdtPages + 511) / 512;
        _l1Ldt0 = Alloc((ulong)_ldtL1s);
        _idt = Alloc(1); _stubs = Alloc(PvLayout.StubPages); _zero = Alloc(1);
        _gdtRes0 = Alloc((ulong)maxVcpus);
        _vcpuBlocks0 = Alloc((ulong)maxVcpus * PvLayout.VcpuBlockPages);
        ulong m2pBytes = Math.Max(RamFrames * 8, 1) + 0x1fffff & ~0x1fffffUL;
        next = (next + 511) & ~511UL;
        _m2p = Alloc(m2pBytes >> 12);
        if (next << 12 > 1UL << 30) throw new ArgumentException("hypervisor area exceeds 1 GiB");
        M2pEnd = PvLayout.M2pBase + m2pBytes;
        Memory = new GuestMemory(next << 12, "xensharp-hvarea");
        Stubs = new Stubs(PvLayout.StubVa);
        Build(m2pBytes);
    }

    public ulong FrameGpa(ulong frame) => PvLayout.HvGpa + (frame << 12);

    /// <summary>Maps this area and nothing at the doorbell into the domain's VM.</summary>
    public void MapInto(IVirtualMachine vm, int slot) => vm.MapMemory(slot, PvLayout.HvGpa, Memory, 0, Memory.Size);

    private void Set(ulong frame, int index, ulong value) => Memory.WriteUInt64((frame << 12) + (ulong)index * 8, value);

    private void Build(ulong m2pBytes)
    {
        // Slot 257: GDTs, misc, per-vCPU blocks.
        Set(_l3Hv, 0, FrameGpa(_l2Hv) | Table);
        int gdtL1s = (int)(_l1Misc - _l1Gdt0);
        for (int i = 0; i < gdtL1s; i++) Set(_l2Hv, i, FrameGpa(_l1Gdt0 + (ulong)i) | Table);
        Set(_l2Hv, (int)(PvLayout.MiscOffset >> 21), FrameGpa(_l1Misc) | Table);
        int vcpuL1s = (int)(_l3M2p - _l1Vcpu0);
        for (int i = 0; i < vcpuL1s; i++) Set(_l2Hv, (int)(PvLayout.VcpuRegionOffset >> 21) + i, FrameGpa(_l1Vcpu0 + (ulong)i) | Table);

        // Shadow LDTs: empty until the guest's LDT pages are mapped on first use.
        for (int i = 0; i < _ldtL1s; i++) Set(_l2Hv, (int)(PvLayout.LdtRegionOffset >> 21) + i, FrameGpa(_l1Ldt0 + (ulong)i) | Table);

        // Misc page table: IDT (ring 0, read-only), stubs (user-executable, read-only), doorbell (user, no memory).
        Set(_l1Misc, 0, FrameGpa(_idt) | P | A);
        for (int i = 0; i < PvLayout.StubPages; i++) Set(_l1Misc, 1 + i, FrameGpa(_stubs + (ulong)i) | P | US | A);
        Set(_l1Misc, (int)((PvLayout.DoorbellVa - PvLayout.IdtVa) >> 12), PvLayout.DoorbellGpa | P | RW | US | A | D);
        Memory.Write(_stubs << 12, Stubs.Code);

        // IDT: every vector to its stub, DPL0 (so INT n from the guest raises #GP and C# applies the trap table's DPL),
        // except int3/into (DPL3). NMI, #DF and #MC run on IST1.
        for (int v = 0; v < 256; v++)
        {
            ulong target = Stubs.ExceptionEntry[v];
            int dpl = v is 3 or 4 ? 3 : 0;
            int ist = v is 2 or 8 or 18 ? 1 : 0;
            WriteGate(v, target, dpl, ist);
        }

        for (int v = 0; v < MaxVcpus; v++) BuildVcpu(v);

        // Slot 258: the M2P, identity, read-only and user-readable, in 2 MiB pages.
        Set(_l3M2p, 0, FrameGpa(_l2M2p) | Table);
        for (ulong i = 0; i < m2pBytes >> 21; i++) Set(_l2M2p, (int)i, FrameGpa(_m2p + i * 512) | P | US | A | PS);
        for (ulong mfn = 0; mfn < RamFrames; mfn++) Memory.WriteUInt64((_m2p << 12) + mfn * 8, mfn);
        for (ulong mfn = RamFrames; mfn < m2pBytes / 8; mfn++) Memory.WriteUInt64((_m2p << 12) + mfn * 8, ulong.MaxValue);

        // Slot 259: direct map of guest RAM and of this area, supervisor-only, 2 MiB pages.
        for (int g = 0; g < _dmGiB; g++)
        {
            Set(_l3Dm, g, FrameGpa(_l2Dm0 + (ulong)g) | Table);
            for (int i = 0; i < 512; i++) Set(_l2Dm0 + (ulong)g, i, ((ulong)g << 30) + ((ulong)i << 21) | P | RW | A | D | PS);
        }
        ulong hvL2 = _l2Dm0 + (ulong)_dmGiB;
        Set(_l3Dm, (int)(PvLayout.HvGpa >> 30), FrameGpa(hvL2) | Table);
        for (int i = 0; i < 512; i++) Set(hvL2, i, PvLayout.HvGpa + ((ulong)i << 21) | P | RW | A | D | PS);
    }

    private void WriteGate(int v, ulong target, int dpl, int ist)
    {
        ulong lo = (target & 0xffff) | ((ulong)PvLayout.HypervisorCs << 16) | ((ulong)ist << 32) | ((0x8eUL | ((ulong)dpl << 5)) << 40) | (((target >> 16) & 0xffff) << 48);
        Memory.WriteUInt64((_idt << 12) + (ulong)v * 16, lo);
        Memory.WriteUInt64((_idt << 12) + (ulong)v * 16 + 8, target >> 32);
    }

    private void BuildVcpu(int v)
    {
        // GDT pages 0-13: guest frames (none yet: the zero page), 14: Xen's reserved page, 15: zero page.
        for (int p = 0; p < 16; p++)
        {
            ulong frame = p == 14 ? _gdtRes0 + (ulong)v : _zero;
            Set(GdtL1Frame(v, p, out int idx), idx, FrameGpa(frame) | P | RW | A | D);
        }
        ulong res = (_gdtRes0 + (ulong)v) << 12;
        Memory.WriteUInt64(res + 1 * 8, 0x00af9b000000ffffUL);
        Memory.WriteUInt64(res + 2 * 8, 0x00cf93000000ffffUL);
        Memory.WriteUInt64(res + 4 * 8, 0x00cffb000000ffffUL);
        Memory.WriteUInt64(res + 5 * 8, 0x00cff3000000ffffUL);
        Memory.WriteUInt64(res + 6 * 8, 0x00affb000000ffffUL);
        ulong tss = TssVa(v);
        Memory.WriteUInt64(res + 8 * 8, PvLayout.TssLimit | ((tss & 0xffffff) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xff) << 56));
        Memory.WriteUInt64(res + 9 * 8, tss >> 32);
        Memory.WriteUInt64(res + 12 * 8, ((ulong)v & 0xffff) | (0xf3UL << 40));

        // Per-vCPU block: TSS, command page, stack, IST stack; all ring-0 read-write.
        ulong blockFrame = _vcpuBlocks0 + (ulong)v * PvLayout.VcpuBlockPages;
        for (int p = 0; p < PvLayout.VcpuBlockPages; p++)
        {
            int slot = v * PvLayout.VcpuBlockPages + p;
            Set(_l1Vcpu0 + (ulong)(slot / 512), slot % 512, FrameGpa(blockFrame + (ulong)p) | P | RW | A | D);
        }
        ulong tssOff = blockFrame << 12;
        Memory.WriteUInt64(tssOff + 4, VcpuBlockVa(v) + PvLayout.StackTop);
        Memory.WriteUInt64(tssOff + 36, VcpuBlockVa(v) + PvLayout.IstTop);
        Memory.WriteUInt16(tssOff + 102, PvLayout.IoBitmapOffset);
        Memory.Write(tssOff + PvLayout.IoBitmapOffset, PvLayout.IoBitmap(PvLayout.DoorbellPortSyscall, PvLayout.DoorbellPortSyscall32, PvLayout.DoorbellPortSysenter));
    }

    private ulong GdtL1Frame(int v, int page, out int index)
    {
        int slot = v * 16 + page;
        index = slot % 512;
        return _l1Gdt0 + (ulong)(slot / 512);
    }

    public static ulong VcpuBlockVa(int v) => PvLayout.VcpuBlockVa(v);
    public static ulong TssVa(int v) => PvLayout.VcpuBlockVa(v) + PvLayout.TssPage;
    public static ulong CommandPageVa(int v) => PvLayout.VcpuBlockVa(v) + PvLayout.CommandPage;
    public static ulong StackTopVa(int v) => PvLayout.VcpuBlockVa(v) + PvLayout.StackTop;

    /// <summary>Offset in <see cref="Memory"/> of the command page of vCPU <paramref name="v"/>.</summary>
    public ulong CommandPageOffset(int v) => ((_vcpuBlocks0 + (ulong)v * PvLayout.VcpuBlockPages) << 12) + PvLayout.CommandPage;

    /// <summary>Translates a VA inside the hypervisor area's per-vCPU blocks (stacks) to an offset in <see cref="Memory"/>.</summary>
    public bool TryVcpuBlockOffset(ulong va, out ulong offset)
    {
        ulong start = PvLayout.HvBase + PvLayout.VcpuRegionOffset;
        offset = 0;
        if (va < start || va >= start + (ulong)MaxVcpus * PvLayout.VcpuStride) return false;
        offset = (_vcpuBlocks0 << 12) + (va - start);
        return true;
    }

    /// <summary>L4 entries that every guest L4 gets in the hypervisor slots (others of 256-271 stay empty).</summary>
    public IEnumerable<(int Slot, ulong Entry)> L4Entries()
    {
        yield return (PvLayout.HvSlot, FrameGpa(_l3Hv) | Table);
        yield return (PvLayout.M2pSlot, FrameGpa(_l3M2p) | Table);
        yield return (PvLayout.DirectMapSlot, FrameGpa(_l3Dm) | Table);
    }

    /// <summary>Guest-physical address of the L1 entry mapping GDT page <paramref name="page"/> of vCPU <paramref name="v"/>.</summary>
    public ulong GdtPteGpa(int v, int page)
    {
        ulong f = GdtL1Frame(v, page, out int idx);
        return FrameGpa(f) + (ulong)idx * 8;
    }

    /// <summary>Guest-physical address of the L1 entry mapping shadow-LDT page <paramref name="page"/> of vCPU <paramref name="v"/>.</summary>
    public ulong LdtPteGpa(int v, int page)
    {
        int slot = v * PvLayout.LdtPages + page;
        return FrameGpa(_l1Ldt0 + (ulong)(slot / 512)) + (ulong)(slot % 512) * 8;
    }

    /// <summary>Entry <paramref name="index"/> of vCPU <paramref name="v"/>'s reserved GDT page (selector 0xe000 + index*8).</summary>
    public ulong ReservedGdtEntry(int v, int index) => Memory.ReadUInt64(((_gdtRes0 + (ulong)v) << 12) + (ulong)index * 8);
    public void SetReservedGdtEntry(int v, int index, ulong value) => Memory.WriteUInt64(((_gdtRes0 + (ulong)v) << 12) + (ulong)index * 8, value);

    public ulong GdtPteValue(ulong? guestFrame) => (guestFrame is ulong f ? f << 12 : FrameGpa(_zero)) | P | RW | A | D;

    /// <summary>Initial special registers and MSRs of a PV vCPU (done once, before its first run).</summary>
    public void InitVcpu(IVcpu cpu, int v, ulong cr3, bool ring0 = false)
    {
        var s = cpu.GetSpecialRegisters();
        s.Cr0 = X86.Cr0Pe | X86.Cr0Mp | X86.Cr0Et | X86.Cr0Ne | X86.Cr0Wp | X86.Cr0Pg;
        s.Cr4 = X86.Cr4Pae | X86.Cr4Osfxsr | X86.Cr4Osxmmexcpt;
        s.Cr3 = cr3;
        s.Efer = X86.EferSce | X86.EferLme | X86.EferLma | X86.EferNx;
        s.Gdt = new DescriptorTableRegister { Base = PvLayout.GdtVa(v), Limit = 0xffff };
        s.Idt = new DescriptorTableRegister { Base = PvLayout.IdtVa, Limit = 0xfff };
        s.Tr = new SegmentRegister { Base = TssVa(v), Limit = PvLayout.TssLimit, Selector = PvLayout.TssSelector, Type = 11, Present = 1 };
        s.Ldt = new SegmentRegister { Unusable = 1 };
        s.Cs = ring0 ? SegmentRegister.Code64(PvLayout.HypervisorCs, 0) : SegmentRegister.Code64(PvLayout.Ring3Cs64, 3);
        s.Ss = ring0 ? SegmentRegister.Data(PvLayout.HypervisorDs, 0) : SegmentRegister.Data(PvLayout.Ring3Ds, 3);
        s.Ds = s.Es = s.Fs = s.Gs = new SegmentRegister { Unusable = 1 };
        cpu.SetSpecialRegisters(s);
        cpu.SetMsr(X86.MsrStar, PvLayout.StarValue);
        cpu.SetMsr(X86.MsrLstar, Stubs.SyscallEntry);
        cpu.SetMsr(X86.MsrCstar, Stubs.Syscall32Entry);
        cpu.SetMsr(X86.MsrSyscallMask, PvLayout.SyscallMask);
        cpu.SetMsr(X86.MsrGsBase, 0);
        cpu.SetMsr(X86.MsrFsBase, 0);
        cpu.SetMsr(X86.MsrKernelGsBase, 0);
    }

    public void Dispose() => Memory.Dispose();
}
