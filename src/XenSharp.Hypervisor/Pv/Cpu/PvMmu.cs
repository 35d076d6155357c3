using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Cpu;

public enum PageType : byte { None, L1, L2, L3, L4, SegDesc }

/// <summary>Where validated page-table stores and flushes go: straight into memory (before the first run) or to a vCPU's command list.</summary>
public interface IPtWriter
{
    void Store(ulong gpa, ulong value);
    void Invlpg(ulong va);
    void FlushAll();
    void LoadCr3(ulong cr3);
}

/// <summary>Host-side writes: only valid before the domain first runs (KVM's shadow MMU would not see them later).</summary>
public sealed class HostPtWriter(GuestMemory ram, HypervisorArea hv) : IPtWriter
{
    public void Store(ulong gpa, ulong value)
    {
        if (ram.Contains(gpa, 8)) ram.WriteUInt64(gpa, value);
        else hv.Memory.WriteUInt64(gpa - hv.Gpa, value);
    }
    public void Invlpg(ulong va) { }
    public void FlushAll() { }
    public void LoadCr3(ulong cr3) { }
}

/// <summary>
/// Writes the new value host-side (so C#'s view stays current within a batch) and queues the same store, through the
/// direct map, for the resume stub: the guest-context write is what KVM's shadow MMU notices.
/// </summary>
public sealed class CommandPtWriter(GuestMemory ram, HypervisorArea hv, PvVcpuState st) : IPtWriter
{
    public void Store(ulong gpa, ulong value)
    {
        if (ram.Contains(gpa, 8)) ram.WriteUInt64(gpa, value);
        else hv.Memory.WriteUInt64(gpa - hv.Gpa, value);
        st.Commands.Add((CommandPage.OpStore, PvLayout.DirectMapBase + gpa, value));
    }
    public void Invlpg(ulong va) => st.Commands.Add((CommandPage.OpInvlpg, va, 0));
    public void FlushAll() => st.Commands.Add((CommandPage.OpFlushAll, 0, 0));
    public void LoadCr3(ulong cr3) => st.Commands.Add((CommandPage.OpLoadCr3, cr3, 0));
}

/// <summary>
/// Page-type tracking and validation of a PV domain's page tables, after Xen's rules: a frame is a page table of one
/// level (or a descriptor page) only while it has no writable mapping; entries may not use PSE nor reach into the
/// hypervisor slots; present entries get USER added since the guest kernel runs at CPL3; every validated L4 gets the
/// hypervisor slots.
/// </summary>
public sealed class PvMmu
{
    private const ulong Present = X86.PtePresent, Rw = X86.PteRw, User = X86.PteUser, Pse = X86.PtePse;
    private const ulong AddrMask = X86.PteAddressMask;

    private readonly GuestMemory _ram;
    private readonly HypervisorArea _hv;
    private readonly PageType[] _type;
    private readonly int[] _typeRefs;
    private readonly bool[] _pinned;
    private readonly int[] _writable;
    private readonly object _lock = new();

    public ulong Frames { get; }

    public PvMmu(GuestMemory ram, HypervisorArea hv, Func<ulong, bool>? isSpecialFrame = null)
    {
        _ram = ram;
        _hv = hv;
        IsSpecialFrame = isSpecialFrame ?? (_ => false);
        Frames = ram.FrameCount;
        _type = new PageType[Frames];
        _typeRefs = new int[Frames];
        _pinned = new bool[Frames];
        _writable = new int[Frames];
    }

    /// <summary>Called (under the MMU lock) when an L1 entry mapping an in-use descriptor page is removed or replaced.</summary>
    public Action<ulong, IPtWriter>? DescriptorPageUnmapped { get; set; }

    /// <summary>Whether an MFN above RAM is a hypervisor page the guest may map (and makes it reachable).</summary>
    public Func<ulong, bool> IsSpecialFrame { get; set; }

    public object SyncRoot => _lock;
    public PageType TypeOf(ulong mfn) => mfn < Frames ? _type[mfn] : PageType.None;
    public int TypeRefs(ulong mfn) => mfn < Frames ? _typeRefs[mfn] : 0;
    public bool IsPinned(ulong mfn) => mfn < Frames && _pinned[mfn];
    public int WritableMappings(ulong mfn) => mfn < Frames ? _writable[mfn] : 0;

    private ulong ReadEntry(ulong mfn, int index) => _ram.ReadUInt64((mfn << 12) + (ulong)index * 8);

    public static bool IsGuestL4Slot(int index) => index < PvLayout.FirstHvSlot || index > PvLayout.LastHvSlot;

    /// <summary>Adjusts a guest entry as Xen does (USER on present entries). Returns the entry to store, or an errno.</summary>
    private int CheckEntry(int level, ulong e, out ulong adjusted)
    {
        adjusted = e;
        if ((e & Present) == 0) return 0;
        ulong mfn = (e & AddrMask) >> 12;
        if (level == 1)
        {
            if (mfn >= Frames) return IsSpecialFrame(mfn) ? Ok(e | User, out adjusted) : -XenErrno.EINVAL;
            if ((e & Rw) != 0 && _type[mfn] != PageType.None && _typeRefs[mfn] > 0) return -XenErrno.EBUSY; // Xen: get_page_from_l1e, could_not_pin
            adjusted = e | User;
            return 0;
        }
        if ((e & Pse) != 0 && level < 4) return -XenErrno.EINVAL;
        if (mfn >= Frames) return -XenErrno.EINVAL;
        adjusted = e | User;
        return 0;
    }

    private static int Ok(ulong v, out ulong adjusted) { adjusted = v; return 0; }

    /// <summary>Takes the references an installed entry holds: a writable mapping count, or a type reference on the next-level table.</summary>
    private int GetEntryRefs(int level, ulong e, IPtWriter w)
    {
        if ((e & Present) == 0) return 0;
        ulong mfn = (e & AddrMask) >> 12;
        if (level == 1)
        {
            if (mfn < Frames && (e & Rw) != 0) _writable[mfn]++;
            return 0;
        }
        return GetType(mfn, (PageType)(level - 1), w);
    }

    private void PutEntryRefs(int level, ulong e, IPtWriter w)
    {
        if ((e & Present) == 0) return;
        ulong mfn = (e & AddrMask) >> 12;
        if (level == 1)
        {
            // A mapping of an in-use descriptor page goes away: a shadow LDT made from it may be stale (Xen's
            // put_page_from_l1e invalidates the shadow LDT here).
            if (mfn < Frames && _type[mfn] == PageType.SegDesc && _typeRefs[mfn] > 0) DescriptorPageUnmapped?.Invoke(mfn, w);
            if (mfn < Frames && (e & Rw) != 0 && _writable[mfn] > 0) _writable[mfn]--;
            return;
        }
        PutType(mfn, w);
    }

    /// <summary>Gives <paramref name="mfn"/> type <paramref name="type"/> (validating it on first use) and takes a type reference.</summary>
    public int GetType(ulong mfn, PageType type, IPtWriter w)
    {
        if (mfn >= Frames) return -XenErrno.EINVAL;
        if (_typeRefs[mfn] > 0)
        {
            if (_type[mfn] != type) return -XenErrno.EINVAL;
            _typeRefs[mfn]++;
            return 0;
        }
        if (_writable[mfn] > 0) return -XenErrno.EPERM;
        int rc = type switch
        {
            PageType.L1 or PageType.L2 or PageType.L3 or PageType.L4 => ValidateTable(mfn, (int)type, w),
            PageType.SegDesc => ValidateDescriptorPage(mfn),
            _ => 0,
        };
        if (rc != 0) return rc;
        _type[mfn] = type;
        _typeRefs[mfn] = 1;
        return 0;
    }

    public void PutType(ulong mfn, IPtWriter w)
    {
        if (mfn >= Frames || _typeRefs[mfn] == 0) return;
        if (--_typeRefs[mfn] > 0) return;
        var t = _type[mfn];
        _type[mfn] = PageType.None;
        if (t is PageType.L1 or PageType.L2 or PageType.L3 or PageType.L4)
        {
            int level = (int)t;
            for (int i = 0; i < 512; i++)
                if (level != 4 || IsGuestL4Slot(i)) PutEntryRefs(level, ReadEntry(mfn, i), w);
        }
    }

    private int ValidateTable(ulong mfn, int level, IPtWriter w)
    {
        // Mark it in progress so that a table cannot (indirectly) contain itself as a lower level.
        _type[mfn] = (PageType)level;
        _typeRefs[mfn] = 1;
        int done = 0, rc = 0;
        var adjust = new List<(int, ulong)>();
        for (; done < 512; done++)
        {
            if (level == 4 && !IsGuestL4Slot(done)) continue;
            ulong e = ReadEntry(mfn, done);
            rc = CheckEntry(level, e, out ulong adj);
            if (rc == 0) rc = GetEntryRefs(level, adj, w);
            if (rc != 0) break;
            if (adj != e) adjust.Add((done, adj));
        }
        if (rc != 0)
        {
            for (int i = 0; i < done; i++)
                if (level != 4 || IsGuestL4Slot(i)) PutEntryRefs(level, ReadEntry(mfn, i), w);
            _type[mfn] = PageType.None;
            _typeRefs[mfn] = 0;
            return rc;
        }
        foreach (var (i, v) in adjust) w.Store((mfn << 12) + (ulong)i * 8, v);
        if (level == 4)
        {
            for (int s = PvLayout.FirstHvSlot; s <= PvLayout.LastHvSlot; s++) w.Store((mfn << 12) + (ulong)s * 8, 0);
            foreach (var (slot, entry) in _hv.L4Entries()) w.Store((mfn << 12) + (ulong)slot * 8, entry);
        }
        _typeRefs[mfn] = 0;
        return 0;
    }

    /// <summary>
    /// Checks every descriptor of a would-be GDT/LDT page and, as Xen's check_descriptor, writes the fixed-up form back
    /// (DPL raised to 3, call-gate target RPL 3): the CPU reads the page itself, so a fix left unwritten would let a
    /// DPL0 code segment or gate through.
    /// </summary>
    private int ValidateDescriptorPage(ulong mfn)
    {
        var fixes = new List<(int, ulong)>();
        for (int i = 0; i < 512; i++)
        {
            ulong d = ReadEntry(mfn, i);
            if (!Descriptors.Check(d, out ulong f)) return -XenErrno.EINVAL;
            if (f != d) fixes.Add((i, f));
        }
        foreach (var (i, f) in fixes) _ram.WriteUInt64((mfn << 12) + (ulong)i * 8, f);
        return 0;
    }

    public int Pin(ulong mfn, PageType type, IPtWriter w)
    {
        lock (_lock)
        {
            if (mfn >= Frames) return -XenErrno.EINVAL;
            if (_pinned[mfn]) return -XenErrno.EINVAL;
            int rc = GetType(mfn, type, w);
            if (rc == 0) _pinned[mfn] = true;
            return rc;
        }
    }

    public int Unpin(ulong mfn, IPtWriter w)
    {
        lock (_lock)
        {
            if (mfn >= Frames || !_pinned[mfn]) return -XenErrno.EINVAL;
            _pinned[mfn] = false;
            PutType(mfn, w);
            return 0;
        }
    }

    /// <summary>One MMU_NORMAL_PT_UPDATE / MMU_PT_UPDATE_PRESERVE_AD: the entry at guest-physical <paramref name="ptr"/>.</summary>
    public int UpdateEntry(ulong ptr, ulong val, bool preserveAd, IPtWriter w)
    {
        lock (_lock)
        {
            if ((ptr & 7) != 0) return -XenErrno.EINVAL;
            ulong mfn = ptr >> 12;
            if (mfn >= Frames) return -XenErrno.EINVAL;
            int index = (int)((ptr & 0xfff) >> 3);
            var t = _type[mfn];
            ulong old = _ram.ReadUInt64(ptr);
            if (preserveAd) val = (val & ~(X86.PteAccessed | X86.PteDirty)) | (old & (X86.PteAccessed | X86.PteDirty));
            if (_typeRefs[mfn] == 0 || t == PageType.None)
            {
                // Not a page table: a plain store into an ordinary page.
                _ram.WriteUInt64(ptr, val);
                return 0;
            }
            if (t == PageType.SegDesc) return -XenErrno.EINVAL;
            int level = (int)t;
            if (level == 4 && !IsGuestL4Slot(index)) return -XenErrno.EINVAL;
            int rc = CheckEntry(level, val, out ulong adj);
            if (rc != 0) return rc;
            if (adj == old) return 0;
            rc = GetEntryRefs(level, adj, w);
            if (rc != 0) return rc;
            w.Store(ptr, adj);
            PutEntryRefs(level, old, w);
            if (level > 1) w.FlushAll();
            return 0;
        }
    }

    /// <summary>The guest-physical address of the L1 entry that maps <paramref name="va"/> under <paramref name="l4Mfn"/>, if the chain is present.</summary>
    public bool TryFindL1Entry(ulong l4Mfn, ulong va, out ulong pteGpa)
    {
        pteGpa = 0;
        ulong table = l4Mfn << 12;
        for (int level = 4; level >= 2; level--)
        {
            int idx = (int)((va >> (12 + 9 * (level - 1))) & 511);
            if (!_ram.Contains(table + (ulong)idx * 8, 8)) return false;
            ulong e = _ram.ReadUInt64(table + (ulong)idx * 8);
            if ((e & Present) == 0 || (level < 4 && (e & Pse) != 0)) return false;
            table = e & AddrMask;
        }
        pteGpa = table + ((va >> 12) & 511) * 8;
        return _ram.Contains(pteGpa, 8);
    }
}
