using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// A domain's grant table, version 1: 8-byte grant_entry_v1 entries in hypervisor-owned frames (special
/// frames above RAM) that the guest maps after GNTTABOP_setup_table. The guest writes entries; the hypervisor
/// only sets and clears GTF_reading/GTF_writing, with atomics on the 32-bit flags+domid word, while a
/// backend uses a granted frame.
/// </summary>
public sealed class GrantTable : IDisposable
{
    public const int EntriesPerFrame = 4096 / 8;
    /// <summary>Frames present from the start (Xen grows the table on setup_table; we pre-register every frame and only report the grown count).</summary>
    public const int InitialFrames = 1;

    private readonly PvDomainState _d;
    private readonly object _lock = new();
    private readonly Dictionary<uint, (int Readers, int Writers)> _inUse = new();
    private int _nrFrames = InitialFrames;

    internal GrantTable(PvDomainState d, int maxFrames)
    {
        if (maxFrames < 1 || maxFrames > 1024) throw new ArgumentOutOfRangeException(nameof(maxFrames));
        _d = d;
        MaxFrames = maxFrames;
        Memory = new GuestMemory((ulong)maxFrames * 4096, $"xensharp-d{d.DomainId}-grant-table");
        FirstMfn = d.SpecialFrames.Allocate(Memory, 0, maxFrames, writable: true, "grant_table");
    }

    public int MaxFrames { get; }
    /// <summary>Frames the guest has set up (nr_frames of query_size).</summary>
    public int NrFrames { get { lock (_lock) return _nrFrames; } }
    public uint NrEntries => (uint)NrFrames * EntriesPerFrame;
    public GuestMemory Memory { get; }
    public ulong FirstMfn { get; }
    public ulong FrameMfn(int i) => FirstMfn + (ulong)i;
    /// <summary>The grant table version: 1 (set_version(2) is refused).</summary>
    public uint Version { get; private set; } = 1;

    /// <summary>Grows the table to <paramref name="frames"/> (never shrinks). False beyond the maximum.</summary>
    public bool Grow(int frames)
    {
        if (frames > MaxFrames) return false;
        lock (_lock) _nrFrames = Math.Max(_nrFrames, frames);
        return true;
    }

    private ref int Word(uint gref) => ref Memory.Int32At((ulong)gref * 8);

    public GrantEntryV1 ReadEntry(uint gref)
    {
        if (gref >= NrEntries) throw new ArgumentOutOfRangeException(nameof(gref));
        return MemoryMarshal.Read<GrantEntryV1>(Memory.Span((ulong)gref * 8, 8));
    }

    /// <summary>The toolstack seeds reserved entries (GNTTAB_RESERVED_CONSOLE/XENSTORE) for dom0's backends, as libxl does.</summary>
    public void SeedEntry(uint gref, ushort grantee, uint frame, bool readOnly = false)
    {
        if (gref >= NrEntries) throw new ArgumentOutOfRangeException(nameof(gref));
        var span = Memory.Span((ulong)gref * 8, 8);
        MemoryMarshal.Write(span[4..], frame);
        Interlocked.MemoryBarrier();
        ushort flags = (ushort)(Gnttab.GtfPermitAccess | (readOnly ? Gnttab.GtfReadonly : 0));
        Volatile.Write(ref Word(gref), flags | (grantee << 16));
    }

    /// <summary>
    /// Acquires grant <paramref name="gref"/> for grantee <paramref name="grantee"/>: checks the entry
    /// (permit_access, domid, readonly) and marks it in use (GTF_reading, plus GTF_writing when writable) with a
    /// compare-exchange, then validates the frame. Returns a GNTST_* status; on success <paramref name="pfn"/> is
    /// the granted frame.
    /// </summary>
    internal short Acquire(uint gref, uint grantee, bool readOnly, out ulong pfn)
    {
        pfn = 0;
        lock (_lock)
        {
            if (gref >= (uint)_nrFrames * EntriesPerFrame) return Gnttab.StBadGntref;
            ref int word = ref Word(gref);
            ushort add = (ushort)(Gnttab.GtfReading | (readOnly ? 0 : Gnttab.GtfWriting));
            while (true)
            {
                int w = Volatile.Read(ref word);
                ushort flags = (ushort)w;
                ushort domid = (ushort)(w >> 16);
                if ((flags & Gnttab.GtfTypeMask) != Gnttab.GtfPermitAccess || domid != grantee) return Gnttab.StPermissionDenied;
                if (!readOnly && (flags & Gnttab.GtfReadonly) != 0) return Gnttab.StPermissionDenied;
                int nw = (w & ~0xffff) | (flags | add);
                if (Interlocked.CompareExchange(ref word, nw, w) == w) break;
            }
            uint frame = Volatile.Read(ref MemoryMarshal.Cast<byte, uint>(Memory.Span((ulong)gref * 8 + 4, 4))[0]);
            var use = _inUse.GetValueOrDefault(gref);
            use = (use.Readers + 1, use.Writers + (readOnly ? 0 : 1));
            _inUse[gref] = use;
            if (!_d.IsPopulatedRam(frame))
            {
                ReleaseLocked(gref, readOnly);
                return Gnttab.StBadPage;
            }
            pfn = frame;
            return Gnttab.StOkay;
        }
    }

    internal void Release(uint gref, bool readOnly)
    {
        lock (_lock) ReleaseLocked(gref, readOnly);
    }

    private void ReleaseLocked(uint gref, bool readOnly)
    {
        if (!_inUse.TryGetValue(gref, out var use)) return;
        use = (use.Readers - 1, use.Writers - (readOnly ? 0 : 1));
        int clear = 0;
        if (use.Writers == 0) clear |= Gnttab.GtfWriting;
        if (use.Readers == 0) clear |= Gnttab.GtfReading;
        if (use.Readers == 0) _inUse.Remove(gref); else _inUse[gref] = use;
        // Clear only our bits: whatever the guest did to the entry meanwhile stays as it wrote it.
        if (clear != 0) Interlocked.And(ref Word(gref), ~clear);
    }

    /// <summary>Grants currently in use by backends (for tests and debug output).</summary>
    public int InUseCount { get { lock (_lock) return _inUse.Count; } }

    /// <summary>
    /// Dom0 backend API: maps the page that this domain granted to dom0 with reference <paramref name="gref"/>.
    /// Throws <see cref="GrantException"/> with the GNTST_* status when the grant is not valid for dom0 (bad ref,
    /// not permitted, other grantee, read-only for a writable map, frame not guest RAM). Dispose the mapping to
    /// release the grant (clears GTF_reading/GTF_writing when the last user goes).
    /// </summary>
    public GrantMapping MapForBackend(uint gref, bool readOnly)
    {
        short st = Acquire(gref, 0, readOnly, out ulong pfn);
        if (st != Gnttab.StOkay) throw new GrantException(st, $"d{_d.DomainId} grant {gref}: status {st}");
        return new GrantMapping(this, _d, gref, readOnly, pfn);
    }

    /// <summary>As <see cref="MapForBackend(uint, bool)"/> on domain <paramref name="granter"/>.</summary>
    public static GrantMapping MapForBackend(Domain granter, uint gref, bool readOnly) =>
        (PvDomainState.Of(granter) ?? throw new GrantException(Gnttab.StBadDomain, $"d{granter.Id} is not a PV domain")).Grants.MapForBackend(gref, readOnly);

    internal void SetVersion1() => Version = 1;

    public void Dispose() => Memory.Dispose();
}

/// <summary>A granted page held by a dom0 backend. <see cref="Page"/> is valid until Dispose (and while the granter lives).</summary>
public sealed class GrantMapping : IDisposable
{
    private readonly GrantTable _table;
    private readonly PvDomainState _granter;
    private int _released;

    internal GrantMapping(GrantTable table, PvDomainState granter, uint gref, bool readOnly, ulong pfn)
    {
        _table = table;
        _granter = granter;
        Ref = gref;
        ReadOnly = readOnly;
        Pfn = pfn;
    }

    public uint Ref { get; }
    public bool ReadOnly { get; }
    public ulong Pfn { get; }
    public uint GranterDomainId => _granter.DomainId;

    /// <summary>The granted 4 KiB frame of the granter's RAM. Never write through it when <see cref="ReadOnly"/>.</summary>
    public Span<byte> Page
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _released) != 0, this);
            return _granter.Domain.Memory.Frame(Pfn);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) _table.Release(Ref, ReadOnly);
    }
}

/// <summary>A grant operation failed with a GNTST_* status.</summary>
public sealed class GrantException(short status, string message) : Exception(message)
{
    public short Status { get; } = status;
}
