using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Dom0.Xenstore;

/// <summary>Returns the 4 KiB page holding struct xenstore_domain_interface, each time it is needed (guest memory may be remapped).</summary>
public delegate Span<byte> XenstorePageAccessor();

/// <summary>
/// The server side of a domain's xenstore ring (struct xenstore_domain_interface, io/xs_wire.h): requests in req[],
/// replies and watch events out through rsp[], free-running u32 indexes masked by 1023. The page is guest memory and
/// untrusted: indexes are read once, validated, and a bogus one breaks the ring for good rather than letting us read
/// out of bounds or spin.
/// </summary>
public sealed class XenstoreRing
{
    public const int RingSize = 1024;
    public const int ReqOffset = 0, RspOffset = 1024;
    public const int ReqConsOffset = 2048, ReqProdOffset = 2052, RspConsOffset = 2056, RspProdOffset = 2060;
    public const int ServerFeaturesOffset = 2064, ConnectionOffset = 2068, ErrorOffset = 2072, EvtchnPortOffset = 2076;
    /// <summary>Upper bound of request bytes taken per notification, so a guest refilling as fast as we drain cannot hold us.</summary>
    public const int ReadBudget = 256 * 1024;

    private readonly XenstorePageAccessor _page;
    private readonly Action _notifyGuest;
    private readonly object _inLock = new(), _outLock = new();
    private readonly byte[] _chunk = new byte[RingSize];
    private XenstoreConnection? _conn;
    private byte[]? _partial;
    private int _partialOffset;
    private volatile bool _broken, _detached;

    /// <param name="page">The ring page.</param>
    /// <param name="notifyGuest">Signals the domain's store event channel.</param>
    public XenstoreRing(XenstorePageAccessor page, Action notifyGuest)
    {
        _page = page;
        _notifyGuest = notifyGuest;
    }

    /// <summary>The ring at guest frame <paramref name="gfn"/> (start_info.store_mfn) of a domain's memory.</summary>
    public XenstoreRing(GuestMemory memory, ulong gfn, Action notifyGuest) : this(() => memory.Frame(gfn), notifyGuest) { }

    /// <summary>The ring page, or an empty span (and the ring detached) once the domain's memory is gone: a domain being
    /// destroyed may still have watch events queued for it while the toolstack removes its nodes.</summary>
    private Span<byte> Page()
    {
        try { return _page(); }
        catch (ObjectDisposedException)
        {
            _detached = true;
            return Span<byte>.Empty;
        }
    }

    public XenstoreConnection? Connection => _conn;
    /// <summary>True once the guest corrupted an index or the protocol; the domain is no longer served.</summary>
    public bool IsBroken => _broken;

    private static ref uint Field(Span<byte> page, int offset) => ref MemoryMarshal.Cast<byte, uint>(page.Slice(offset, 4))[0];

    internal void Attach(XenstoreConnection conn, uint features)
    {
        _conn = conn;
        var page = _page();
        if (page.Length < 4096) throw new ArgumentException("xenstore ring page must be 4096 bytes");
        Volatile.Write(ref Field(page, ServerFeaturesOffset), features);
        conn.OutputAvailable += _ => FlushOutput();
    }

    internal void Detach() => _detached = true;

    /// <summary>The guest kicked the store event channel: take its requests and push whatever output is queued.</summary>
    public void GuestNotified()
    {
        ReadRequests();
        FlushOutput();
    }

    private void ReadRequests()
    {
        var conn = _conn;
        if (conn is null) return;
        bool consumed = false;
        lock (_inLock)
        {
            int budget = ReadBudget;
            while (!_broken && !_detached && !conn.IsClosed && budget > 0)
            {
                // A guest that does not take its replies gets no more requests served until it does.
                if (!conn.Privileged && conn.AtMessageBoundary &&
                    conn.QueuedOutputCount >= Math.Max(1, conn.Store.FindDomain(conn.Domid)?.Quota.Outstanding ?? 20))
                    break;
                int n;
                {
                    var page = Page();
                    if (_detached) break;
                    uint cons = Volatile.Read(ref Field(page, ReqConsOffset));
                    uint prod = Volatile.Read(ref Field(page, ReqProdOffset));
                    Interlocked.MemoryBarrier(); // indexes before data
                    uint avail = prod - cons;
                    if (avail > RingSize)
                    {
                        Break(XsWire.ErrorRingIdx, $"request indexes cons={cons} prod={prod}");
                        break;
                    }
                    if (avail == 0) break;
                    int off = (int)(cons & (RingSize - 1));
                    n = (int)Math.Min(Math.Min(avail, (uint)(RingSize - off)), (uint)conn.BytesWanted);
                    page.Slice(ReqOffset + off, n).CopyTo(_chunk);
                    Interlocked.MemoryBarrier(); // data copied before the guest may reuse the space
                    Volatile.Write(ref Field(page, ReqConsOffset), cons + (uint)n);
                }
                consumed = true;
                budget -= n;
                if (!conn.Feed(_chunk.AsSpan(0, n)))
                    Break(conn.BrokenReason, "protocol violation");
            }
        }
        if (consumed && !_broken) _notifyGuest();
    }

    /// <summary>Copies queued messages into rsp[] as space permits; the rest waits for the guest to consume.</summary>
    public void FlushOutput()
    {
        var conn = _conn;
        if (conn is null) return;
        bool produced = false;
        lock (_outLock)
        {
            while (!_broken && !_detached)
            {
                if (_partial is null)
                {
                    if (!conn.TryDequeue(out var m)) break;
                    _partial = m;
                    _partialOffset = 0;
                }
                var page = Page();
                if (_detached) break;
                uint cons = Volatile.Read(ref Field(page, RspConsOffset));
                uint prod = Volatile.Read(ref Field(page, RspProdOffset));
                Interlocked.MemoryBarrier(); // see the guest's consumption before overwriting its space
                uint used = prod - cons;
                if (used > RingSize)
                {
                    Break(XsWire.ErrorRingIdx, $"response indexes cons={cons} prod={prod}");
                    break;
                }
                if (used == RingSize) break;
                int off = (int)(prod & (RingSize - 1));
                int n = Math.Min(Math.Min(RingSize - (int)used, RingSize - off), _partial.Length - _partialOffset);
                _partial.AsSpan(_partialOffset, n).CopyTo(page.Slice(RspOffset + off, n));
                Interlocked.MemoryBarrier(); // data visible before the producer index
                Volatile.Write(ref Field(page, RspProdOffset), prod + (uint)n);
                produced = true;
                _partialOffset += n;
                if (_partialOffset == _partial.Length) _partial = null;
            }
        }
        if (produced) _notifyGuest();
    }

    private void Break(uint reason, string why)
    {
        if (_broken) return;
        _broken = true;
        try
        {
            // XENSTORE_SERVER_FEATURE_ERROR: tell the guest why we stopped talking.
            Volatile.Write(ref Field(_page(), ErrorOffset), reason);
        }
        catch (Exception e) when (e is GuestMemoryException or ObjectDisposedException) { }
        if (_conn is { } conn)
        {
            conn.Store.Log?.Invoke($"xenstore: ring of dom{conn.Domid} broken: {why}");
            // Like xenstored's ignore_connection(): its watches and transactions go. Not inline: we may hold the
            // output lock here, which must never be held while taking the store lock.
            ThreadPool.UnsafeQueueUserWorkItem(_ => conn.Close(), null);
        }
        _notifyGuest();
    }
}
