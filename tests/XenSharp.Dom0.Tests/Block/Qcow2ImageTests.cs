using XenSharp.Dom0.Block;
using XenSharp.Dom0.Block.Qcow2;
using static XenSharp.Dom0.Tests.Block.Qcow2Workspace;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>Qcow2Image against QEMU's own tools: it reads what qemu-io wrote, and what it writes qemu-img checks clean and reads back.</summary>
public sealed class Qcow2ImageTests : Qcow2TestBase
{
    private readonly Random _rng = new(1234);

    private byte[] Bytes(int n)
    {
        var b = new byte[n];
        _rng.NextBytes(b);
        return b;
    }

    private static byte[] ReadAll(IDiskImage img)
    {
        var all = new byte[img.SizeBytes];
        img.Read(0, all);
        return all;
    }

    /// <summary>Writes through <paramref name="img"/> and into the model of the guest's view.</summary>
    private void Write(IDiskImage img, byte[] model, long offset, int length)
    {
        var data = Bytes(length);
        img.Write(offset, data);
        data.CopyTo(model, offset);
    }

    [SkippableTheory]
    [InlineData("0.10", 4096)]
    [InlineData("0.10", 65536)]
    [InlineData("0.10", 2 << 20)]
    [InlineData("1.1", 4096)]
    [InlineData("1.1", 65536)]
    [InlineData("1.1", 2 << 20)]
    public void ReadsWhatQemuIoWrote(string compat, int cluster)
    {
        QemuTools.SkipIfMissing();
        string img = Ws.Create("a.qcow2", compat, cluster, "8M");
        Io(img, "write -P 0xab 0 64k", "write -P 0xcd 3M 4k", "write -P 0x11 5000k 700k", $"write -P 0x22 6M {cluster}");
        if (compat == "1.1") Io(img, $"write -z 6M {cluster}"); // a v3 zero cluster over allocated data
        var expected = QemuTools.GuestView(img);
        using var q = Qcow2Image.Open(img, readOnly: true, domid: 1);
        Assert.Equal(compat == "0.10" ? 2 : 3, q.Version);
        Assert.Equal(8UL << 11, q.Sectors);
        var all = ReadAll(q);
        AssertSameBytes(expected, all, "guest view");
        Assert.All(all[..65536], b => Assert.Equal(0xab, b));
        Assert.All(all[(6 << 20)..((6 << 20) + cluster)], b => Assert.Equal(compat == "1.1" ? 0 : 0x22, b));
    }

    [SkippableTheory]
    [InlineData("0.10", 4096)]
    [InlineData("0.10", 2 << 20)]
    [InlineData("1.1", 4096)]
    [InlineData("1.1", 65536)]
    [InlineData("1.1", 2 << 20)]
    public void WritesCheckCleanAndQemuReadsExactlyOurData(string compat, int cluster)
    {
        QemuTools.SkipIfMissing();
        string img = Ws.Create("w.qcow2", compat, cluster, "8M");
        Io(img, "write -P 0xab 0 64k", $"write -P 0x33 2M {cluster}");
        if (compat == "1.1") Io(img, $"write -z 2M {cluster}");
        var model = QemuTools.GuestView(img);
        using (var q = Qcow2Image.Open(img, readOnly: false, domid: 1))
        {
            Write(q, model, 512, 1024);                    // inside an allocated cluster: in place
            Write(q, model, cluster - 512, 1024);          // across a cluster boundary
            Write(q, model, (3 << 20) + 512, 1536);        // unallocated, partial: copy-on-write from zeros
            Write(q, model, (2 << 20) + 4096, 4096);       // a zero cluster (v3), partial
            Write(q, model, 7 << 20, 1 << 20);             // many clusters in one request, to the last byte
            Write(q, model, 0, 65536);                     // overwrite in place
            Write(q, model, 5 << 20, 4096);
            Write(q, model, (5 << 20) + 8192, 4096);       // the same cluster again, now allocated
            q.Flush();
            AssertSameBytes(model, ReadAll(q), "our read-back");
        }
        QemuTools.AssertClean(img);
        AssertSameBytes(model, QemuTools.GuestView(img), "qemu-img convert");
        using var again = Qcow2Image.Open(img, readOnly: true, domid: 1);
        AssertSameBytes(model, ReadAll(again), "after reopening");
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(64)]
    public void RefcountBlocksAndTableGrow(int refcountBits)
    {
        QemuTools.SkipIfMissing();
        // 512-byte clusters: a 64-bit refcount block counts 32 KiB and the one-cluster table 2 MiB of file, so
        // writing 3 MiB needs new refcount blocks and a larger refcount table.
        string img = Ws.Create("r.qcow2", "1.1", 512, "8M", $"refcount_bits={refcountBits}");
        var model = new byte[8 << 20];
        ulong table = ReadU64(img, 48);
        using (var q = Qcow2Image.Open(img, readOnly: false, domid: 1))
        {
            for (int i = 0; i < 48; i++) Write(q, model, (long)_rng.Next(0, 127) * 65536, 65536);
            AssertSameBytes(model, ReadAll(q), "our read-back");
        }
        if (refcountBits == 64) Assert.NotEqual(table, ReadU64(img, 48)); // the refcount table moved
        QemuTools.AssertClean(img);
        AssertSameBytes(model, QemuTools.GuestView(img), "qemu-img convert");
    }

    [SkippableFact]
    public void BackingChainReadsFallThroughWritesCopyAndTheBackingFilesStayUnchanged()
    {
        QemuTools.SkipIfMissing();
        var pattern = new byte[4 << 20];
        for (int i = 0; i < pattern.Length; i++) pattern[i] = (byte)(i >> 9);
        string baseRaw = Ws.WriteRaw("base.raw", pattern);
        // Relative backing names, as templates are usually given: resolved against the image's directory.
        string mid = Ws.Create("template.qcow2", "1.1", 65536, "8M", backing: "base.raw", backingFormat: "raw");
        Io(mid, "write -P 0x44 1M 64k");
        string top = Ws.Create("vps1.qcow2", "1.1", 4096, "", backing: "template.qcow2", backingFormat: "qcow2");
        string top2 = Ws.Create("vps2.qcow2", "1.1", 65536, "", backing: "template.qcow2", backingFormat: "qcow2");
        byte[] baseBefore = File.ReadAllBytes(baseRaw), midBefore = File.ReadAllBytes(mid);
        var model = QemuTools.GuestView(top);
        Assert.Equal(0x44, model[1 << 20]);

        using (var q = Qcow2Image.Open(top, readOnly: false, domid: 1))
        using (var q2 = Qcow2Image.Open(top2, readOnly: false, domid: 2)) // two VPS disks share one template
        {
            Assert.Contains("template.qcow2 (qcow2)", q.Note);
            Assert.IsType<DiskImage>(Assert.IsType<Qcow2Image>(q.Backing).Backing);
            AssertSameBytes(model, ReadAll(q), "read through the chain");
            Write(q, model, (1 << 20) + 100 * 512, 512);  // partial: the rest of the cluster comes from template
            Write(q, model, 3 << 20, 2048);                // partial: from the raw base
            Write(q, model, (6 << 20) + 512, 512);         // past the raw base's end: zeros around it
            AssertSameBytes(model, ReadAll(q), "after copy-on-write");
            var e = Assert.Throws<DiskImageException>(() => DiskImageFormats.Open(mid, "qcow2", readOnly: false, domid: 3));
            Assert.Contains("in use read-only", e.Message);
            q2.Write(0, new byte[512]);
        }
        Assert.Equal(baseBefore, File.ReadAllBytes(baseRaw));
        Assert.Equal(midBefore, File.ReadAllBytes(mid));
        QemuTools.AssertClean(top);
        AssertSameBytes(model, QemuTools.GuestView(top), "qemu-img convert");
    }

    [SkippableTheory]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 << 20)]
    public void CompressedClustersReadAndCopyOnWrite(int cluster)
    {
        QemuTools.SkipIfMissing();
        var source = new byte[6 << 20];
        for (int i = 0; i < source.Length; i++) source[i] = (byte)((i >> 9) * 7 + i % 13);
        _rng.NextBytes(source.AsSpan(4 << 20, 100_000)); // incompressible: stored uncompressed
        string raw = Ws.WriteRaw("src.raw", source);
        string img = Ws.PathOf("c.qcow2");
        QemuTools.Run("qemu-img", "convert", "-c", "-O", "qcow2", "-o", $"cluster_size={cluster}", raw, img);
        Assert.NotEqual(0UL, ReadU64(img, FirstL2Table(img)) & (1UL << 62)); // the first cluster is stored compressed
        var model = (byte[])source.Clone();
        using (var q = Qcow2Image.Open(img, readOnly: false, domid: 1))
        {
            AssertSameBytes(source, ReadAll(q), "compressed read");
            Write(q, model, 4096, 512);                   // into a compressed cluster: copied, never rewritten
            Write(q, model, cluster + 1024, 512);
            AssertSameBytes(model, ReadAll(q), "after copy-on-write");
        }
        QemuTools.AssertClean(img);
        AssertSameBytes(model, QemuTools.GuestView(img), "qemu-img convert");
    }

    [SkippableTheory]
    [InlineData("0.10")]
    [InlineData("1.1")]
    public void InternalSnapshotsAreLeftUntouched(string compat)
    {
        QemuTools.SkipIfMissing();
        string img = Ws.Create("s.qcow2", compat, 65536, "8M");
        Io(img, "write -P 0x55 0 1M");
        QemuTools.Run("qemu-img", "snapshot", "-c", "s1", img);
        Io(img, "write -P 0x66 512k 64k"); // QEMU's own copy-on-write after the snapshot
        var snapshot = QemuTools.GuestView(img, "s1");
        var model = QemuTools.GuestView(img);
        using (var q = Qcow2Image.Open(img, readOnly: false, domid: 1))
        {
            Assert.Contains("1 internal snapshot", q.Note);
            Write(q, model, 0, 4096);           // a cluster the snapshot shares
            Write(q, model, 512 << 10, 4096);   // QEMU already copied this one: ours alone now
            Write(q, model, 600 << 10, 65536);
            Write(q, model, 4 << 20, 4096);     // unallocated
        }
        QemuTools.AssertClean(img);
        AssertSameBytes(snapshot, QemuTools.GuestView(img, "s1"), "the snapshot");
        AssertSameBytes(model, QemuTools.GuestView(img), "the active image");
    }

    [SkippableFact]
    public void LocksAsRawImagesDo()
    {
        QemuTools.SkipIfMissing();
        string img = Ws.Create("l.qcow2", "1.1", 65536, "1M");
        using (var rw = DiskImageFormats.Open(img, "qcow2", readOnly: false, domid: 1))
        {
            var e = Assert.Throws<DiskImageException>(() => DiskImageFormats.Open(img, "qcow2", readOnly: true, domid: 2));
            Assert.Contains("domain 1", e.Message);
        }
        using var r1 = DiskImageFormats.Open(img, "qcow2", readOnly: true, domid: 1);
        using var r2 = DiskImageFormats.Open(img, "qcow2", readOnly: true, domid: 2);
        Assert.Throws<IOException>(() => r1.Write(0, new byte[512]));
        Assert.False(r1.CanDiscard);
    }

    [Fact]
    public void FormatRawIsNeverProbed()
    {
        var data = new byte[1 << 20];
        // A guest wrote a qcow2 header (magic "QFI\xfb", version 3) into its raw disk.
        data[0] = 0x51; data[1] = 0x46; data[2] = 0x49; data[3] = 0xfb; data[7] = 3;
        string p = Ws.WriteRaw("raw.img", data);
        using var img = DiskImageFormats.Open(p, "raw", readOnly: true, domid: 1);
        Assert.IsType<DiskImage>(img);
        Assert.Equal("raw", img.Format);
        Assert.Equal(1L << 20, img.SizeBytes);
        var head = new byte[512];
        img.Read(0, head);
        Assert.Equal(data[..512], head);
        var e = Assert.Throws<DiskImageException>(() => DiskImageFormats.Open(p, "vhd", readOnly: true, domid: 1));
        Assert.Contains("format vhd is not supported", e.Message);
    }
}
