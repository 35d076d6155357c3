using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// Segment state of a PV vCPU: descriptor look-up (guest GDT, Xen's reserved page, the guest LDT), the checks the CPU
/// applies when XenSharp returns to the guest (which decide between the return and Xen's failsafe callback), and the
/// guest LDT (MMUEXT_SET_LDT): the LDT descriptor in the reserved GDT slot 0xe050 and a shadow mapping of the
/// guest's LDT pages filled on first use, as Xen's pv_map_ldt_shadow_page does.
/// </summary>
public sealed partial class PvPlatform
{
    private const ulong DescP = 1UL << 47, DescS = 1UL << 44, DescL = 1UL << 53, DescD = 1UL << 54;
    private static int DescType(ulong d) => (int)((d >> 40) & 0xf);
    private static int DescDpl(ulong d) => (int)((d >> 45) & 3);

    /// <summary>The 8-byte descriptor <paramref name="sel"/> names for vCPU <paramref name="v"/>, or null beyond the table.</summary>
    internal ulong? ReadDescriptor(int v, PvVcpuState st, ushort sel)
    {
        int index = sel >> 3;
        if ((sel & 4) != 0)
        {
            if (index >= st.LdtEntries || st.KernelL4 == 0) return null;
            try { return Walker.ReadUInt64(st.KernelL4 << 12, st.LdtBase + (ulong)index * 8); }
            catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException) { return null; }
        }
        if (index >= PvLayout.FirstReservedGdtEntry)
        {
            int r = index - PvLayout.FirstReservedGdtEntry;
            return r < 512 ? Area.ReservedGdtEntry(v, r) : null;
        }
        if (index >= st.GdtEntries || st.GdtFrames[index / 512] is not ulong frame) return null;
        return _domain.Memory.ReadUInt64((frame << 12) + (ulong)(index % 512) * 8);
    }

    /// <summary>
    /// What the CPU's iretq to CPL3 checks on the frame XenSharp returns to (CS, SS, RIP), as Xen's own iretq would
    /// fault on it. Returns why the return would fault, or null if it is good.
    /// </summary>
    internal string? CheckReturnFrame(int v, PvVcpuState st, in GuestContext ctx)
    {
        ushort cs = ctx.Cs, ss = ctx.Ss;
        if ((cs & 0xfffc) == 0) return $"null CS 0x{cs:x}";
        if (ReadDescriptor(v, st, cs) is not ulong c) return $"CS 0x{cs:x} beyond its descriptor table";
        if ((c & DescS) == 0 || (DescType(c) & 8) == 0) return $"CS 0x{cs:x} is not a code segment";
        bool conforming = (DescType(c) & 4) != 0;
        if (conforming ? DescDpl(c) > 3 : DescDpl(c) != 3) return $"CS 0x{cs:x} has DPL {DescDpl(c)}";
        if ((c & DescP) == 0) return $"CS 0x{cs:x} is not present";
        bool long64 = (c & DescL) != 0;
        if (long64 && (c & DescD) != 0) return $"CS 0x{cs:x} has both L and D set";
        if ((ss & 0xfffc) == 0) return $"null SS 0x{ss:x} for CPL3";
        if (ReadDescriptor(v, st, ss) is not ulong s) return $"SS 0x{ss:x} beyond its descriptor table";
        if ((s & DescS) == 0 || (DescType(s) & 8) != 0 || (DescType(s) & 2) == 0 || DescDpl(s) != 3)
            return $"SS 0x{ss:x} is not a writable DPL3 data segment";
        if ((s & DescP) == 0) return $"SS 0x{ss:x} is not present";
        ulong rip = ctx.Regs.Rip;
        if (long64 && !X86.IsCanonical(rip)) return $"non-canonical RIP 0x{rip:x}";
        return null;
    }

    /// <summary>Whether <paramref name="sel"/> loads into DS/ES/FS/GS at CPL3 (null loads; data or readable code, DPL3, present).</summary>
    internal bool DataSelectorLoads(int v, PvVcpuState st, ushort sel, out ulong desc)
    {
        desc = 0;
        if ((sel & 0xfffc) == 0) return true;
        if (ReadDescriptor(v, st, sel) is not ulong d) return false;
        desc = d;
        if ((d & DescS) == 0 || (d & DescP) == 0) return false;
        int type = DescType(d);
        bool code = (type & 8) != 0;
        if (code && (type & 2) == 0) return false;
        bool conforming = code && (type & 4) != 0;
        return conforming || DescDpl(d) == 3;
    }

    /// <summary>HYPERVISOR_iret's return: the frame the guest asked for if the CPU takes it, else Xen's failsafe bounce.</summary>
    private void FailsafeIfUnenterable(VirtualCpu vcpu, PvVcpuState st, ref GuestContext ctx)
    {
        if (CheckReturnFrame(vcpu.Id, st, ctx) is not string why) return;
        var s = vcpu.Cpu.GetSpecialRegisters();
        Traps.Failsafe(st, ref ctx, s.Ds.Selector, s.Es.Selector, s.Fs.Selector, s.Gs.Selector, $"return to guest faults: {why}");
    }

    // ---- LDT ----

    /// <summary>MMUEXT_SET_LDT: validates the arguments as Xen does, drops the old shadow, installs the descriptor and queues lldt.</summary>
    private long SetLdt(VirtualCpu vcpu, PvVcpuState st, CommandPtWriter w, ulong linear, ulong ents)
    {
        ulong ptr = ents != 0 ? linear : 0;
        bool addrOk = ptr < (1UL << 47) || ptr >= X86_64Layout.HypervisorVirtEnd;
        if ((ptr & 0xfff) != 0 || !addrOk || ents > 8192) return EINVAL;
        if (ents != 0 && ptr < (1UL << 47) && ptr + ents * 8 > (1UL << 47)) return EINVAL;
        if (st.LdtBase == ptr && st.LdtEntries == (int)ents) return 0;
        DestroyLdtShadow(vcpu.Id, st, w);
        st.LdtBase = ptr;
        st.LdtEntries = (int)ents;
        LoadLdt(vcpu.Id, st);
        return 0;
    }

    /// <summary>Writes the LDT descriptor (or none) into the reserved GDT page and queues lldt for the resume stub.</summary>
    private void LoadLdt(int v, PvVcpuState st)
    {
        if (st.LdtEntries == 0)
        {
            Area.SetReservedGdtEntry(v, PvLayout.LdtReservedIndex, 0);
            Area.SetReservedGdtEntry(v, PvLayout.LdtReservedIndex + 1, 0);
            st.Commands.Add((CommandPage.OpLldt, 0, 0));
            return;
        }
        ulong b = PvLayout.LdtVa(v), limit = (ulong)st.LdtEntries * 8 - 1;
        ulong lo = (limit & 0xffff) | ((b & 0xffffff) << 16) | (0x82UL << 40) | (((limit >> 16) & 0xf) << 48) | (((b >> 24) & 0xff) << 56);
        Area.SetReservedGdtEntry(v, PvLayout.LdtReservedIndex, lo);
        Area.SetReservedGdtEntry(v, PvLayout.LdtReservedIndex + 1, b >> 32);
        st.Commands.Add((CommandPage.OpLldt, PvLayout.LdtSelector, 0));
    }

    /// <summary>Unmaps the shadow LDT pages and drops their descriptor-page type references (Xen's pv_destroy_ldt).</summary>
    private void DestroyLdtShadow(int v, PvVcpuState st, IPtWriter w)
    {
        lock (Mmu.SyncRoot)
        {
            for (int p = 0; p < PvLayout.LdtPages; p++)
            {
                if (st.LdtShadow[p] is not ulong mfn) continue;
                st.LdtShadow[p] = null;
                w.Store(Area.LdtPteGpa(v, p), 0);
                w.Invlpg(PvLayout.LdtVa(v) + (ulong)p * 4096);
                Mmu.PutType(mfn, w);
            }
        }
    }

    /// <summary>
    /// A #PF in this vCPU's shadow LDT (the CPU reading a descriptor of an LDT page not mapped yet): map the guest's
    /// page there if its kernel mapping is present and the frame validates as a descriptor page. Returns false when it
    /// cannot; the caller then passes the #PF to the guest at the LDT's own address (as Xen's handle_ldt_mapping_fault).
    /// </summary>
    private bool TryMapLdtShadow(int v, PvVcpuState st, ulong cr2, out ulong guestVa)
    {
        ulong off = cr2 - PvLayout.LdtVa(v);
        guestVa = st.LdtBase + off;
        int page = (int)(off >> 12);
        if (st.LdtEntries == 0 || off >= (ulong)st.LdtEntries * 8 || st.LdtShadow[page] is not null) return false;
        var w = new CommandPtWriter(_domain.Memory, Area, st);
        lock (Mmu.SyncRoot)
        {
            if (!Mmu.TryFindL1Entry(st.KernelL4, guestVa & ~0xfffUL, out ulong pteGpa)) return false;
            ulong pte = _domain.Memory.ReadUInt64(pteGpa);
            if ((pte & X86.PtePresent) == 0) return false;
            ulong mfn = (pte & X86.PteAddressMask) >> 12;
            if (mfn >= Area.RamFrames || Mmu.GetType(mfn, PageType.SegDesc, w) != 0) return false;
            st.LdtShadow[page] = mfn;
            w.Store(Area.LdtPteGpa(v, page), (mfn << 12) | X86.PtePresent | X86.PteRw | X86.PteAccessed | X86.PteDirty);
            w.Invlpg(PvLayout.LdtVa(v) + (ulong)page * 4096);
        }
        return true;
    }

    /// <summary>
    /// The guest changed a PTE that mapped descriptor page <paramref name="mfn"/>: every vCPU whose shadow LDT holds it
    /// drops its shadow (mapped again from the guest's current tables on the next fault); their TLBs are flushed.
    /// </summary>
    internal void DropLdtShadowsOf(ulong mfn, IPtWriter w)
    {
        foreach (var v in _domain.Vcpus)
        {
            if (Services.Vcpu(v.Id) is not { } st || Array.IndexOf(st.LdtShadow, (ulong?)mfn) < 0) continue;
            DestroyLdtShadow(v.Id, st, w);
            st.RemoteFlushPending = true;
            v.Cpu.Kick();
        }
    }

    internal static bool InLdtShadow(int v, ulong va) => va >= PvLayout.LdtVa(v) && va < PvLayout.LdtVa(v) + PvLayout.LdtStride;
}
