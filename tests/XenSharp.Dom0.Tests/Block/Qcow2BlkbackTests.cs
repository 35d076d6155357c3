using XenSharp.Dom0.Block;
using XenSharp.Dom0.Tests.Xenbus;
using static XenSharp.Dom0.Tests.Block.Qcow2Workspace;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>blkback end to end over a qcow2 overlay: a simulated blkfront's ring requests against copy-on-write clusters.</summary>
public sealed class Qcow2BlkbackTests : Qcow2TestBase
{
    private readonly BackendHarness _h = new();

    public override void Dispose()
    {
        _h.Dispose();
        base.Dispose();
    }

    [SkippableFact]
    public void RingRequestsOnAQcow2OverlayThenQemuImgAgrees()
    {
        QemuTools.SkipIfMissing();
        var pattern = new byte[4 << 20];
        for (int i = 0; i < pattern.Length; i++) pattern[i] = (byte)(i >> 9);
        Ws.WriteRaw("template.raw", pattern);
        string img = Ws.Create("vps.qcow2", "1.1", 65536, "", backing: "template.raw", backingFormat: "raw");
        var g = _h.NewGuest();
        using var be = new VbdBackend(_h.Xs, g.Domain, 51712, DiskImageFormats.Open(img, "qcow2", readOnly: false, g.Id), img);
        be.Start();
        Assert.Equal("8192", _h.Xs.Read(be.BackendPath + "/sectors")); // the template's size
        Assert.Null(_h.Xs.TryRead(be.BackendPath + "/feature-discard"));
        var fe = new SimBlkfront(g, be);

        var (r, rp) = fe.Rw(Blkif.OpRead, 8, (0, 7));
        Assert.Equal(Blkif.RspOkay, fe.Submit(r).Status);
        for (int s = 0; s < 8; s++) Assert.Equal((byte)(8 + s), g.Page(rp[0])[s * 512]); // from the template

        // Across the 64 KiB cluster boundary at sector 128: two copy-on-write clusters in one request.
        var (w, wp) = fe.Rw(Blkif.OpWrite, 124, (0, 7));
        g.Page(wp[0]).Fill(0x99);
        Assert.Equal(Blkif.RspOkay, fe.Submit(w).Status);
        Assert.Equal(Blkif.RspOkay, fe.Submit(new BlkifRequest { Operation = Blkif.OpFlushDiskcache }).Status);
        var (r2, rp2) = fe.Rw(Blkif.OpRead, 120, (0, 7), (0, 7));
        Assert.Equal(Blkif.RspOkay, fe.Submit(r2).Status);
        Assert.Equal(123, g.Page(rp2[0])[3 * 512]);
        Assert.Equal(0x99, g.Page(rp2[0])[4 * 512]);
        Assert.Equal(0x99, g.Page(rp2[1])[3 * 512]);
        Assert.Equal(132, g.Page(rp2[1])[4 * 512]);

        var d = new BlkifRequestDiscard { Operation = Blkif.OpDiscard, SectorNumber = 0, NrSectors = 128 };
        var discard = System.Runtime.InteropServices.MemoryMarshal.Read<BlkifRequest>(
            [.. System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<BlkifRequestDiscard>(in d)), .. new byte[80]]);
        Assert.Equal(Blkif.RspEopnotsupp, fe.Submit(discard).Status);
        be.Dispose();

        QemuTools.AssertClean(img);
        var view = QemuTools.GuestView(img);
        var expected = (byte[])pattern.Clone();
        expected.AsSpan(124 * 512, 4096).Fill(0x99);
        AssertSameBytes(expected, view, "qemu-img convert");
    }

    [SkippableFact]
    public void ACorruptClusterFailsItsRequestAndTheDeviceCarriesOn()
    {
        QemuTools.SkipIfMissing();
        string img = Ws.Create("bad.qcow2", "1.1", 65536, "8M");
        Io(img, "write -P 0x01 0 64k", "write -P 0x02 1M 64k");
        long l2 = FirstL2Table(img);
        PatchU64(img, l2 + 16 * 8, (1UL << 62) | (ulong)l2); // the cluster at 1M: undecodable "compressed" data
        var g = _h.NewGuest();
        using var be = new VbdBackend(_h.Xs, g.Domain, 51712, DiskImageFormats.Open(img, "qcow2", readOnly: false, g.Id), img);
        be.Start();
        var fe = new SimBlkfront(g, be);
        var (bad, _) = fe.Rw(Blkif.OpRead, 2048, (0, 7));
        Assert.Equal(Blkif.RspError, fe.Submit(bad).Status);
        var (good, gp) = fe.Rw(Blkif.OpRead, 0, (0, 7));
        Assert.Equal(Blkif.RspOkay, fe.Submit(good).Status);
        Assert.Equal(1, g.Page(gp[0])[0]);
        Assert.Equal(1, be.Stats.Errors);
    }
}
