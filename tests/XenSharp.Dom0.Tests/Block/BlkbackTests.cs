using System.Security.Cryptography;
using XenSharp.Dom0.Block;
using XenSharp.Dom0.Tests.Xenbus;
using XenSharp.Dom0.Xenbus;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>A simulated xen-blkfront: ring in guest memory, grants, event channel, xenstore handshake.</summary>
internal sealed class SimBlkfront
{
    public SimGuest G { get; }
    public VbdBackend Be { get; }
    public FrontRing Ring { get; }
    public uint Port { get; }
    private ulong _nextId = 100;

    public SimBlkfront(SimGuest g, VbdBackend be, bool connect = true)
    {
        G = g;
        Be = be;
        Ring = new FrontRing(g, Blkif.EntrySize);
        Port = g.AllocPortForDom0();
        if (connect) Connect();
    }

    public void Connect()
    {
        var xs = G.Xs; // the guest's own connection: only its frontend dir is writable
        BackendHarness.WaitUntil(() => xs.TryRead(Be.BackendPath + "/state") == "2", what: "InitWait");
        xs.Write(Be.FrontendPath + "/ring-ref", Ring.Gref.ToString());
        xs.Write(Be.FrontendPath + "/event-channel", Port.ToString());
        xs.Write(Be.FrontendPath + "/protocol", "x86_64-abi");
        xs.Write(Be.FrontendPath + "/state", "3");
        BackendHarness.WaitUntil(() => xs.TryRead(Be.BackendPath + "/state") == "4", what: "Connected");
        xs.Write(Be.FrontendPath + "/state", "4");
    }

    public BlkifResponse Submit(BlkifRequest req)
    {
        req.Id = _nextId++;
        Ring.Put(req);
        if (Ring.Push()) G.Send(Port);
        var r = Ring.WaitResponse<BlkifResponse>();
        Assert.Equal(req.Id, r.Id);
        // An indirect request is answered with its inner operation (byte 1 of the request, indirect_op).
        Assert.Equal(req.Operation == Blkif.OpIndirect ? req.NrSegments : req.Operation, r.Operation);
        return r;
    }

    /// <summary>Builds a request whose segments are whole pages (or the given sector ranges) of fresh granted frames.</summary>
    public (BlkifRequest Req, ulong[] Pfns) Rw(byte op, ulong sector, params (byte First, byte Last)[] segs)
    {
        var req = new BlkifRequest { Operation = op, NrSegments = (byte)segs.Length, SectorNumber = sector, Handle = (ushort)Be.DevId };
        var pfns = new ulong[segs.Length];
        for (int i = 0; i < segs.Length; i++)
        {
            pfns[i] = G.AllocPage();
            req.Seg[i] = new BlkifSegment { Gref = G.Grant(pfns[i], ro: op != Blkif.OpRead), FirstSect = segs[i].First, LastSect = segs[i].Last };
        }
        return (req, pfns);
    }
}

public sealed class BlkbackTests : IDisposable
{
    private readonly BackendHarness _h = new();
    private readonly List<string> _files = [];
    private readonly List<IDisposable> _devs = [];

    public void Dispose()
    {
        foreach (var d in _devs) d.Dispose();
        _h.Dispose();
        foreach (var f in _files) try { File.Delete(f); } catch (IOException) { }
    }

    private string Image(int mib = 4, Func<int, byte>? fill = null)
    {
        string p = Path.Combine(Path.GetTempPath(), $"xensharp-vbd-{Guid.NewGuid():N}.img");
        var data = new byte[mib << 20];
        if (fill != null) for (int i = 0; i < data.Length; i++) data[i] = fill(i);
        File.WriteAllBytes(p, data);
        _files.Add(p);
        return p;
    }

    private VbdBackend Attach(SimGuest g, string path, bool ro = false, uint devid = 51712)
    {
        var be = new VbdBackend(_h.Xs, g.Domain, devid, DiskImage.Open(path, ro, g.Id), path);
        _devs.Add(be);
        be.Start();
        return be;
    }

    private static byte[] ReadFile(string p, long off, int len) => RawFile.Read(p, off, len);

    [Fact]
    public void HandshakeWritesBothDirectoriesAndAdvertisesFeatures()
    {
        var g = _h.NewGuest();
        var path = Image();
        var be = Attach(g, path);
        var xs = _h.Xs;
        Assert.Equal($"/local/domain/{g.Id}/device/vbd/51712", be.FrontendPath);
        Assert.Equal($"/local/domain/0/backend/vbd/{g.Id}/51712", be.BackendPath);
        Assert.Equal(be.BackendPath, xs.Read(be.FrontendPath + "/backend"));
        Assert.Equal("0", xs.Read(be.FrontendPath + "/backend-id"));
        Assert.Equal("51712", xs.Read(be.FrontendPath + "/virtual-device"));
        Assert.Equal(be.FrontendPath, xs.Read(be.BackendPath + "/frontend"));
        Assert.Equal(g.Id.ToString(), xs.Read(be.BackendPath + "/frontend-id"));
        Assert.Equal("1", xs.Read(be.BackendPath + "/online"));
        Assert.Equal("2", xs.Read(be.BackendPath + "/state"));
        Assert.Equal("1", xs.Read(be.BackendPath + "/feature-flush-cache"));
        Assert.Equal("1", xs.Read(be.BackendPath + "/feature-barrier"));
        Assert.Equal("1", xs.Read(be.BackendPath + "/feature-discard"));
        Assert.Equal("8192", xs.Read(be.BackendPath + "/sectors"));
        Assert.Equal("512", xs.Read(be.BackendPath + "/sector-size"));
        Assert.Equal("0", xs.Read(be.BackendPath + "/info"));
        Assert.Equal("xvda", xs.Read(be.BackendPath + "/dev"));
        Assert.Equal([new XsPermission(g.Id, XsAccess.None), new XsPermission(0, XsAccess.Read)], xs.GetPerms(be.FrontendPath));
        Assert.Equal([new XsPermission(0, XsAccess.None), new XsPermission(g.Id, XsAccess.Read)], xs.GetPerms(be.BackendPath));
        // The guest itself can write its frontend state but not the backend's.
        using var gx = new XenstoreClient(_h.Store, g.Id);
        gx.Write(be.FrontendPath + "/state", "1");
        Assert.Throws<XenstoreException>(() => gx.Write(be.BackendPath + "/state", "4"));
        Assert.Equal("2", gx.Read(be.BackendPath + "/state"));

        var fe = new SimBlkfront(g, be);
        Assert.True(be.IsConnected);

        be.Dispose();
        Assert.Null(xs.TryRead(be.FrontendPath));
        Assert.Null(xs.TryRead(be.BackendPath));
        _ = fe;
    }

    [Fact]
    public void ReadWriteRoundTripAcrossSegments()
    {
        var g = _h.NewGuest();
        var path = Image();
        var fe = new SimBlkfront(g, Attach(g, path));
        var (w, wp) = fe.Rw(Blkif.OpWrite, 100, (0, 7), (2, 5), (0, 0));
        var expect = new List<byte>();
        for (int i = 0; i < wp.Length; i++)
        {
            var s = w.Seg[i];
            var page = g.Page(wp[i]);
            for (int j = 0; j < 4096; j++) page[j] = (byte)(j * 7 + i * 31 + 1);
            expect.AddRange(page.Slice(s.FirstSect * 512, (s.LastSect - s.FirstSect + 1) * 512).ToArray());
        }
        Assert.Equal(Blkif.RspOkay, fe.Submit(w).Status);
        Assert.Equal(expect.ToArray(), ReadFile(path, 100 * 512, expect.Count));

        var (r, rp) = fe.Rw(Blkif.OpRead, 100, (1, 7), (0, 4), (3, 3));
        Assert.Equal(Blkif.RspOkay, fe.Submit(r).Status);
        var got = new List<byte>();
        for (int i = 0; i < rp.Length; i++)
        {
            var s = r.Seg[i];
            var page = g.Page(rp[i]);
            got.AddRange(page.Slice(s.FirstSect * 512, (s.LastSect - s.FirstSect + 1) * 512).ToArray());
            // Outside [first, last] the page is untouched.
            Assert.All(page[..(s.FirstSect * 512)].ToArray(), b => Assert.Equal(0, b));
            Assert.All(page[((s.LastSect + 1) * 512)..].ToArray(), b => Assert.Equal(0, b));
        }
        Assert.Equal(expect.ToArray(), got.ToArray());
        Assert.Equal(0, g.Pv.Grants.InUseCount - 1); // only the ring stays mapped
        BackendHarness.WaitUntil(() => g.Pending(fe.Port), 2000, "the event");
        Assert.Equal(1, fe.Be.Stats.ReadRequests);
        Assert.Equal(1, fe.Be.Stats.WriteRequests);
    }

    [Fact]
    public void FlushAndBarrierReachTheFile()
    {
        var g = _h.NewGuest();
        var path = Image();
        var fe = new SimBlkfront(g, Attach(g, path));
        var (w, wp) = fe.Rw(Blkif.OpWrite, 8, (0, 7));
        g.Page(wp[0]).Fill(0xA5);
        Assert.Equal(Blkif.RspOkay, fe.Submit(w).Status);
        Assert.Equal(Blkif.RspOkay, fe.Submit(new BlkifRequest { Operation = Blkif.OpFlushDiskcache }).Status);
        Assert.All(ReadFile(path, 8 * 512, 4096), b => Assert.Equal(0xA5, b));

        var (b, bp) = fe.Rw(Blkif.OpWriteBarrier, 16, (0, 7));
        g.Page(bp[0]).Fill(0x5A);
        Assert.Equal(Blkif.RspOkay, fe.Submit(b).Status);
        Assert.All(ReadFile(path, 16 * 512, 4096), x => Assert.Equal(0x5A, x));
        // A FUA write: flush with data.
        var (fu, fp) = fe.Rw(Blkif.OpFlushDiskcache, 24, (0, 3));
        g.Page(fp[0]).Fill(0x3C);
        Assert.Equal(Blkif.RspOkay, fe.Submit(fu).Status);
        Assert.All(ReadFile(path, 24 * 512, 2048), x => Assert.Equal(0x3C, x));
        Assert.Equal(3, fe.Be.Stats.FlushRequests);
    }

    [Fact]
    public void DiscardPunchesAHole()
    {
        var g = _h.NewGuest();
        var path = Image(fill: _ => 0x77);
        var fe = new SimBlkfront(g, Attach(g, path));
        var d = new BlkifRequestDiscard { Operation = Blkif.OpDiscard, SectorNumber = 64, NrSectors = 16 };
        var req = System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequest>(
            [.. System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequestDiscard>(in d)), .. new byte[80]]);
        Assert.Equal(Blkif.RspOkay, fe.Submit(req).Status);
        Assert.All(ReadFile(path, 64 * 512, 16 * 512), b => Assert.Equal(0, b));
        Assert.Equal(0x77, ReadFile(path, 80 * 512, 1)[0]);
        Assert.Equal(0x77, ReadFile(path, 64 * 512 - 1, 1)[0]);
        Assert.Equal(4L << 20, new FileInfo(path).Length);
        // Beyond the disk: error, nothing changes.
        d.SectorNumber = 8190; d.NrSectors = 4;
        req = System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequest>(
            [.. System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequestDiscard>(in d)), .. new byte[80]]);
        Assert.Equal(Blkif.RspError, fe.Submit(req).Status);
        Assert.Equal(0x77, ReadFile(path, (4 << 20) - 1, 1)[0]);
    }

    [Fact]
    public void ReadOnlyVbdRefusesWritesAndDiscardsAndLeavesTheFileIdentical()
    {
        var g = _h.NewGuest();
        var path = Image(fill: i => (byte)(i * 13));
        var before = SHA256.HashData(RawFile.ReadAll(path));
        var be = Attach(g, path, ro: true);
        Assert.Equal("4", _h.Xs.Read(be.BackendPath + "/info"));
        Assert.Equal("r", _h.Xs.Read(be.BackendPath + "/mode"));
        Assert.Null(_h.Xs.TryRead(be.BackendPath + "/feature-discard"));
        var fe = new SimBlkfront(g, be);
        var (w, wp) = fe.Rw(Blkif.OpWrite, 0, (0, 7));
        g.Page(wp[0]).Fill(0xEE);
        Assert.Equal(Blkif.RspError, fe.Submit(w).Status);
        var (b, bp) = fe.Rw(Blkif.OpWriteBarrier, 0, (0, 7));
        Assert.Equal(Blkif.RspError, fe.Submit(b).Status);
        var d = new BlkifRequest { Operation = Blkif.OpDiscard, SectorNumber = 0 };
        Assert.Equal(Blkif.RspError, fe.Submit(d).Status);
        var (r, rp) = fe.Rw(Blkif.OpRead, 0, (0, 7));
        Assert.Equal(Blkif.RspOkay, fe.Submit(r).Status);
        Assert.Equal(RawFile.ReadAll(path)[..4096], g.Page(rp[0]).ToArray());
        Assert.Equal(before, SHA256.HashData(RawFile.ReadAll(path)));
    }

    [Fact]
    public void HostileRequestsGetErrorsAndTheDeviceCarriesOn()
    {
        var g = _h.NewGuest();
        var path = Image(1);
        var before = SHA256.HashData(RawFile.ReadAll(path));
        var fe = new SimBlkfront(g, Attach(g, path));
        short Try(BlkifRequest r) => fe.Submit(r).Status;

        var (r, _) = fe.Rw(Blkif.OpWrite, 0, (0, 7));
        r.Seg[0].Gref = 4000; // never granted
        Assert.Equal(Blkif.RspError, Try(r));
        (r, _) = fe.Rw(Blkif.OpRead, 0, (0, 7));
        r.Seg[0].Gref = 0xffffffff; // beyond the table
        Assert.Equal(Blkif.RspError, Try(r));
        (r, _) = fe.Rw(Blkif.OpWrite, 0, (5, 4));
        Assert.Equal(Blkif.RspError, Try(r));
        (r, _) = fe.Rw(Blkif.OpWrite, 0, (0, 8));
        Assert.Equal(Blkif.RspError, Try(r));
        (r, _) = fe.Rw(Blkif.OpWrite, 2047, (0, 1)); // last sector + one beyond
        Assert.Equal(Blkif.RspError, Try(r));
        (r, _) = fe.Rw(Blkif.OpRead, ulong.MaxValue - 3, (0, 7)); // wraps
        Assert.Equal(Blkif.RspError, Try(r));
        (r, _) = fe.Rw(Blkif.OpWrite, 0, (0, 7));
        r.NrSegments = 0;
        Assert.Equal(Blkif.RspError, Try(r));
        r.NrSegments = 12;
        Assert.Equal(Blkif.RspError, Try(r));
        r.NrSegments = 255;
        Assert.Equal(Blkif.RspError, Try(r));
        // A read-only grant cannot receive read data.
        (r, var rp) = fe.Rw(Blkif.OpRead, 0, (0, 7));
        r.Seg[0].Gref = g.Grant(rp[0], ro: true);
        Assert.Equal(Blkif.RspError, Try(r));
        Assert.Equal(Blkif.RspError, Try(new BlkifRequest { Operation = Blkif.OpIndirect })); // no segments
        Assert.Equal(Blkif.RspEopnotsupp, Try(new BlkifRequest { Operation = 200 }));
        Assert.Equal(Blkif.RspError, Try(new BlkifRequest { Operation = Blkif.OpFlushDiskcache, NrSegments = 3 })); // gref 0: not granted
        Assert.Equal(before, SHA256.HashData(RawFile.ReadAll(path)));
        Assert.Equal(1, g.Pv.Grants.InUseCount); // only the ring

        // The last sector itself is fine.
        var (ok, okp) = fe.Rw(Blkif.OpWrite, 2047, (7, 7));
        g.Page(okp[0]).Fill(3);
        Assert.Equal(Blkif.RspOkay, Try(ok));
        Assert.Equal(3, ReadFile(path, (1 << 20) - 1, 1)[0]);
        Assert.True(fe.Be.IsConnected);
    }

    [Fact]
    public void RingOverrunDisconnectsThatDeviceOnly()
    {
        var g = _h.NewGuest();
        var g2 = _h.NewGuest();
        var bad = new SimBlkfront(g, Attach(g, Image(1)));
        var good = new SimBlkfront(g2, Attach(g2, Image(1)));
        var (r, _) = bad.Rw(Blkif.OpRead, 0, (0, 7));
        bad.Ring.Put(r);
        bad.Ring.ReqProd = bad.Ring.ReqProdPvt + 0x8000_0000u;
        g.Send(bad.Port);
        BackendHarness.WaitUntil(() => _h.Xs.TryRead(bad.Be.BackendPath + "/state") == "6", what: "Closed");
        Assert.Contains("overrun", _h.Xs.Read(bad.Be.BackendPath + "/error"));
        Assert.False(bad.Be.IsConnected);
        Assert.Equal(0, g.Pv.Grants.InUseCount);

        var (gr, gp) = good.Rw(Blkif.OpRead, 0, (0, 7));
        Assert.Equal(Blkif.RspOkay, good.Submit(gr).Status);
        Assert.True(good.Be.IsConnected);
        _ = gp;
    }

    [Fact]
    public void ManyRequestsInOneBatchAndEventSuppression()
    {
        var g = _h.NewGuest();
        var path = Image(1);
        var fe = new SimBlkfront(g, Attach(g, path));
        // Fill the ring completely, publish once.
        var ids = new List<ulong>();
        for (int i = 0; i < 32; i++)
        {
            var (w, wp) = fe.Rw(Blkif.OpWrite, (ulong)i * 8, (0, 7));
            g.Page(wp[0]).Fill((byte)(i + 1));
            w.Id = 1000 + (ulong)i;
            ids.Add(w.Id);
            fe.Ring.Put(w);
        }
        g.ClearPending(fe.Port);
        fe.Ring.RspEvent = fe.Ring.RspCons + 32; // ask to be told only once all 32 are back
        Assert.True(fe.Ring.Push());
        g.Send(fe.Port);
        BackendHarness.WaitUntil(() => fe.Ring.RspProd - fe.Ring.RspCons == 32);
        // rsp_prod is published before the event is sent: wait for it.
        BackendHarness.WaitUntil(() => g.Pending(fe.Port), 2000, "the event");
        for (int i = 0; i < 32; i++)
        {
            var rsp = fe.Ring.Take<BlkifResponse>();
            Assert.Equal(ids[i], rsp.Id);
            Assert.Equal(Blkif.RspOkay, rsp.Status);
            Assert.Equal((byte)(i + 1), ReadFile(path, i * 4096L, 1)[0]);
        }
        // The backend asked for an event on the next request.
        Assert.Equal(fe.Ring.ReqProd + 1, fe.Ring.ReqEvent);
    }

    [Fact]
    public void ImageLockNamesTheOtherDomain()
    {
        var g = _h.NewGuest();
        var g2 = _h.NewGuest();
        var path = Image(1);
        using var a = DiskImage.Open(path, readOnly: false, g.Id);
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(path, readOnly: false, g2.Id));
        Assert.Contains($"domain {g.Id}", e.Message);
        Assert.Throws<DiskImageException>(() => DiskImage.Open(path, readOnly: true, g2.Id));
        a.Dispose();
        using var r1 = DiskImage.Open(path, readOnly: true, g.Id);
        using var r2 = DiskImage.Open(path, readOnly: true, g2.Id);
        Assert.Throws<DiskImageException>(() => DiskImage.Open(path, readOnly: false, g2.Id));
        r1.Dispose(); r2.Dispose();
        using var again = DiskImage.Open(path, readOnly: false, g2.Id);
        Assert.Throws<DiskImageException>(() => DiskImage.Open(Path.Combine(Path.GetTempPath(), "xensharp-no-such.img"), false, 1));
    }

    [Theory]
    [InlineData("ring-ref", "abc")]
    [InlineData("ring-ref", "99999999999999999999")]
    [InlineData("ring-ref", "-1")]
    [InlineData("ring-ref", "3000")]
    [InlineData("event-channel", "x")]
    [InlineData("event-channel", "4000")]
    [InlineData("event-channel", null)]
    [InlineData("ring-ref", null)]
    [InlineData("protocol", "x86_32-abi")]
    public void HostileFrontendValuesCloseTheDeviceWithAnError(string key, string? value)
    {
        var g = _h.NewGuest();
        var be = Attach(g, Image(1));
        var fe = new SimBlkfront(g, be, connect: false);
        var xs = _h.Xs;
        BackendHarness.WaitUntil(() => xs.TryRead(be.BackendPath + "/state") == "2");
        xs.Write(be.FrontendPath + "/ring-ref", fe.Ring.Gref.ToString());
        xs.Write(be.FrontendPath + "/event-channel", fe.Port.ToString());
        if (value is null) xs.Rm(be.FrontendPath + "/" + key); else xs.Write(be.FrontendPath + "/" + key, value);
        xs.Write(be.FrontendPath + "/state", "3");
        BackendHarness.WaitUntil(() => xs.TryRead(be.BackendPath + "/state") == "6", what: "Closed");
        Assert.False(string.IsNullOrEmpty(xs.Read(be.BackendPath + "/error")));
        Assert.False(be.IsConnected);
        Assert.Equal(0, g.Pv.Grants.InUseCount);

        // The frontend starts over with good values: it connects.
        xs.Write(be.FrontendPath + "/state", "1");
        fe.Connect();
        Assert.Null(xs.TryRead(be.BackendPath + "/error"));
        var (r, _) = fe.Rw(Blkif.OpRead, 0, (0, 7));
        Assert.Equal(Blkif.RspOkay, fe.Submit(r).Status);
    }

    [Fact]
    public void FrontendCloseThenReconnect()
    {
        var g = _h.NewGuest();
        var be = Attach(g, Image(1));
        var fe = new SimBlkfront(g, be);
        var xs = _h.Xs;
        xs.Write(be.FrontendPath + "/state", "5");
        BackendHarness.WaitUntil(() => xs.TryRead(be.BackendPath + "/state") == "5", what: "Closing");
        Assert.False(be.IsConnected);
        xs.Write(be.FrontendPath + "/state", "6");
        BackendHarness.WaitUntil(() => xs.TryRead(be.BackendPath + "/state") == "6", what: "Closed");
        Assert.Equal(0, g.Pv.Grants.InUseCount);
        xs.Write(be.FrontendPath + "/state", "1");
        var fe2 = new SimBlkfront(g, be);
        var (r, _) = fe2.Rw(Blkif.OpRead, 0, (0, 7));
        Assert.Equal(Blkif.RspOkay, fe2.Submit(r).Status);
        _ = fe;
    }

    private static BlkifRequest AsRequest(BlkifRequestIndirect ind) =>
        System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequest>(
            [.. System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequestIndirect>(in ind)), .. new byte[48]]);

    [Fact]
    public void IndirectSegmentsRoundTrip()
    {
        var g = _h.NewGuest();
        var path = Image();
        var be = Attach(g, path);
        Assert.Equal("256", _h.Xs.Read(be.BackendPath + "/feature-max-indirect-segments"));
        var fe = new SimBlkfront(g, be);
        const int nn = VbdBackend.MaxIndirectSegments; // 1 MiB in one request, one indirect page
        ulong ip0 = g.AllocPage();
        var data = new ulong[nn];
        var segs = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlkifSegment>(g.Page(ip0));
        for (int i = 0; i < nn; i++)
        {
            data[i] = g.AllocPage();
            g.Page(data[i]).Fill((byte)(i + 1));
            segs[i] = new BlkifSegment { Gref = g.Grant(data[i], ro: true), FirstSect = 0, LastSect = 7 };
        }
        var ind = new BlkifRequestIndirect { Operation = Blkif.OpIndirect, IndirectOp = Blkif.OpWrite, NrSegments = (ushort)nn, SectorNumber = 16 };
        ind.IndirectGrefs[0] = g.Grant(ip0, ro: true);
        var wr = fe.Submit(AsRequest(ind));
        Assert.Equal(Blkif.RspOkay, wr.Status);
        Assert.Equal(Blkif.OpWrite, wr.Operation); // the inner operation, as Xen's blkback answers and Linux's blkfront checks
        for (int i = 0; i < nn; i++) Assert.Equal((byte)(i + 1), ReadFile(path, 16 * 512 + i * 4096L + 4095, 1)[0]);
        Assert.Equal(1, be.Stats.IndirectRequests);

        // Read back into fresh writable pages.
        for (int i = 0; i < nn; i++)
        {
            data[i] = g.AllocPage();
            segs[i] = new BlkifSegment { Gref = g.Grant(data[i]), FirstSect = 0, LastSect = 7 };
        }
        ind.IndirectOp = Blkif.OpRead;
        var rd = fe.Submit(AsRequest(ind));
        Assert.Equal(Blkif.RspOkay, rd.Status);
        Assert.Equal(Blkif.OpRead, rd.Operation);
        for (int i = 0; i < nn; i++) Assert.All(g.Page(data[i]).ToArray(), b => Assert.Equal((byte)(i + 1), b));

        // Hostile: too many segments, bad indirect page grant, a flush as the indirect op.
        ind.NrSegments = 257;
        Assert.Equal(Blkif.RspError, fe.Submit(AsRequest(ind)).Status);
        ind.NrSegments = 10;
        ind.IndirectGrefs[0] = 3999;
        Assert.Equal(Blkif.RspError, fe.Submit(AsRequest(ind)).Status);
        ind.IndirectGrefs[0] = g.Grant(ip0, ro: true);
        ind.IndirectOp = Blkif.OpFlushDiskcache;
        Assert.Equal(Blkif.RspError, fe.Submit(AsRequest(ind)).Status);
    }

    [SkippableFact]
    public void BlockDeviceBacking()
    {
        var path = Image(2, i => (byte)(i >> 9));
        var (ok, loop) = Run("losetup", "--find", "--show", path);
        Skip.IfNot(ok && loop.StartsWith("/dev/loop", StringComparison.Ordinal), $"no loop device: {loop}");
        try
        {
            var g = _h.NewGuest();
            var be = Attach(g, loop);
            Assert.True(be.Image.IsBlockDevice);
            Assert.Equal("phy", _h.Xs.Read(be.BackendPath + "/type"));
            Assert.Equal("4096", _h.Xs.Read(be.BackendPath + "/sectors"));
            Assert.Null(_h.Xs.TryRead(be.BackendPath + "/feature-discard"));
            var fe = new SimBlkfront(g, be);
            var (w, wp) = fe.Rw(Blkif.OpWrite, 4088, (0, 7));
            g.Page(wp[0]).Fill(0x99);
            Assert.Equal(Blkif.RspOkay, fe.Submit(w).Status);
            Assert.Equal(Blkif.RspOkay, fe.Submit(new BlkifRequest { Operation = Blkif.OpFlushDiskcache }).Status);
            var (r, rp) = fe.Rw(Blkif.OpRead, 10, (0, 0));
            Assert.Equal(Blkif.RspOkay, fe.Submit(r).Status);
            Assert.All(g.Page(rp[0])[..512].ToArray(), b => Assert.Equal(10, b));
            (w, _) = fe.Rw(Blkif.OpWrite, 4089, (0, 7));
            Assert.Equal(Blkif.RspError, fe.Submit(w).Status);
            be.Dispose();
            Assert.All(ReadFile(path, 4088 * 512, 4096), b => Assert.Equal(0x99, b));
        }
        finally { Run("losetup", "-d", loop); }
    }

    private static (bool Ok, string Out) Run(string exe, params string[] args) => HostCommand.TryRun(exe, args);

    [Fact]
    public void VdevNames()
    {
        Assert.Equal(51712u, VbdBackend.ParseVdev("xvda"));
        Assert.Equal(51728u, VbdBackend.ParseVdev("xvdb"));
        Assert.Equal("xvdb", VbdBackend.VdevName(51728));
        Assert.Equal((1u << 28) | (26u << 8), VbdBackend.ParseVdev("xvdaa"));
        Assert.Equal("xvdaa", VbdBackend.VdevName((1u << 28) | (26u << 8)));
        Assert.Equal(768u, VbdBackend.ParseVdev("768"));
        Assert.Throws<FormatException>(() => VbdBackend.ParseVdev("hdz9"));
    }
}
