using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using XenSharp.Hypervisor.Pv;

namespace XenSharp.Dom0.Xenbus;

/// <summary>
/// The back end of a one-page shared ring (xen/include/public/io/ring.h): the header is req_prod, req_event,
/// rsp_prod, rsp_event (4 bytes each) and 48 bytes of padding; entries (a union of request and response) start at
/// byte 64. The ring size is the largest power of two of entries that fit. Everything the frontend writes is read
/// once, with the checks the ring macros' users are expected to make (request overflow).
/// </summary>
public sealed class BackRing
{
    public const int HeaderSize = 64;
    private readonly GrantMapping _page;

    public BackRing(GrantMapping page, int entrySize)
    {
        _page = page;
        EntrySize = entrySize;
        Size = RingSizeFor(entrySize);
    }

    /// <summary>__RING_SIZE for a 4 KiB page: the largest power of two not above (4096 - 64) / entry size.</summary>
    public static uint RingSizeFor(int entrySize)
    {
        uint n = (uint)((4096 - HeaderSize) / entrySize);
        return n == 0 ? 0 : 1u << (31 - System.Numerics.BitOperations.LeadingZeroCount(n));
    }

    public int EntrySize { get; }
    public uint Size { get; }
    public uint ReqCons;
    public uint RspProdPvt;
    public GrantMapping Mapping => _page;

    private ref uint Field(int off) => ref Unsafe.As<byte, uint>(ref Unsafe.Add(ref MemoryMarshal.GetReference(_page.Page), off));

    public uint ReqProd => Volatile.Read(ref Field(0));
    public uint ReqEvent { get => Volatile.Read(ref Field(4)); set => Volatile.Write(ref Field(4), value); }
    public uint RspProd => Volatile.Read(ref Field(8));
    public uint RspEvent => Volatile.Read(ref Field(12));

    /// <summary>Entry <paramref name="idx"/> (masked) of the ring.</summary>
    public Span<byte> Entry(uint idx) => _page.Page.Slice(HeaderSize + (int)(idx & (Size - 1)) * EntrySize, EntrySize);

    /// <summary>Copies request <paramref name="idx"/> out of shared memory: validate only the copy.</summary>
    public T ReadRequest<T>(uint idx) where T : unmanaged
    {
        var e = Entry(idx);
        T v = MemoryMarshal.Read<T>(e);
        Interlocked.MemoryBarrier();
        return v;
    }

    public void WriteResponse<T>(T rsp) where T : unmanaged
    {
        var e = Entry(RspProdPvt++);
        MemoryMarshal.Write(e, in rsp);
    }

    /// <summary>
    /// Requests published but not consumed, or -1 when the frontend claims more outstanding requests than the ring
    /// holds (RING_REQUEST_PROD_OVERFLOW): the device must be disconnected.
    /// </summary>
    public long Unconsumed(out uint prod)
    {
        prod = ReqProd;
        Interlocked.MemoryBarrier(); // read entries only after req_prod
        if (prod - RspProdPvt > Size) return -1;
        uint n = prod - ReqCons;
        // RING_REQUEST_CONS_OVERFLOW: never consume beyond the responses we can place.
        uint room = Size - (ReqCons - RspProdPvt);
        return Math.Min(n, room);
    }

    /// <summary>RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: publishes responses; true when the frontend wants an event.</summary>
    public bool PushResponsesAndCheckNotify()
    {
        uint old = RspProd;
        uint nw = RspProdPvt;
        Interlocked.MemoryBarrier();
        Volatile.Write(ref Field(8), nw);
        Interlocked.MemoryBarrier();
        return nw - RspEvent < nw - old;
    }

    /// <summary>RING_FINAL_CHECK_FOR_REQUESTS: true when more requests are there; otherwise asks for an event on the next one.</summary>
    public bool FinalCheckForRequests(out bool overflow)
    {
        long n = Unconsumed(out _);
        overflow = n < 0;
        if (n != 0) return true;
        ReqEvent = ReqCons + 1;
        Interlocked.MemoryBarrier();
        n = Unconsumed(out _);
        overflow = n < 0;
        return n != 0;
    }
}
