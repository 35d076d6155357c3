using System.Diagnostics;
using XenSharp.Dom0.Net;
using XenSharp.Dom0.Tests.Xenbus;

namespace XenSharp.Dom0.Tests.Net;

public sealed class NetbackTests : IDisposable
{
    private readonly BackendHarness _h = new();
    private readonly VirtualSwitch _sw = new("test");
    private readonly List<IDisposable> _devs = [];

    public void Dispose()
    {
        foreach (var d in _devs) d.Dispose();
        _h.Dispose();
    }

    private static readonly byte[] MacA = [0x00, 0x16, 0x3e, 0, 0, 0xa], MacB = [0x00, 0x16, 0x3e, 0, 0, 0xb], MacC = [0x00, 0x16, 0x3e, 0, 0, 0xc];

    private SimNetfront Nic(byte[] mac, string? rate = null, VirtualSwitch? sw = null, int rxBuffers = 16)
    {
        var g = _h.NewGuest();
        var be = new VifBackend(_h.Xs, g.Domain, 0, mac, sw ?? _sw, rate is null ? null : VifRate.Parse(rate), "xenbr0");
        _devs.Add(be);
        be.Start();
        var fe = new SimNetfront(g, be);
        if (rxBuffers > 0) fe.PostRx(rxBuffers);
        return fe;
    }

    [Fact]
    public void HandshakeKeys()
    {
        var a = Nic(MacA);
        var xs = _h.Xs;
        Assert.Equal("00:16:3e:00:00:0a", xs.Read(a.Be.FrontendPath + "/mac"));
        Assert.Equal("00:16:3e:00:00:0a", xs.Read(a.Be.BackendPath + "/mac"));
        Assert.Equal("0", xs.Read(a.Be.FrontendPath + "/handle"));
        Assert.Equal("1", xs.Read(a.Be.BackendPath + "/feature-rx-copy"));
        Assert.Equal("1", xs.Read(a.Be.BackendPath + "/feature-no-csum-offload"));
        Assert.Equal("0", xs.Read(a.Be.BackendPath + "/feature-sg"));
        Assert.Equal("xenbr0", xs.Read(a.Be.BackendPath + "/bridge"));
        Assert.Equal($"/local/domain/0/backend/vif/{a.G.Id}/0", a.Be.BackendPath);
        Assert.Equal("4", xs.Read(a.Be.BackendPath + "/state"));
    }

    [Fact]
    public void TwoGuestsExchangeFramesThroughTheSwitch()
    {
        var a = Nic(MacA);
        var b = Nic(MacB);
        // Broadcast from A reaches B (and not A).
        var bc = SimNetfront.Frame(SimNetfront.Broadcast, MacA, 60);
        Assert.All(a.Send(bc), r => Assert.Equal(Netif.RspOkay, r.Status));
        Assert.Equal(bc, b.Receive());
        Assert.Null(a.Receive(100));
        Assert.Same(a.Be.SwitchPort, _sw.Lookup(MacA));
        // Unicast back to the learned MAC.
        var uc = SimNetfront.Frame(MacA, MacB, 1514, 7);
        Assert.All(b.Send(uc), r => Assert.Equal(Netif.RspOkay, r.Status));
        Assert.Equal(uc, a.Receive());
        Assert.Same(b.Be.SwitchPort, _sw.Lookup(MacB));
        // A to B, now known: only B.
        var c = Nic(MacC);
        var ab = SimNetfront.Frame(MacB, MacA, 100, 9);
        a.Send(ab);
        Assert.Equal(ab, b.Receive());
        Assert.Null(c.Receive(100));

        var sa = a.Be.Stats.Snapshot();
        Assert.Equal(2, sa.TxPackets);
        Assert.Equal(160, sa.TxBytes);
        Assert.Equal(1, sa.RxPackets);
        Assert.Equal(1514, sa.RxBytes);
        Assert.Equal(2, b.Be.Stats.Snapshot().RxPackets);
        BackendHarness.WaitUntil(() => a.G.Pending(a.Port), 2000, "the event");
    }

    [Fact]
    public void TxChainWithMoreDataArrivesWhole()
    {
        var a = Nic(MacA);
        var b = Nic(MacB);
        var f = SimNetfront.Frame(MacB, MacA, 1200, 3);
        var reqs = a.QueueFrame(f, [500, 400, 300]);
        a.PushTx();
        var rsps = Enumerable.Range(0, 3).Select(_ => a.Tx.WaitResponse<NetifTxResponse>()).ToList();
        Assert.Equal(reqs.Select(r => r.Id), rsps.Select(r => r.Id));
        Assert.All(rsps, r => Assert.Equal(Netif.RspOkay, r.Status));
        Assert.Equal(f, b.Receive());
        Assert.Equal(0, a.G.Pv.Grants.InUseCount - 2); // only the two rings
    }

    [Fact]
    public void ChainPublishedInTwoStepsWaitsForTheRest()
    {
        var a = Nic(MacA);
        var b = Nic(MacB);
        var f = SimNetfront.Frame(MacB, MacA, 900, 5);
        a.QueueFrame(f, [600, 300]);
        // Publish only the first slot.
        a.Tx.ReqProd = a.Tx.ReqProdPvt - 1;
        a.G.Send(a.Port);
        Thread.Sleep(100);
        Assert.False(a.Tx.HasResponse);
        Assert.True(a.Tx.Push()); // the backend asked for an event for the rest
        a.G.Send(a.Port);
        Assert.Equal(Netif.RspOkay, a.Tx.WaitResponse<NetifTxResponse>().Status);
        Assert.Equal(f, b.Receive());
    }

    [Fact]
    public void MalformedAndOversizedPacketsGetErrorsAndTheVifCarriesOn()
    {
        var a = Nic(MacA);
        var b = Nic(MacB);
        // Oversized (no SG, MTU 1500).
        var big = SimNetfront.Frame(MacB, MacA, 2000);
        Assert.All(a.Send(big, [1000, 1000]), r => Assert.Equal(Netif.RspError, r.Status));
        // Runt.
        Assert.All(a.Send(SimNetfront.Frame(MacB, MacA, 14)[..10]), r => Assert.Equal(Netif.RspError, r.Status));
        // Chained sizes larger than the total.
        Assert.All(a.Send(SimNetfront.Frame(MacB, MacA, 200), [100, 100], firstSizeOverride: 80), r => Assert.Equal(Netif.RspError, r.Status));
        // Offset + size beyond the page.
        var f = SimNetfront.Frame(MacB, MacA, 100);
        var reqs = a.QueueFrame(f);
        a.Tx.Entry(a.Tx.ReqProdPvt - 1)[4] = 0xf0; a.Tx.Entry(a.Tx.ReqProdPvt - 1)[5] = 0x0f; // offset 0xff0
        a.PushTx();
        Assert.Equal(Netif.RspError, a.Tx.WaitResponse<NetifTxResponse>().Status);
        // Bad grant.
        a.QueueFrame(f);
        a.Tx.Entry(a.Tx.ReqProdPvt - 1)[0] = 0xff; a.Tx.Entry(a.Tx.ReqProdPvt - 1)[1] = 0xff;
        a.PushTx();
        Assert.Equal(Netif.RspError, a.Tx.WaitResponse<NetifTxResponse>().Status);
        // GSO extra info: refused; its slot answered with RSP_NULL.
        var rs = a.Send(f, extra: new NetifExtraInfo { Type = Netif.ExtraTypeGso, GsoSize = 1448, GsoType = 1 });
        Assert.Equal([Netif.RspError, Netif.RspNull], rs.Select(r => r.Status));
        // A multicast-add hint is skipped; the packet goes through.
        var mf = SimNetfront.Frame(MacB, MacA, 80, 1);
        rs = a.Send(mf, extra: new NetifExtraInfo { Type = Netif.ExtraTypeMcastAdd });
        Assert.Equal([Netif.RspOkay, Netif.RspNull], rs.Select(r => r.Status));
        Assert.Equal(mf, b.Receive());
        Assert.Null(b.Receive(100)); // none of the bad ones arrived
        Assert.Equal(6, a.Be.Stats.Snapshot().TxErrors);
        Assert.Equal(1, a.Be.Stats.Snapshot().TxPackets);
        Assert.True(a.Be.IsConnected);
        _ = reqs;
    }

    [Fact]
    public void ReceivedFramesWaitForBuffers()
    {
        var a = Nic(MacA);
        var b = Nic(MacB, rxBuffers: 0);
        var f1 = SimNetfront.Frame(SimNetfront.Broadcast, MacA, 64, 1);
        var f2 = SimNetfront.Frame(SimNetfront.Broadcast, MacA, 64, 2);
        a.Send(f1);
        a.Send(f2);
        Assert.Null(b.Receive(100));
        Assert.Equal(b.Rx.ReqProd + 1, b.Rx.ReqEvent); // asks to be told about the next buffer
        b.PostRx(4);
        Assert.Equal(f1, b.Receive());
        Assert.Equal(f2, b.Receive());
    }

    [Fact]
    public void RateLimitSpreadsTransmitsOverTime()
    {
        // 800 kbit/s in 20 ms periods: 2000 bytes of credit per period, 100 kB/s.
        var a = Nic(MacA, rate: "800Kb/s@20ms");
        var b = Nic(MacB, rxBuffers: 64);
        Assert.Equal("2000,20000", _h.Xs.Read(a.Be.BackendPath + "/rate"));
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 30; i++) a.QueueFrame(SimNetfront.Frame(MacB, MacA, 1000, (byte)i));
        a.PushTx();
        for (int i = 0; i < 30; i++) Assert.Equal(Netif.RspOkay, a.Tx.WaitResponse<NetifTxResponse>(10000).Status);
        sw.Stop();
        // 30 kB at 100 kB/s: about 0.3 s less the first period's credit.
        Assert.InRange(sw.ElapsedMilliseconds, 220, 3000);
        int got = 0;
        while (b.Receive(500) is { Length: 1000 }) got++;
        Assert.Equal(30, got);

        // Without a limit the same burst is quick.
        var c = Nic(MacC);
        sw.Restart();
        for (int i = 0; i < 30; i++) c.QueueFrame(SimNetfront.Frame(MacB, MacC, 1000, (byte)i));
        c.PushTx();
        for (int i = 0; i < 30; i++) c.Tx.WaitResponse<NetifTxResponse>();
        Assert.True(sw.ElapsedMilliseconds < 250, $"{sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void TxRingOverrunClosesThatVifOnly()
    {
        var a = Nic(MacA);
        var b = Nic(MacB);
        var c = Nic(MacC);
        a.Tx.ReqProd = 0x8000_0000u;
        a.G.Send(a.Port);
        BackendHarness.WaitUntil(() => _h.Xs.TryRead(a.Be.BackendPath + "/state") == "6", what: "Closed");
        Assert.Contains("overrun", _h.Xs.Read(a.Be.BackendPath + "/error"));
        Assert.Equal(0, a.G.Pv.Grants.InUseCount);
        Assert.Null(_sw.Lookup(MacA));
        var f = SimNetfront.Frame(MacC, MacB, 64);
        b.Send(f);
        Assert.Equal(f, c.Receive());
    }

    [Theory]
    [InlineData("tx-ring-ref", "zz")]
    [InlineData("rx-ring-ref", null)]
    [InlineData("event-channel", "12345678901")]
    [InlineData("request-rx-copy", "0")]
    [InlineData("multi-queue-num-queues", "4")]
    public void HostileFrontendValues(string key, string? value)
    {
        var g = _h.NewGuest();
        var be = new VifBackend(_h.Xs, g.Domain, 0, MacA, _sw);
        _devs.Add(be);
        be.Start();
        var fe = new SimNetfront(g, be, connect: false);
        var xs = _h.Xs;
        BackendHarness.WaitUntil(() => xs.TryRead(be.BackendPath + "/state") == "2");
        xs.Write(be.FrontendPath + "/tx-ring-ref", fe.Tx.Gref.ToString());
        xs.Write(be.FrontendPath + "/rx-ring-ref", fe.Rx.Gref.ToString());
        xs.Write(be.FrontendPath + "/event-channel", fe.Port.ToString());
        xs.Write(be.FrontendPath + "/request-rx-copy", "1");
        if (value is null) xs.Rm(be.FrontendPath + "/" + key); else xs.Write(be.FrontendPath + "/" + key, value);
        xs.Write(be.FrontendPath + "/state", "4");
        BackendHarness.WaitUntil(() => xs.TryRead(be.BackendPath + "/state") == "6", what: "Closed");
        Assert.NotEmpty(xs.Read(be.BackendPath + "/error"));
        Assert.Equal(0, g.Pv.Grants.InUseCount);
        Assert.Empty(_sw.Ports);
    }

    [Fact]
    public void RateParsing()
    {
        Assert.Equal(new VifRate(25_000, 20_000), VifRate.Parse("10Mb/s@20ms"));
        Assert.Equal(new VifRate(50_000, 50_000), VifRate.Parse("1MB/s"));
        Assert.Equal(new VifRate(100, 1_000_000), VifRate.Parse("100B/s@1s"));
        Assert.Equal(new VifRate(125, 1000), VifRate.Parse("1Mb/s@1000us"));
        Assert.Throws<FormatException>(() => VifRate.Parse("fast"));
        Assert.Throws<FormatException>(() => VifRate.Parse("0Mb/s"));
        Assert.Equal("25000,20000", VifRate.Parse("10Mb/s@20ms").ToString());
    }

    [Fact]
    public void MacHelpers()
    {
        var m = VifBackend.GenerateMac();
        Assert.Equal([0x00, 0x16, 0x3e], m[..3]);
        Assert.Equal(0, m[3] & 0x80);
        Assert.Equal(MacA, VifBackend.ParseMac("00:16:3e:00:00:0a"));
        Assert.Throws<FormatException>(() => VifBackend.ParseMac("01:00:5e:00:00:01"));
        Assert.Throws<FormatException>(() => VifBackend.ParseMac("00:16:3e"));
    }
}
