using XenSharp.Dom0.Net;
using XenSharp.Dom0.Tests.Xenbus;

namespace XenSharp.Dom0.Tests.Net;

/// <summary>A simulated xen-netfront: tx and rx rings, one event channel, the xenstore handshake.</summary>
internal sealed class SimNetfront
{
    public SimGuest G { get; }
    public VifBackend Be { get; }
    public FrontRing Tx { get; }
    public FrontRing Rx { get; }
    public uint Port { get; }
    private ushort _nextTxId = 1, _nextRxId = 1;
    private readonly Dictionary<ushort, ulong> _rxPages = [];

    public SimNetfront(SimGuest g, VifBackend be, bool connect = true)
    {
        G = g;
        Be = be;
        Tx = new FrontRing(g, Netif.TxEntrySize);
        Rx = new FrontRing(g, Netif.RxEntrySize);
        Port = g.AllocPortForDom0();
        if (connect) Connect();
    }

    public void Connect()
    {
        var xs = G.Xs; // the guest's own connection: only its frontend dir is writable
        BackendHarness.WaitUntil(() => xs.TryRead(Be.BackendPath + "/state") == "2", what: "InitWait");
        xs.Write(Be.FrontendPath + "/tx-ring-ref", Tx.Gref.ToString());
        xs.Write(Be.FrontendPath + "/rx-ring-ref", Rx.Gref.ToString());
        xs.Write(Be.FrontendPath + "/event-channel", Port.ToString());
        xs.Write(Be.FrontendPath + "/request-rx-copy", "1");
        xs.Write(Be.FrontendPath + "/feature-rx-notify", "1");
        xs.Write(Be.FrontendPath + "/state", "4");
        BackendHarness.WaitUntil(() => xs.TryRead(Be.BackendPath + "/state") == "4", what: "Connected");
    }

    public void PostRx(int n)
    {
        for (int i = 0; i < n; i++)
        {
            ushort id = _nextRxId++;
            ulong pfn = G.AllocPage();
            _rxPages[id] = pfn;
            Rx.Put(new NetifRxRequest { Id = id, Gref = G.Grant(pfn) });
        }
        if (Rx.Push()) G.Send(Port);
    }

    /// <summary>Queues a frame as one slot or a more_data chain of the given chunk sizes; returns the slot requests.</summary>
    public List<NetifTxRequest> QueueFrame(byte[] frame, int[]? chunks = null, NetifExtraInfo? extra = null, ushort? firstSizeOverride = null)
    {
        chunks ??= [frame.Length];
        var reqs = new List<NetifTxRequest>();
        int at = 0;
        for (int i = 0; i < chunks.Length; i++)
        {
            ulong pfn = G.AllocPage();
            ushort off = (ushort)(i * 100 % 2048);
            frame.AsSpan(at, chunks[i]).CopyTo(G.Page(pfn)[off..]);
            at += chunks[i];
            var r = new NetifTxRequest
            {
                Gref = G.Grant(pfn, ro: true),
                Offset = off,
                Id = _nextTxId++,
                Size = (ushort)(i == 0 ? firstSizeOverride ?? frame.Length : chunks[i]),
                Flags = (ushort)((i < chunks.Length - 1 ? Netif.TxfMoreData : 0) | (i == 0 && extra is not null ? Netif.TxfExtraInfo : 0)),
            };
            reqs.Add(r);
            Tx.Put(r);
            if (i == 0 && extra is not null) Tx.Put(extra.Value);
        }
        return reqs;
    }

    public void PushTx()
    {
        if (Tx.Push()) G.Send(Port);
    }

    /// <summary>Sends a frame and returns the responses for all its slots.</summary>
    public List<NetifTxResponse> Send(byte[] frame, int[]? chunks = null, NetifExtraInfo? extra = null, ushort? firstSizeOverride = null)
    {
        var reqs = QueueFrame(frame, chunks, extra, firstSizeOverride);
        PushTx();
        int slots = reqs.Count + (extra is null ? 0 : 1);
        var rsps = new List<NetifTxResponse>();
        for (int i = 0; i < slots; i++) rsps.Add(Tx.WaitResponse<NetifTxResponse>());
        return rsps;
    }

    /// <summary>Waits for one received frame; null on timeout.</summary>
    public byte[]? Receive(int ms = 2000)
    {
        try { BackendHarness.WaitUntil(() => Rx.HasResponse, ms); }
        catch (TimeoutException) { return null; }
        var r = Rx.WaitResponse<NetifRxResponse>();
        if (r.Status < 0) return [];
        return G.Page(_rxPages[r.Id]).Slice(r.Offset, r.Status).ToArray();
    }

    public static byte[] Frame(byte[] dst, byte[] src, int len, byte fill = 0x42)
    {
        var f = new byte[len];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        f[12] = 0x08; f[13] = 0x00;
        for (int i = 14; i < len; i++) f[i] = (byte)(fill + i);
        return f;
    }

    public static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
}
