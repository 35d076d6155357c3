using System.Globalization;
using XenSharp.Dom0.Xenbus;
using XenSharp.Dom0.Xenstore;
using XenSharp.Accel;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Pv;

namespace XenSharp.Dom0.Block;

/// <summary>Counters of one vbd (for xl top / the panel).</summary>
public sealed class VbdStats
{
    public long IndirectRequests, ReadRequests, WriteRequests, FlushRequests, DiscardRequests, Errors, SectorsRead, SectorsWritten;
}

/// <summary>
/// blkback for one vbd: the xenbus handshake, the blkif ring over a granted page, and a worker thread that reads
/// each request once into a local copy, validates it and performs it on the <see cref="IDiskImage"/> (raw or qcow2).
/// Advertises flush-cache, barrier, indirect segments (up to 256) and (for regular files) discard; no persistent
/// grants, no multi-page rings, no multi-queue.
/// </summary>
public sealed class VbdBackend : XenbusBackend
{
    private readonly Domain _domain;
    private readonly IDiskImage _image;
    private readonly string _target;
    private readonly bool _cdrom;
    private readonly object _connLock = new();
    private BackRing? _ring;
    private Dom0Channel? _evtchn;
    private Thread? _worker;
    private volatile bool _stop;
    private readonly AutoResetEvent _kick = new(false);
    /// <summary>feature-max-indirect-segments (Xen's blkback offers 256).</summary>
    public const int MaxIndirectSegments = 256;
    private readonly byte[] _buf = new byte[MaxIndirectSegments * 4096];
    private readonly BlkifSegment[] _indirectSegs = new BlkifSegment[MaxIndirectSegments];

    public VbdBackend(XenstoreClient xs, Domain domain, uint devid, IDiskImage image, string target, bool cdrom = false)
        : base(xs, domain.Id, "vbd", devid)
    {
        _domain = domain;
        _image = image;
        _target = target;
        _cdrom = cdrom;
    }

    public IDiskImage Image => _image;
    public bool ReadOnly => _image.ReadOnly;
    public string Target => _target;
    public VbdStats Stats { get; } = new();

    protected override IEnumerable<(string, string)> FrontendKeys() =>
    [
        ("virtual-device", DevId.ToString(CultureInfo.InvariantCulture)),
        ("device-type", _cdrom ? "cdrom" : "disk"),
        ("trusted", "1"),
    ];

    protected override IEnumerable<(string, string)> BackendKeys() =>
    [
        ("params", _target),
        ("type", _image.IsBlockDevice ? "phy" : "file"),
        ("mode", _image.ReadOnly ? "r" : "w"),
        ("device-type", _cdrom ? "cdrom" : "disk"),
        ("dev", VdevName(DevId)),
        ("removable", "0"),
        ("bootable", "1"),
        ("discard-enable", _image.CanDiscard ? "1" : "0"),
        ("hotplug-status", "connected"),
    ];

    protected override IEnumerable<(string, string)> FeatureKeys()
    {
        yield return ("feature-flush-cache", "1");
        yield return ("feature-barrier", "1");
        yield return ("feature-persistent", "0");
        yield return ("feature-max-indirect-segments", MaxIndirectSegments.ToString(CultureInfo.InvariantCulture));
        if (_image.CanDiscard)
        {
            yield return ("feature-discard", "1");
            yield return ("discard-granularity", "4096");
            yield return ("discard-alignment", "0");
            yield return ("discard-secure", "0");
        }
        yield return ("sectors", _image.Sectors.ToString(CultureInfo.InvariantCulture));
        yield return ("sector-size", Blkif.SectorSize.ToString(CultureInfo.InvariantCulture));
        yield return ("physical-sector-size", Blkif.SectorSize.ToString(CultureInfo.InvariantCulture));
        yield return ("info", Info.ToString(CultureInfo.InvariantCulture));
    }

    public uint Info => (_image.ReadOnly ? Blkif.VdiskReadonly : 0) | (_cdrom ? Blkif.VdiskCdrom : 0);

    protected override IEnumerable<(string, string)> ConnectKeys() => FeatureKeys();

    /// <summary>xvdX name of a device number (Linux's xen-blkfront numbering).</summary>
    public static string VdevName(uint devid)
    {
        if ((devid >> 8) == 202) return "xvd" + Letters((int)((devid >> 4) & 0xf));
        if ((devid & (1u << 28)) != 0) return "xvd" + Letters((int)((devid >> 8) & 0xfffff));
        return devid.ToString(CultureInfo.InvariantCulture);
    }

    private static string Letters(int i)
    {
        string s = "";
        i++;
        while (i > 0) { i--; s = (char)('a' + i % 26) + s; i /= 26; }
        return s;
    }

    /// <summary>Parses "xvda", "xvdab" or a plain number into the xenstore device id.</summary>
    public static uint ParseVdev(string vdev)
    {
        if (uint.TryParse(vdev, NumberStyles.None, CultureInfo.InvariantCulture, out uint n)) return n;
        if (vdev.StartsWith("xvd", StringComparison.Ordinal) && vdev.Length > 3 && vdev[3..].All(c => c is >= 'a' and <= 'z'))
        {
            int idx = 0;
            foreach (char c in vdev[3..]) idx = idx * 26 + (c - 'a' + 1);
            idx--;
            return idx < 16 ? (202u << 8) | ((uint)idx << 4) : (1u << 28) | ((uint)idx << 8);
        }
        throw new FormatException($"bad virtual device \"{vdev}\"");
    }

    protected override void Connect()
    {
        uint ringRef = ReadFrontendUInt("ring-ref");
        uint port = ReadFrontendUInt("event-channel");
        string? proto = ReadFrontend("protocol");
        if (proto is not null && proto != "x86_64-abi")
            throw new XenbusProtocolException($"unsupported ring protocol \"{(proto.Length > 32 ? proto[..32] : proto)}\"");
        string? order = ReadFrontend("ring-page-order");
        if (order is not null && order != "0") throw new XenbusProtocolException("multi-page rings are not offered");
        var pv = PvDomainState.Of(_domain) ?? throw new XenbusProtocolException($"d{_domain.Id} is not a PV domain");

        var map = pv.Grants.MapForBackend(ringRef, readOnly: false);
        Dom0Channel ch;
        try { ch = pv.Events.BindInterdomainFromDom0(port, _ => _kick.Set()); }
        catch { map.Dispose(); throw; }
        ch.OnGuestClosed = _ => { _kick.Set(); };
        lock (_connLock)
        {
            _ring = new BackRing(map, Blkif.EntrySize);
            _evtchn = ch;
            _stop = false;
            _worker = new Thread(Work) { IsBackground = true, Name = $"blkback d{FrontendDomid} {DevId}" };
            _worker.Start();
        }
    }

    protected override void Disconnect()
    {
        Thread? w;
        lock (_connLock)
        {
            w = _worker;
            _worker = null;
            _stop = true;
            _kick.Set();
        }
        if (w is not null && w != Thread.CurrentThread) w.Join();
        lock (_connLock)
        {
            // After the guest was destroyed its grant table is gone: releasing can only fail, harmlessly.
            try { _evtchn?.Close(); } catch (ObjectDisposedException) { }
            _evtchn = null;
            try { _ring?.Mapping.Dispose(); } catch (ObjectDisposedException) { }
            _ring = null;
        }
    }

    private void Work()
    {
        try { Serve(); }
        catch (Exception e) when (e is ObjectDisposedException or GuestMemoryException or InvalidOperationException or IOException)
        {
            // The guest went away under us (or its memory did): stop this device only.
            _stop = true;
            FailAsync($"backend stopped: {e.Message}");
        }
    }

    private void Serve()
    {
        var ring = _ring!;
        var ch = _evtchn!;
        while (!_stop)
        {
            bool more;
            do
            {
                long n = ring.Unconsumed(out _);
                if (n < 0) { Overrun(); return; }
                for (long i = 0; i < n && !_stop && !_domain.IsDying; i++)
                {
                    var req = ring.ReadRequest<BlkifRequest>(ring.ReqCons);
                    ring.ReqCons++;
                    short status = Handle(in req);
                    if (status != Blkif.RspOkay) Interlocked.Increment(ref Stats.Errors);
                    ring.WriteResponse(new BlkifResponse { Id = req.Id, Operation = ResponseOperation(in req), Status = status });
                    if (ring.PushResponsesAndCheckNotify()) ch.Notify();
                }
                more = ring.FinalCheckForRequests(out bool overflow);
                if (overflow) { Overrun(); return; }
            } while (more && !_stop);
            _kick.WaitOne(1000);
        }
    }

    private void Overrun()
    {
        _stop = true;
        FailAsync($"ring overrun: req_prod {_ring?.ReqProd} vs rsp_prod {_ring?.RspProdPvt}; device disconnected");
    }

    /// <summary>Performs one request (already a private copy); returns the BLKIF_RSP_* status.</summary>
    private short Handle(in BlkifRequest req)
    {
        switch (req.Operation)
        {
            case Blkif.OpRead:
            case Blkif.OpWrite:
                return ReadWrite(req);
            case Blkif.OpWriteBarrier:
            case Blkif.OpFlushDiskcache:
                {
                    // Linux blkfront sends both with or without data (a FUA write carries segments): write the data
                    // first, then make everything stable before answering.
                    if (req.NrSegments > 0)
                    {
                        short s = ReadWrite(req, forceWrite: true);
                        if (s != Blkif.RspOkay) return s;
                    }
                    Interlocked.Increment(ref Stats.FlushRequests);
                    if (_image.ReadOnly) return Blkif.RspOkay;
                    try { _image.Flush(); return Blkif.RspOkay; }
                    catch (IOException) { return Blkif.RspError; }
                }
            case Blkif.OpDiscard:
                {
                    if (!_image.CanDiscard) return _image.ReadOnly ? Blkif.RspError : Blkif.RspEopnotsupp;
                    var span = System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequest>(in req));
                    var d = System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequestDiscard>(span);
                    if (d.NrSectors > _image.Sectors || d.SectorNumber > _image.Sectors - d.NrSectors) return Blkif.RspError;
                    Interlocked.Increment(ref Stats.DiscardRequests);
                    try { _image.Discard((long)d.SectorNumber * 512, (long)d.NrSectors * 512); return Blkif.RspOkay; }
                    catch (IOException) { return Blkif.RspError; }
                }
            case Blkif.OpIndirect:
                return Indirect(req);
            default:
                return Blkif.RspEopnotsupp;
        }
    }

    private short ReadWrite(in BlkifRequest req, bool forceWrite = false)
    {
        int nseg = req.NrSegments;
        if (nseg < 1 || nseg > Blkif.MaxSegmentsPerRequest) return Blkif.RspError;
        Span<BlkifSegment> segs = stackalloc BlkifSegment[nseg];
        for (int i = 0; i < nseg; i++) segs[i] = req.Seg[i];
        return Transfer(forceWrite || req.Operation == Blkif.OpWrite, req.SectorNumber, segs);
    }

    /// <summary>BLKIF_OP_INDIRECT: the segments live in granted pages; copy them out once, then do the I/O.</summary>
    /// <summary>An indirect request is answered with its inner operation (read or write), as Xen's blkback does and as
    /// Linux's blkfront checks ("response has wrong operation" disables the disk otherwise).</summary>
    private static byte ResponseOperation(in BlkifRequest req)
    {
        if (req.Operation != Blkif.OpIndirect) return req.Operation;
        var copy = req;
        return System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequestIndirect>(
            System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequest>(in copy))).IndirectOp;
    }

    private short Indirect(in BlkifRequest req)
    {
        var span = System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequest>(in req));
        var ind = System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequestIndirect>(span);
        if (ind.IndirectOp is not (Blkif.OpRead or Blkif.OpWrite)) return Blkif.RspError;
        int nseg = ind.NrSegments;
        if (nseg < 1 || nseg > MaxIndirectSegments) return Blkif.RspError;
        int pages = (nseg + Blkif.SegsPerIndirectFrame - 1) / Blkif.SegsPerIndirectFrame;
        var pv = PvDomainState.Of(_domain);
        if (pv is null) return Blkif.RspError;
        var segs = _indirectSegs.AsSpan(0, nseg);
        try
        {
            for (int p = 0; p < pages; p++)
            {
                using var m = pv.Grants.MapForBackend(ind.IndirectGrefs[p], readOnly: true);
                int n = Math.Min(Blkif.SegsPerIndirectFrame, nseg - p * Blkif.SegsPerIndirectFrame);
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlkifSegment>(m.Page)[..n].CopyTo(segs[(p * Blkif.SegsPerIndirectFrame)..]);
            }
        }
        catch (GrantException) { return Blkif.RspError; }
        Interlocked.Increment(ref Stats.IndirectRequests);
        return Transfer(ind.IndirectOp == Blkif.OpWrite, ind.SectorNumber, segs);
    }

    private short Transfer(bool write, ulong sector, ReadOnlySpan<BlkifSegment> segs)
    {
        int nseg = segs.Length;
        if (write && _image.ReadOnly) return Blkif.RspError;
        ulong total = 0;
        for (int i = 0; i < nseg; i++)
        {
            var s = segs[i];
            if (s.FirstSect > s.LastSect || s.LastSect >= Blkif.SectorsPerPage) return Blkif.RspError;
            total += (ulong)(s.LastSect - s.FirstSect + 1);
        }
        if (sector > _image.Sectors || total > _image.Sectors - sector) return Blkif.RspError;
        long offset = (long)sector * Blkif.SectorSize;
        int len = (int)total * Blkif.SectorSize;
        var buf = _buf.AsSpan(0, len);
        var pv = PvDomainState.Of(_domain);
        if (pv is null) return Blkif.RspError;
        try
        {
            if (write)
            {
                int at = 0;
                for (int i = 0; i < nseg; i++)
                {
                    var s = segs[i];
                    int b = s.FirstSect * 512, n = (s.LastSect - s.FirstSect + 1) * 512;
                    using var m = pv.Grants.MapForBackend(s.Gref, readOnly: true);
                    m.Page.Slice(b, n).CopyTo(buf.Slice(at, n));
                    at += n;
                }
                _image.Write(offset, buf);
                Interlocked.Increment(ref Stats.WriteRequests);
                Interlocked.Add(ref Stats.SectorsWritten, (long)total);
            }
            else
            {
                // Check every grant first so a bad one fails the request before any I/O.
                var maps = new GrantMapping[nseg];
                int got = 0;
                try
                {
                    for (; got < nseg; got++) maps[got] = pv.Grants.MapForBackend(segs[got].Gref, readOnly: false);
                    _image.Read(offset, buf);
                    int at = 0;
                    for (int i = 0; i < nseg; i++)
                    {
                        var s = segs[i];
                        int b = s.FirstSect * 512, n = (s.LastSect - s.FirstSect + 1) * 512;
                        buf.Slice(at, n).CopyTo(maps[i].Page.Slice(b, n));
                        at += n;
                    }
                }
                finally
                {
                    for (int i = 0; i < got; i++) maps[i].Dispose();
                }
                Interlocked.Increment(ref Stats.ReadRequests);
                Interlocked.Add(ref Stats.SectorsRead, (long)total);
            }
            return Blkif.RspOkay;
        }
        catch (GrantException) { return Blkif.RspError; }
        catch (IOException) { return Blkif.RspError; }
        catch (ArgumentOutOfRangeException) { return Blkif.RspError; }
    }

    public override void Dispose()
    {
        base.Dispose();
        _image.Dispose();
    }
}
