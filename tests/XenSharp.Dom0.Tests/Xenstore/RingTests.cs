using System.Buffers.Binary;
using System.Text;
using XenSharp.Accel;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

/// <summary>The guest's side of xenstore_domain_interface, written like Linux xenbus_comms.c.</summary>
internal sealed class GuestRing
{
    public readonly byte[] Page = new byte[4096];
    public int Notifications;
    private readonly List<byte> _rx = [];
    private uint _req = 1;

    public uint Get(int off) => BinaryPrimitives.ReadUInt32LittleEndian(Page.AsSpan(off));
    public void Set(int off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Page.AsSpan(off), v);

    /// <summary>Copies what fits into req[]; returns the bytes written.</summary>
    public int Produce(ReadOnlySpan<byte> data)
    {
        int done = 0;
        while (done < data.Length)
        {
            uint cons = Get(XenstoreRing.ReqConsOffset), prod = Get(XenstoreRing.ReqProdOffset);
            int free = XenstoreRing.RingSize - (int)(prod - cons);
            if (free == 0) break;
            int off = (int)(prod & 1023);
            int n = Math.Min(Math.Min(free, 1024 - off), data.Length - done);
            data.Slice(done, n).CopyTo(Page.AsSpan(off));
            Set(XenstoreRing.ReqProdOffset, prod + (uint)n);
            done += n;
        }
        return done;
    }

    public uint Send(XsMessageType type, params string[] args)
    {
        uint id = _req++;
        Assert.Equal(XsHeader.Size + XsWire.Strings(args).Length, Produce(XsWire.Build(type, id, 0, XsWire.Strings(args))));
        return id;
    }

    /// <summary>Takes everything in rsp[] and returns the complete messages received so far.</summary>
    public List<(XsHeader H, string Body)> Consume()
    {
        uint cons = Get(XenstoreRing.RspConsOffset), prod = Get(XenstoreRing.RspProdOffset);
        while (cons != prod)
        {
            _rx.Add(Page[XenstoreRing.RspOffset + (int)(cons & 1023)]);
            cons++;
        }
        Set(XenstoreRing.RspConsOffset, cons);
        var msgs = new List<(XsHeader, string)>();
        while (_rx.Count >= XsHeader.Size)
        {
            var h = XsHeader.Parse(_rx.GetRange(0, XsHeader.Size).ToArray());
            if (_rx.Count < XsHeader.Size + h.Length) break;
            msgs.Add((h, Encoding.UTF8.GetString(_rx.GetRange(XsHeader.Size, (int)h.Length).ToArray())));
            _rx.RemoveRange(0, XsHeader.Size + (int)h.Length);
        }
        return msgs;
    }
}

public sealed class RingTests
{
    private readonly XenstoreStore _s = new();

    private (GuestRing Guest, XenstoreRing Ring) Introduce(uint domid, Action<GuestRing>? prepare = null)
    {
        var g = new GuestRing();
        prepare?.Invoke(g);
        var ring = new XenstoreRing(() => g.Page, () => g.Notifications++);
        var dom0 = new XenstoreClient(_s);
        dom0.Mkdir($"/local/domain/{domid}");
        dom0.SetPerms($"/local/domain/{domid}", new XsPermission(domid, XsAccess.None));
        _s.IntroduceDomain(domid, ring, eventChannel: 1);
        return (g, ring);
    }

    [Fact]
    public void AWatchFiringAfterTheDomainsMemoryIsGoneDoesNotFailTheWrite()
    {
        // A destroyed domain's memory goes before the toolstack removes its nodes; a watch it still holds must not
        // turn dom0's rm into EIO (its nodes would leak).
        var g = new GuestRing();
        bool gone = false;
        var ring = new XenstoreRing(() => gone ? throw new ObjectDisposedException("GuestMemory") : g.Page, () => { });
        var dom0 = new XenstoreClient(_s);
        dom0.Mkdir("/local/domain/5");
        dom0.SetPerms("/local/domain/5", new XsPermission(5, XsAccess.None));
        _s.IntroduceDomain(5, ring, eventChannel: 1);
        g.Send(XsMessageType.Watch, "/local/domain/5", "tok");
        ring.GuestNotified();
        Assert.NotEmpty(g.Consume());
        gone = true;
        dom0.Rm("/local/domain/5");
        Assert.Null(dom0.TryRead("/local/domain/5"));
    }

    [Fact]
    public void RequestAndReplyOverTheRing()
    {
        var (g, ring) = Introduce(1);
        Assert.Equal(XsWire.SupportedFeatures, g.Get(XenstoreRing.ServerFeaturesOffset));
        uint id = g.Send(XsMessageType.Write, "name", "");
        ring.GuestNotified();
        var replies = g.Consume();
        Assert.Single(replies);
        Assert.Equal((XsMessageType.Write, id), (replies[0].H.Type, replies[0].H.ReqId));
        Assert.True(g.Notifications > 0);
        Assert.Equal(g.Get(XenstoreRing.ReqProdOffset), g.Get(XenstoreRing.ReqConsOffset));
        g.Send(XsMessageType.Read, "name");
        ring.GuestNotified();
        Assert.Equal("\0", g.Consume()[0].Body); // value was the empty string sent after the path's NUL
        Assert.True(new XenstoreClient(_s).TryRead("/local/domain/1/name") is not null);
    }

    [Fact]
    public void IndexesWrapAroundTheRingAndTheU32Space()
    {
        var (g, ring) = Introduce(1, g =>
        {
            foreach (var (c, p) in new[] { (XenstoreRing.ReqConsOffset, XenstoreRing.ReqProdOffset), (XenstoreRing.RspConsOffset, XenstoreRing.RspProdOffset) })
            {
                g.Set(c, 0xFFFFFF00);
                g.Set(p, 0xFFFFFF00);
            }
        });
        for (int i = 0; i < 300; i++)
        {
            g.Send(XsMessageType.Write, $"k{i % 7}", $"value-{i}");
            ring.GuestNotified();
            var r = g.Consume();
            Assert.Single(r);
            Assert.Equal(XsMessageType.Write, r[0].H.Type);
        }
        Assert.True(g.Get(XenstoreRing.ReqProdOffset) < 0x10000);
        // The guest helper NUL-terminates every argument, so the stored value carries that NUL.
        Assert.Equal("value-299\0", new XenstoreClient(_s).Read("/local/domain/1/k5"));
        Assert.False(ring.IsBroken);
    }

    [Fact]
    public void ProducerJumpingBy2To31BreaksTheRing()
    {
        var (g, ring) = Introduce(1);
        g.Set(XenstoreRing.ReqProdOffset, g.Get(XenstoreRing.ReqConsOffset) + 0x80000000);
        ring.GuestNotified();
        Assert.True(ring.IsBroken);
        Assert.Equal(XsWire.ErrorRingIdx, g.Get(XenstoreRing.ErrorOffset));
        Assert.Empty(g.Consume());
        // Stays broken: a sane request later is ignored, nothing is read.
        g.Set(XenstoreRing.ReqProdOffset, g.Get(XenstoreRing.ReqConsOffset));
        g.Send(XsMessageType.Read, "x");
        ring.GuestNotified();
        Assert.Empty(g.Consume());
    }

    [Fact]
    public void ConsumerBeyondProducerBreaksTheRing()
    {
        var (g, ring) = Introduce(1);
        g.Set(XenstoreRing.ReqConsOffset, g.Get(XenstoreRing.ReqProdOffset) + 10);
        ring.GuestNotified();
        Assert.True(ring.IsBroken);
    }

    [Fact]
    public void BogusResponseIndexesBreakTheRing()
    {
        var (g, ring) = Introduce(1);
        g.Set(XenstoreRing.RspConsOffset, 5000);
        g.Send(XsMessageType.Read, "x");
        ring.GuestNotified();
        Assert.True(ring.IsBroken);
        Assert.Equal(0u, g.Get(XenstoreRing.RspProdOffset));
    }

    [Fact]
    public void OversizedPayloadOnTheRingIsAProtocolError()
    {
        var (g, ring) = Introduce(1);
        var hdr = new byte[XsHeader.Size];
        new XsHeader(XsMessageType.Write, 1, 0, 5000).WriteTo(hdr);
        g.Produce(hdr);
        ring.GuestNotified();
        Assert.True(ring.IsBroken);
        Assert.Equal(XsWire.ErrorProto, g.Get(XenstoreRing.ErrorOffset));
    }

    [Fact]
    public void FullResponseRingQueuesWatchEventsUntilTheGuestConsumes()
    {
        var (g, ring) = Introduce(1);
        g.Send(XsMessageType.Watch, "data", "tok");
        ring.GuestNotified();
        var all = g.Consume();
        Assert.Equal(2, all.Count);
        using var dom0 = new XenstoreClient(_s);
        for (int i = 0; i < 100; i++) dom0.Write($"/local/domain/1/data/item{i:D3}", "x");
        // 100 events of ~45 bytes cannot all be in a 1024-byte ring.
        Assert.Equal(1024u, g.Get(XenstoreRing.RspProdOffset) - g.Get(XenstoreRing.RspConsOffset));
        Assert.True(_s.FindDomain(1)!.Connection!.QueuedOutputCount > 0);
        var events = new List<string>();
        for (int round = 0; round < 50 && events.Count < 100; round++)
        {
            events.AddRange(g.Consume().Where(m => m.H.Type == XsMessageType.WatchEvent).Select(m => m.Body));
            ring.GuestNotified(); // Linux kicks the event channel after freeing space in a full ring
        }
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"data/item{i:D3}\0tok\0"), events);
        Assert.False(ring.IsBroken);
    }

    [Fact]
    public void GuestNotReadingRepliesStopsBeingServed()
    {
        var (g, ring) = Introduce(1);
        // Each reply to a READ of a 900-byte value fills most of the ring: the rest queue up.
        new XenstoreClient(_s).Write("/local/domain/1/v", new string('v', 900));
        for (int i = 0; i < 40; i++)
        {
            g.Send(XsMessageType.Read, "v");
            ring.GuestNotified();
        }
        var conn = _s.FindDomain(1)!.Connection!;
        Assert.InRange(conn.QueuedOutputCount, 1, 21);
        int got = 0;
        for (int round = 0; round < 100 && got < 40; round++)
        {
            got += g.Consume().Count;
            ring.GuestNotified();
        }
        Assert.Equal(40, got);
    }

    [Fact]
    public void WorksOnAGuestMemoryFrame()
    {
        using var mem = new GuestMemory(16 * 4096);
        int kicks = 0;
        var ring = new XenstoreRing(mem, 3, () => kicks++);
        _s.IntroduceDomain(2, ring);
        Assert.Equal(XsWire.SupportedFeatures, mem.ReadUInt32(3 * 4096 + XenstoreRing.ServerFeaturesOffset));
        var req = XsWire.Build(XsMessageType.GetDomainPath, 9, 0, XsWire.Strings("2"));
        mem.Write(3 * 4096, req);
        mem.WriteUInt32(3 * 4096 + XenstoreRing.ReqProdOffset, (uint)req.Length);
        ring.GuestNotified();
        uint prod = mem.ReadUInt32(3 * 4096 + XenstoreRing.RspProdOffset);
        var rsp = mem.Span(3 * 4096 + 1024, (int)prod).ToArray();
        Assert.Equal(9u, XsHeader.Parse(rsp).ReqId);
        Assert.Equal("/local/domain/2\0", Encoding.ASCII.GetString(rsp, XsHeader.Size, rsp.Length - XsHeader.Size));
        Assert.True(kicks > 0);
    }

    [Fact]
    public void ReleaseStopsServingAndFiresReleaseDomain()
    {
        var (g, ring) = Introduce(1);
        using var dom0 = new XenstoreClient(_s);
        var seen = new System.Collections.Concurrent.BlockingCollection<string>();
        using var watch = dom0.Watch("@releaseDomain", seen.Add);
        Assert.True(seen.TryTake(out _, 5000));
        _s.ReleaseDomain(1);
        Assert.True(seen.TryTake(out var ev, 5000));
        Assert.Equal("@releaseDomain", ev);
        g.Send(XsMessageType.Read, "x");
        ring.GuestNotified();
        Assert.Empty(g.Consume());
        Assert.False(_s.IsDomainIntroduced(1));
    }

    [Fact]
    public async Task WireIntroduceUsesTheRingResolver()
    {
        var g = new GuestRing();
        (uint, ulong, uint)? asked = null;
        _s.RingResolver = (domid, gfn, port) =>
        {
            asked = (domid, gfn, port);
            return new XenstoreRing(() => g.Page, () => g.Notifications++);
        };
        // The guest queued a request before xenstored attached, as a booting kernel may.
        g.Send(XsMessageType.GetDomainPath, "6");
        Assert.Equal("OK\0", Wire.Dom0(_s).Req(XsMessageType.Introduce, 0, "6", "4096", "3"));
        Assert.Equal((6u, 4096ul, 3u), asked);
        List<(XsHeader H, string Body)> got = [];
        for (int i = 0; i < 100 && got.Count == 0; i++)
        {
            await Task.Delay(20);
            got = g.Consume();
        }
        Assert.Equal("/local/domain/6\0", Assert.Single(got).Body);
    }

    [Fact]
    public async Task BrokenRingLosesItsWatches()
    {
        var (g, ring) = Introduce(1);
        g.Send(XsMessageType.Watch, "data", "tok");
        ring.GuestNotified();
        var conn = _s.FindDomain(1)!.Connection!;
        Assert.Single(conn.Watches);
        g.Set(XenstoreRing.ReqProdOffset, g.Get(XenstoreRing.ReqConsOffset) + 2000);
        ring.GuestNotified();
        for (int i = 0; i < 100 && !conn.IsClosed; i++) await Task.Delay(20);
        Assert.True(conn.IsClosed);
        Assert.Empty(conn.Watches);
    }
}
