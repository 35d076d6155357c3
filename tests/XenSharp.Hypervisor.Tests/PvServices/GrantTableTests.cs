using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.PvServices;

public sealed class GrantTableTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    private static void Grant(TestDomain d, uint gref, ushort grantee, uint frame, bool ro = false) =>
        d.Pv.Grants.SeedEntry(gref, grantee, frame, ro);

    private static ushort Flags(TestDomain d, uint gref) => d.Pv.Grants.Memory.ReadUInt16(gref * 8UL);

    [Fact]
    public void SetupTableReturnsSpecialFramesAboveRam()
    {
        var d = _h.NewDomain();
        ulong list = PvHarness.Scratch + 0x100;
        var (rc, op) = d.Op(Hypercall.GrantTableOp, Gnttab.SetupTable, new GnttabSetupTable { Dom = DomId.Self, NrFrames = 4, FrameList = list });
        // count is the third argument: Op passes 0 → -EINVAL.
        Assert.Equal(-XenErrno.EINVAL, rc);
        d.Put(PvHarness.Scratch, new GnttabSetupTable { Dom = DomId.Self, NrFrames = 4, FrameList = list });
        Assert.Equal(0, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetupTable, PvHarness.Scratch, 1));
        op = d.Get<GnttabSetupTable>(PvHarness.Scratch);
        Assert.Equal(Gnttab.StOkay, op.Status);
        for (int i = 0; i < 4; i++)
        {
            ulong mfn = d.Get<ulong>(list + (ulong)i * 8);
            Assert.True(mfn >= d.Ram.FrameCount);
            Assert.True(d.Pv.SpecialFrames.TryGet(mfn, out var f));
            Assert.True(f.Writable);
            Assert.Same(d.Pv.Grants.Memory, f.Memory);
        }
        Assert.Equal(4, d.Pv.Grants.NrFrames);

        d.Put(PvHarness.Scratch, new GnttabQuerySize { Dom = DomId.Self });
        Assert.Equal(0, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.QuerySize, PvHarness.Scratch, 1));
        var q = d.Get<GnttabQuerySize>(PvHarness.Scratch);
        Assert.Equal(4u, q.NrFrames);
        Assert.Equal(32u, q.MaxNrFrames);
        Assert.Equal(Gnttab.StOkay, q.Status);

        // Too many frames, another domain, a wild frame list.
        d.Put(PvHarness.Scratch, new GnttabSetupTable { Dom = DomId.Self, NrFrames = 33, FrameList = list });
        Assert.Equal(0, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetupTable, PvHarness.Scratch, 1));
        Assert.Equal(Gnttab.StGeneralError, d.Get<GnttabSetupTable>(PvHarness.Scratch).Status);
        var other = _h.NewDomain("o");
        d.Put(PvHarness.Scratch, new GnttabSetupTable { Dom = (ushort)other.Domain.Id, NrFrames = 1, FrameList = list });
        d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetupTable, PvHarness.Scratch, 1);
        Assert.Equal(Gnttab.StPermissionDenied, d.Get<GnttabSetupTable>(PvHarness.Scratch).Status);
        d.Put(PvHarness.Scratch, new GnttabSetupTable { Dom = DomId.Self, NrFrames = 1, FrameList = 0xffff_0000_0000 });
        d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetupTable, PvHarness.Scratch, 1);
        Assert.Equal(Gnttab.StBadVirtAddr, d.Get<GnttabSetupTable>(PvHarness.Scratch).Status);
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetupTable, 0x1_0000_0000_0000, 1));
    }

    [Fact]
    public void SetVersionOnlyOne()
    {
        var d = _h.NewDomain();
        d.Put(PvHarness.Scratch, new GnttabSetVersion { Version = 1 });
        Assert.Equal(0, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetVersion, PvHarness.Scratch, 1));
        d.Put(PvHarness.Scratch, new GnttabSetVersion { Version = 2 });
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetVersion, PvHarness.Scratch, 1));
        Assert.Equal(1u, d.Get<GnttabSetVersion>(PvHarness.Scratch).Version);
        d.Put(PvHarness.Scratch, new GnttabSetVersion { Version = 3 });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.SetVersion, PvHarness.Scratch, 1));
        d.Put(PvHarness.Scratch, new GnttabGetVersion { Dom = DomId.Self });
        Assert.Equal(0, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.GetVersion, PvHarness.Scratch, 1));
        Assert.Equal(1u, d.Get<GnttabGetVersion>(PvHarness.Scratch).Version);
    }

    [Fact]
    public void BackendMapSetsAndClearsInUseFlags()
    {
        var d = _h.NewDomain();
        d.Ram.Frame(100)[5] = 0x42;
        Grant(d, 10, 0, 100);
        using (var ro = d.Pv.Grants.MapForBackend(10, readOnly: true))
        {
            Assert.Equal(0x42, ro.Page[5]);
            Assert.Equal(Gnttab.GtfPermitAccess | Gnttab.GtfReading, Flags(d, 10));
            using (var rw = GrantTable.MapForBackend(d.Domain, 10, readOnly: false))
            {
                rw.Page[6] = 7;
                Assert.Equal(Gnttab.GtfPermitAccess | Gnttab.GtfReading | Gnttab.GtfWriting, Flags(d, 10));
            }
            Assert.Equal(Gnttab.GtfPermitAccess | Gnttab.GtfReading, Flags(d, 10));
        }
        Assert.Equal(Gnttab.GtfPermitAccess, Flags(d, 10));
        Assert.Equal(7, d.Ram.Frame(100)[6]);
        Assert.Equal(0, d.Pv.Grants.InUseCount);
    }

    [Fact]
    public void BackendMapRefusesHostileEntries()
    {
        var d = _h.NewDomain();
        // Bad ref (beyond the one frame set up).
        Assert.Equal(Gnttab.StBadGntref, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(GrantTable.EntriesPerFrame, true)).Status);
        Assert.Equal(Gnttab.StBadGntref, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(uint.MaxValue, true)).Status);
        // Not granted at all.
        Assert.Equal(Gnttab.StPermissionDenied, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(11, true)).Status);
        // Granted to another domain.
        Grant(d, 12, 5, 100);
        Assert.Equal(Gnttab.StPermissionDenied, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(12, true)).Status);
        // Read-only grant mapped writable.
        Grant(d, 13, 0, 100, ro: true);
        Assert.Equal(Gnttab.StPermissionDenied, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(13, false)).Status);
        using (d.Pv.Grants.MapForBackend(13, true)) { }
        // Frame outside guest RAM (e.g. the shared_info MFN or beyond): refused, and the in-use bits are undone.
        Grant(d, 14, 0, (uint)d.Pv.SharedInfoMfn);
        Assert.Equal(Gnttab.StBadPage, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(14, true)).Status);
        Assert.Equal(Gnttab.GtfPermitAccess, Flags(d, 14));
        Grant(d, 15, 0, uint.MaxValue);
        Assert.Equal(Gnttab.StBadPage, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(15, true)).Status);
        // Transfer-type entries are not access grants.
        d.Pv.Grants.Memory.WriteUInt32(16 * 8, Gnttab.GtfAcceptTransfer);
        Assert.Equal(Gnttab.StPermissionDenied, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(16, true)).Status);
        Assert.Equal(0, d.Pv.Grants.InUseCount);
    }

    [Fact]
    public void RevokedWhileMappedDoesNotResurrectTheGrant()
    {
        var d = _h.NewDomain();
        Grant(d, 20, 0, 100);
        var m = d.Pv.Grants.MapForBackend(20, false);
        // A hostile guest wipes the entry while the backend holds it.
        d.Pv.Grants.Memory.WriteUInt64(20 * 8, 0);
        m.Page[0] = 1; // Still guest RAM: harmless to the host.
        m.Dispose();
        m.Dispose(); // Idempotent.
        Assert.Equal(0UL, d.Pv.Grants.Memory.ReadUInt64(20 * 8));
        Assert.Throws<ObjectDisposedException>(() => m.Page[0]);
        Assert.Equal(Gnttab.StPermissionDenied, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(20, true)).Status);
    }

    [Fact]
    public void BalloonedFrameCannotBeMapped()
    {
        var d = _h.NewDomain();
        Grant(d, 21, 0, 200);
        ulong list = PvHarness.Scratch + 0x800;
        d.Put(list, 200UL);
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 1, Domid = DomId.Self });
        Assert.Equal(1, d.Call(Hypercall.MemoryOp, (ulong)MemoryOp.DecreaseReservation, PvHarness.Scratch));
        Assert.Equal(Gnttab.StBadPage, Assert.Throws<GrantException>(() => d.Pv.Grants.MapForBackend(21, true)).Status);
    }

    [Fact]
    public void GrantCopyBetweenDomainsWithChecks()
    {
        var a = _h.NewDomain("a");
        var b = _h.NewDomain("b");
        // a grants frame 300 to b (read-only) and frame 301 to b (writable).
        a.Pv.Grants.SeedEntry(30, (ushort)b.Domain.Id, 300, readOnly: true);
        a.Pv.Grants.SeedEntry(31, (ushort)b.Domain.Id, 301);
        a.Ram.Frame(300).Slice(10, 4).Fill(0xab);
        b.Ram.Frame(50).Slice(0, 4).Fill(0xcd);

        ulong ops = PvHarness.Scratch + 0x1000;
        var copies = new[]
        {
            // 0: a's grant 30 → b's own frame 60 (ok)
            new GnttabCopy { SourceRef = 30, SourceDomid = (ushort)a.Domain.Id, SourceOffset = 10, DestGmfn = 60, DestDomid = DomId.Self, DestOffset = 100, Len = 4, Flags = Gnttab.CopySourceGref },
            // 1: b's frame 50 → a's grant 31 (ok)
            new GnttabCopy { SourceGmfn = 50, SourceDomid = DomId.Self, DestRef = 31, DestDomid = (ushort)a.Domain.Id, DestOffset = 8, Len = 4, Flags = Gnttab.CopyDestGref },
            // 2: write into read-only grant 30 → permission denied
            new GnttabCopy { SourceGmfn = 50, SourceDomid = DomId.Self, DestRef = 30, DestDomid = (ushort)a.Domain.Id, Len = 4, Flags = Gnttab.CopyDestGref },
            // 3: offset + len beyond the page → bad copy arg
            new GnttabCopy { SourceRef = 30, SourceDomid = (ushort)a.Domain.Id, SourceOffset = 4000, DestGmfn = 60, DestDomid = DomId.Self, Len = 200, Flags = Gnttab.CopySourceGref },
            // 4: a's frame by number, without a grant → permission denied
            new GnttabCopy { SourceGmfn = 300, SourceDomid = (ushort)a.Domain.Id, DestGmfn = 60, DestDomid = DomId.Self, Len = 4 },
            // 5: bad ref
            new GnttabCopy { SourceRef = 9999, SourceDomid = (ushort)a.Domain.Id, DestGmfn = 60, DestDomid = DomId.Self, Len = 4, Flags = Gnttab.CopySourceGref },
            // 6: unknown domain
            new GnttabCopy { SourceRef = 30, SourceDomid = 4321, DestGmfn = 60, DestDomid = DomId.Self, Len = 4, Flags = Gnttab.CopySourceGref },
            // 7: own frame outside RAM
            new GnttabCopy { SourceGmfn = 1UL << 40, SourceDomid = DomId.Self, DestGmfn = 60, DestDomid = DomId.Self, Len = 4 },
        };
        for (int i = 0; i < copies.Length; i++) b.Put(ops + (ulong)i * 40, copies[i]);
        Assert.Equal(0, b.Call(Hypercall.GrantTableOp, (ulong)Gnttab.Copy, ops, (ulong)copies.Length));
        short St(int i) => b.Get<GnttabCopy>(ops + (ulong)i * 40).Status;
        Assert.Equal(Gnttab.StOkay, St(0));
        Assert.Equal(Gnttab.StOkay, St(1));
        Assert.Equal(Gnttab.StPermissionDenied, St(2));
        Assert.Equal(Gnttab.StBadCopyArg, St(3));
        Assert.Equal(Gnttab.StPermissionDenied, St(4));
        Assert.Equal(Gnttab.StBadGntref, St(5));
        Assert.Equal(Gnttab.StBadDomain, St(6));
        Assert.Equal(Gnttab.StBadPage, St(7));
        Assert.Equal(new byte[] { 0xab, 0xab, 0xab, 0xab }, b.Ram.Frame(60).Slice(100, 4).ToArray());
        Assert.Equal(new byte[] { 0xcd, 0xcd, 0xcd, 0xcd }, a.Ram.Frame(301).Slice(8, 4).ToArray());
        Assert.Equal(0, a.Pv.Grants.InUseCount);
        Assert.Equal(Gnttab.GtfPermitAccess | Gnttab.GtfReadonly, Flags(a, 30));
        // A wild op array faults.
        Assert.Equal(-XenErrno.EFAULT, b.Call(Hypercall.GrantTableOp, (ulong)Gnttab.Copy, 0x7fff_0000_0000, 1));
    }

    [Fact]
    public void MapGrantRefHypercallIsNotOffered()
    {
        var d = _h.NewDomain();
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.GrantTableOp, (ulong)Gnttab.MapGrantRef, PvHarness.Scratch, 1));
    }
}
