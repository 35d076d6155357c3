using XenSharp.Dom0.Block;
using XenSharp.Dom0.Block.Qcow2;
using static XenSharp.Dom0.Tests.Block.Qcow2Workspace;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>Unsupported features are refused by name; corrupt or hostile images fail at open or fail one request, never more.</summary>
public sealed class Qcow2HostileTests : Qcow2TestBase
{

    private string Image(string compat = "1.1") => Ws.Create("h.qcow2", compat, 65536, "8M");

    private static DiskImageException Refused(string img) =>
        Assert.Throws<DiskImageException>(() => DiskImageFormats.Open(img, "qcow2", readOnly: false, domid: 1));

    [SkippableTheory]
    [InlineData(0, "dirty")]
    [InlineData(1, "corrupt")]
    [InlineData(2, "external data file")]
    [InlineData(3, "compression type")]
    [InlineData(4, "extended L2")]
    [InlineData(9, "unknown")]
    public void IncompatibleFeatureBitsAreRefusedByName(int bit, string name)
    {
        QemuTools.SkipIfMissing();
        string img = Image();
        PatchU64(img, 72, 1UL << bit);
        var e = Refused(img);
        Assert.Contains($"incompatible feature bit {bit} ({name}", e.Message);
        Assert.Contains(img, e.Message);
    }

    [SkippableFact]
    public void ZstdImagesFromQemuAreRefused()
    {
        QemuTools.SkipIfMissing();
        var (ok, why) = QemuTools.TryRun("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", Ws.PathOf("z.qcow2"), "1M"]);
        Skip.IfNot(ok, $"this qemu-img makes no zstd images: {why}");
        Assert.Contains("bit 3 (compression type other than zlib)", Refused(Ws.PathOf("z.qcow2")).Message);
    }

    [SkippableTheory]
    [InlineData("magic", "no qcow2 magic")]
    [InlineData("version", "version 4 is not supported")]
    [InlineData("cluster_bits", "cluster_bits 30")]
    [InlineData("encrypted", "encrypted")]
    [InlineData("absurd size", "absurd")]
    [InlineData("size beyond the L1 table", "too small for a virtual size")]
    [InlineData("huge L1", "larger than 32 MiB")]
    [InlineData("L1 past the end", "lies past the end of the file")]
    [InlineData("L1 over the refcount table", "overlaps the refcount table")]
    [InlineData("refcount table in the header", "overlaps the header cluster")]
    [InlineData("no refcount table", "refcount table of 0 clusters")]
    [InlineData("refcount_order", "refcount_order 7")]
    [InlineData("header_length", "header_length 12")]
    [InlineData("backing name", "backing file name")]
    [InlineData("truncated", "too short")]
    public void CorruptHeadersAreRefusedAtOpen(string corruption, string message)
    {
        QemuTools.SkipIfMissing();
        string img = Image();
        ulong refcountTable = ReadU64(img, 48);
        switch (corruption)
        {
            case "magic": PatchU32(img, 0, 0x514649FA); break;
            case "version": PatchU32(img, 4, 4); break;
            case "cluster_bits": PatchU32(img, 20, 30); break;
            case "encrypted": PatchU32(img, 32, 1); break;
            case "absurd size": PatchU64(img, 24, 1UL << 63); break;
            case "size beyond the L1 table": PatchU64(img, 24, 1UL << 45); break;
            case "huge L1": PatchU32(img, 36, 0x1000_0000); break;
            case "L1 past the end": PatchU64(img, 40, 1UL << 40); break;
            case "L1 over the refcount table": PatchU64(img, 40, refcountTable); break;
            case "refcount table in the header": PatchU64(img, 48, 0); break;
            case "no refcount table": PatchU32(img, 56, 0); break;
            case "refcount_order": PatchU32(img, 96, 7); break;
            case "header_length": PatchU32(img, 100, 12); break;
            case "backing name": PatchU64(img, 8, 65530); PatchU32(img, 16, 100); break;
            case "truncated": File.WriteAllBytes(img, new byte[40]); break;
        }
        Assert.Contains(message, Refused(img).Message);
        // Refused cleanly: the lock is released and the file can be opened again (here as raw).
        using var raw = DiskImageFormats.Open(img, "raw", readOnly: false, domid: 1);
    }

    [SkippableFact]
    public void BackingFileWithoutAFormatIsNotProbed()
    {
        QemuTools.SkipIfMissing();
        Ws.Create("base.qcow2", "1.1", 65536, "1M");
        string top = Ws.Create("top.qcow2", "1.1", 65536, "", backing: "base.qcow2", backingFormat: "qcow2");
        // Drop the backing-format header extension: turn its type into an unknown one (ignored).
        var head = RawFile.Read(top, 0, 4096);
        int at = head.AsSpan().IndexOf(new byte[] { 0xE2, 0x79, 0x2A, 0xCA });
        Assert.True(at > 0);
        PatchU32(top, at, 0x12345678);
        Assert.Contains("no recorded format", Refused(top).Message);
        string self = Ws.Create("loop.qcow2", "1.1", 65536, "1M");
        QemuTools.Run("qemu-img", "rebase", "-u", "-b", "loop.qcow2", "-F", "qcow2", self);
        Assert.Contains("in use", Refused(self).Message); // an image backing itself: our own lock refuses it
    }

    /// <summary>An image whose clusters 0, 1M, 2M (and 3M) qemu-io wrote; returns it and its L2 table's offset.</summary>
    private (string Img, long L2) Mapped()
    {
        string img = Image();
        Io(img, "write -P 0x01 0 64k", "write -P 0x02 1M 64k", "write -P 0x03 2M 64k", "write -P 0x04 3M 64k");
        return (img, FirstL2Table(img));
    }

    private static void AssertFails(Action io) => Assert.ThrowsAny<IOException>(io);

    [SkippableFact]
    public void CorruptTablesFailOnlyTheRequestsThatMeetThem()
    {
        QemuTools.SkipIfMissing();
        var (img, l2) = Mapped();
        long l1 = (long)ReadU64(img, 40);
        PatchU64(img, l2 + 16 * 8, ReadU64(img, l2 + 16 * 8) | 0x2);                   // 1M: a reserved bit
        PatchU64(img, l2 + 32 * 8, (1UL << 62) | (ulong)l2);                           // 2M: "compressed" garbage
        PatchU64(img, l2 + 48 * 8, (1UL << 63) | (ulong)l1);                           // 3M: data over the L1 table
        PatchU64(img, l2 + 64 * 8, (1UL << 63) | (1UL << 50));                         // 4M: data far past the end
        using var q = Qcow2Image.Open(img, readOnly: false, domid: 1);
        var buf = new byte[65536];
        AssertFails(() => q.Read(1 << 20, buf));
        AssertFails(() => q.Write(1 << 20, buf));
        AssertFails(() => q.Read(2 << 20, buf));
        AssertFails(() => q.Write((2 << 20) + 512, buf.AsSpan(0, 512)));
        AssertFails(() => q.Write(3 << 20, buf));
        AssertFails(() => q.Write(4 << 20, buf));
        // The rest of the disk carries on.
        q.Read(0, buf);
        Assert.All(buf, b => Assert.Equal(1, b));
        q.Write(5 << 20, buf);
        q.Read(5 << 20, buf);
        Assert.All(buf, b => Assert.Equal(1, b));
        Assert.Equal(l1, (long)ReadU64(img, 40)); // nothing rewrote the header
        Assert.Equal((1UL << 62) | (ulong)l2, ReadU64(img, l2 + 32 * 8)); // a failed request changed no table
    }

    [SkippableFact]
    public void AnL1EntryPastTheEndFailsItsRequests()
    {
        QemuTools.SkipIfMissing();
        var (img, _) = Mapped();
        PatchU64(img, (long)ReadU64(img, 40), (1UL << 63) | (1UL << 45));
        using var q = Qcow2Image.Open(img, readOnly: false, domid: 1);
        AssertFails(() => q.Read(0, new byte[512]));
        AssertFails(() => q.Write(0, new byte[512]));
    }
}
