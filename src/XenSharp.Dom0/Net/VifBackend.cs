using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using XenSharp.Dom0.Xenbus;
using XenSharp.Dom0.Xenstore;
using XenSharp.Accel;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Pv;

namespace XenSharp.Dom0.Net;

/// <summary>Per-vif counters, from the guest's point of view (Tx: frames the guest sent). Read with <see cref="Snapshot"/>.</summary>
public sealed class VifStats
{
    public long TxPackets, TxBytes, TxErrors, RxPackets, RxBytes, RxDropped;

    public (long TxPackets, long TxBytes, long TxErrors, long RxPackets, long RxBytes, long RxDropped) Snapshot() =>
        (Interlocked.Read(ref TxPackets), Interlocked.Read(ref TxBytes), Interlocked.Read(ref TxErrors),
         Interlocked.Read(ref RxPackets), Interlocked.Read(ref RxBytes), Interlocked.Read(ref RxDropped));
}

/// <summary>
/// netback for one vif, copy path only: the guest's tx ring feeds a <see cref="VirtualSwitch"/> port; frames the
/// switch delivers are copied into buffers the guest posted on the rx ring. One event channel (no split channels),
/// one queue, no scatter-gather, no GSO, no checksum offload (the backend says feature-no-csum-offload, so the
/// guest fills in checksums). Malformed tx packets get NETIF_RSP_ERROR and the device carries on; a ring
/// index overrun closes the device.
/// </summary>
public sealed class VifBackend : XenbusBackend
{
    /// <summary>Ethernet frame limit without scatter-gather: MTU 1500 + header + one VLAN tag.</summary>
    public const int MaxFrame = 1518;
    public const int RxQueueLimit = 512;

    private readonly Domain _domain;
    private readonly object _connLock = new();
    private readonly AutoResetEvent _kick = new(false);
    private readonly ConcurrentQueue<byte[]> _rxq = new();
    private int _rxqCount;
    private readonly Port _port;
    private BackRing? _tx, _rx;
    private Dom0Channel? _evtchn;
    private Thread? _worker;
    private volatile bool _stop;
    private readonly TokenBucket? _bucket;
    private readonly byte[] _pkt = new byte[Netif.MaxTxSize];

    public VifBackend(XenstoreClient xs, Domain domain, uint devid, byte[] mac, VirtualSwitch sw, VifRate? rate = null, string? bridge = null)
        : base(xs, domain.Id, "vif", devid)
    {
        if (mac.Length != 6) throw new ArgumentException("a MAC has 6 bytes", nameof(mac));
        _domain = domain;
        Mac = mac;
        Bridge = bridge;
        Rate = rate;
        _bucket = rate is null ? null : new TokenBucket(rate);
        _port = new Port(this);
        Switch = sw;
    }

    public byte[] Mac { get; }
    public string MacString => FormatMac(Mac);
    public string? Bridge { get; }
    public VifRate? Rate { get; }
    public VirtualSwitch Switch { get; }
    public SwitchPort SwitchPort => _port;
    public VifStats Stats { get; } = new();
    /// <summary>The interface name Xen would give the vif (vifD.N).</summary>
    public string Name => $"vif{FrontendDomid}.{DevId}";

    public static string FormatMac(ReadOnlySpan<byte> m) => string.Join(":", m.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    public static byte[] ParseMac(string s)
    {
        var parts = s.Split(':');
        if (parts.Length != 6) throw new FormatException($"bad MAC \"{s}\"");
        var b = parts.Select(p => byte.Parse(p, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
        if ((b[0] & 1) != 0) throw new FormatException($"MAC \"{s}\" is multicast");
        return b;
    }

    /// <summary>A random MAC under Xen's OUI 00:16:3e.</summary>
    public static byte[] GenerateMac()
    {
        var r = new byte[3];
        System.Security.Cryptography.RandomNumberGenerator.Fill(r);
        return [0x00, 0x16, 0x3e, (byte)(r[0] & 0x7f), r[1], r[2]];
    }

    protected override IEnumerable<(string, string)> FrontendKeys() =>
    [
        ("handle", DevId.ToString(CultureInfo.InvariantCulture)),
        ("mac", MacString),
        ("trusted", "1"),
        ("mtu", "1500"),
    ];

    protected override IEnumerable<(string, string)> BackendKeys()
    {
        yield return ("handle", DevId.ToString(CultureInfo.InvariantCulture));
        yield return ("mac", MacString);
        yield return ("type", "vif");
        yield return ("hotplug-status", "connected");
        if (Bridge is not null) yield return ("bridge", Bridge);
        if (Rate is not null) yield return ("rate", Rate.ToString());
    }

    protected override IEnumerable<(string, string)> FeatureKeys() =>
    [
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-sg", "0"),
        ("feature-gso-tcpv4", "0"),
        ("feature-gso-tcpv6", "0"),
        ("feature-no-csum-offload", "1"),
        ("feature-ipv6-csum-offload", "0"),
        ("feature-split-event-channels", "0"),
        ("feature-multicast-control", "0"),
    ];

    protected override void Connect()
    {
        string? q = ReadFrontend("multi-queue-num-queues");
        if (q is not null && q != "1") throw new XenbusProtocolException("multi-queue not offered");
        uint txRef = ReadFrontendUInt("tx-ring-ref");
        uint rxRef = ReadFrontendUInt("rx-ring-ref");
        uint port = ReadFrontendUInt("event-channel");
        if (ReadFrontend("request-rx-copy") != "1") throw new XenbusProtocolException("frontend does not request rx-copy");
        var pv = PvDomainState.Of(_domain) ?? throw new XenbusProtocolException($"d{_domain.Id} is not a PV domain");
        GrantMapping? tx = null, rx = null;
        try
        {
            tx = pv.Grants.MapForBackend(txRef, readOnly: false);
            rx = pv.Grants.MapForBackend(rxRef, readOnly: false);
            if (tx.Pfn == rx.Pfn) throw new XenbusProtocolException("tx and rx rings share a page");
            var ch = pv.Events.BindInterdomainFromDom0(port, _ => _kick.Set());
            ch.OnGuestClosed = _ => _kick.Set();
            lock (_connLock)
            {
                _tx = new BackRing(tx, Netif.TxEntrySize);
                _rx = new BackRing(rx, Netif.RxEntrySize);
                _evtchn = ch;
                _stop = false;
                Switch.Attach(_port);
                _worker = new Thread(Work) { IsBackground = true, Name = $"netback {Name}" };
                _worker.Start();
            }
        }
        catch
        {
            tx?.Dispose();
            rx?.Dispose();
            throw;
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
            Switch.Detach(_port);
            // After the guest was destroyed its grant table is gone: releasing can only fail, harmlessly.
            try { _evtchn?.Close(); } catch (ObjectDisposedException) { }
            _evtchn = null;
            try { _tx?.Mapping.Dispose(); } catch (ObjectDisposedException) { }
            try { _rx?.Mapping.Dispose(); } catch (ObjectDisposedException) { }
            _tx = _rx = null;
            while (_rxq.TryDequeue(out _)) Interlocked.Decrement(ref _rxqCount);
        }
    }

    private sealed class Port(VifBackend vif) : SwitchPort(vif.Name, vif.FrontendDomid)
    {
        public override void Deliver(byte[] frame)
        {
            if (Interlocked.Increment(ref vif._rxqCount) > RxQueueLimit)
            {
                Interlocked.Decrement(ref vif._rxqCount);
                Interlocked.Increment(ref vif.Stats.RxDropped);
                return;
            }
            vif._rxq.Enqueue(frame);
            vif._kick.Set();
        }
    }

    private void Work()
    {
        try { Serve(); }
        catch (Exception e) when (e is ObjectDisposedException or GuestMemoryException or InvalidOperationException)
        {
            _stop = true;
            FailAsync($"backend stopped: {e.Message}");
        }
    }

    private void Serve()
    {
        var tx = _tx!;
        var rx = _rx!;
        var ch = _evtchn!;
        var pv = PvDomainState.Of(_domain)!;
        while (!_stop && !_domain.IsDying)
        {
            int wait = 1000;
            // ---- transmit (guest → switch)
            while (!_stop)
            {
                long n = tx.Unconsumed(out _);
                if (n < 0) { Overrun("tx"); return; }
                if (n == 0)
                {
                    if (!tx.FinalCheckForRequests(out bool of)) break;
                    if (of) { Overrun("tx"); return; }
                    continue;
                }
                var r = TransmitOne(tx, (uint)n, pv, out int waitMs);
                if (r == TxResult.Fatal) { Overrun("tx slots"); return; }
                if (r == TxResult.Wait) { wait = Math.Min(wait, waitMs); break; }
                if (tx.PushResponsesAndCheckNotify()) ch.Notify();
            }
            // ---- receive (switch → guest)
            bool rxNotify = false;
            while (!_stop && _rxq.TryPeek(out var frame))
            {
                long n = rx.Unconsumed(out _);
                if (n < 0) { Overrun("rx"); return; }
                if (n == 0)
                {
                    if (!rx.FinalCheckForRequests(out bool of)) break; // wait for buffers
                    if (of) { Overrun("rx"); return; }
                    continue;
                }
                _rxq.TryDequeue(out _);
                Interlocked.Decrement(ref _rxqCount);
                var req = rx.ReadRequest<NetifRxRequest>(rx.ReqCons);
                rx.ReqCons++;
                short status;
                if (frame.Length > 4096) { status = Netif.RspError; Interlocked.Increment(ref Stats.RxDropped); }
                else
                {
                    try
                    {
                        using var m = pv.Grants.MapForBackend(req.Gref, readOnly: false);
                        frame.CopyTo(m.Page);
                        status = (short)frame.Length;
                        Interlocked.Increment(ref Stats.RxPackets);
                        Interlocked.Add(ref Stats.RxBytes, frame.Length);
                    }
                    catch (GrantException)
                    {
                        status = Netif.RspError;
                        Interlocked.Increment(ref Stats.RxDropped);
                    }
                }
                rx.WriteResponse(new NetifRxResponse { Id = req.Id, Offset = 0, Flags = 0, Status = status });
                rxNotify |= rx.PushResponsesAndCheckNotify();
            }
            if (rxNotify) ch.Notify();
            if (!ch.IsOpen) wait = 1000;
            _kick.WaitOne(wait);
        }
    }

    private enum TxResult { Done, Wait, Fatal }

    /// <summary>Consumes one packet (all its slots) from the tx ring and answers every slot.</summary>
    private TxResult TransmitOne(BackRing tx, uint avail, PvDomainState pv, out int waitMs)
    {
        waitMs = 0;
        // Gather the slot chain first (private copies), without consuming until the whole packet is there.
        var slots = new List<NetifTxRequest>();
        int extras = 0;
        bool bad = false;
        uint idx = tx.ReqCons;
        uint used = 0;
        var first = tx.ReadRequest<NetifTxRequest>(idx);
        slots.Add(first);
        used++;
        if ((first.Flags & Netif.TxfExtraInfo) != 0)
        {
            while (true)
            {
                if (used >= avail) return Incomplete(tx, avail, out waitMs);
                var ex = tx.ReadRequest<NetifExtraInfo>(idx + used);
                used++;
                extras++;
                if (ex.Type == Netif.ExtraTypeGso || ex.Type > Netif.ExtraTypeHash) bad = true; // GSO is not offered; mcast/hash hints are ignored
                if ((ex.Flags & Netif.ExtraFlagMore) == 0) break;
                if (extras > 4) { bad = true; }
            }
        }
        var last = first;
        while ((last.Flags & Netif.TxfMoreData) != 0)
        {
            if (used >= avail) return Incomplete(tx, avail, out waitMs);
            last = tx.ReadRequest<NetifTxRequest>(idx + used);
            used++;
            slots.Add(last);
            if (slots.Count > tx.Size) return TxResult.Fatal;
        }
        if (slots.Count > Netif.NrSlotsMin) bad = true;

        int total = first.Size;
        if (_bucket is not null && !bad && !_bucket.TryTake(total, out waitMs)) return TxResult.Wait;

        tx.ReqCons += used;
        int rest = 0;
        for (int i = 1; i < slots.Count; i++) rest += slots[i].Size;
        if (total < 14 || total > MaxFrame || rest > total) bad = true;
        if (!bad)
        {
            int at = 0;
            for (int i = 0; i < slots.Count && !bad; i++)
            {
                var s = slots[i];
                int len = i == 0 ? total - rest : s.Size;
                if (s.Offset + len > 4096) { bad = true; break; }
                try
                {
                    using var m = pv.Grants.MapForBackend(s.Gref, readOnly: true);
                    m.Page.Slice(s.Offset, len).CopyTo(_pkt.AsSpan(at));
                    at += len;
                }
                catch (GrantException) { bad = true; }
            }
        }
        short status = bad ? Netif.RspError : Netif.RspOkay;
        // One response per slot: the data slots get their ids, extra slots get RSP_NULL.
        tx.WriteResponse(new NetifTxResponse { Id = first.Id, Status = status });
        for (int i = 0; i < extras; i++) tx.WriteResponse(new NetifTxResponse { Id = 0, Status = Netif.RspNull });
        for (int i = 1; i < slots.Count; i++) tx.WriteResponse(new NetifTxResponse { Id = slots[i].Id, Status = status });
        if (bad)
        {
            Interlocked.Increment(ref Stats.TxErrors);
            return TxResult.Done;
        }
        var frame = _pkt.AsSpan(0, total).ToArray();
        Interlocked.Increment(ref Stats.TxPackets);
        Interlocked.Add(ref Stats.TxBytes, total);
        Switch.Forward(_port, frame);
        return TxResult.Done;
    }

    /// <summary>The packet's slots are not all published yet: wait for the frontend (or give up if the ring is full of one chain).</summary>
    private static TxResult Incomplete(BackRing tx, uint avail, out int waitMs)
    {
        waitMs = 1000;
        if (avail >= tx.Size) return TxResult.Fatal;
        // Ask for an event when the rest of the chain is published.
        tx.ReqEvent = tx.ReqCons + avail + 1;
        Interlocked.MemoryBarrier();
        if (tx.ReqProd - tx.ReqCons > avail) waitMs = 0; // already there: go again
        return TxResult.Wait;
    }

    private void Overrun(string ring)
    {
        _stop = true;
        FailAsync($"{ring} ring overrun or malformed slot chain; device disconnected");
    }
}
