using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using K4os.Compression.LZ4;
using SharpCompress.Compressors.BZip2;
using XenSharp.Hypervisor.Pv.Build;
using ZstdCompressionStream = SharpCompress.Compressors.ZStandard.CompressionStream;

namespace XenSharp.Hypervisor.Tests.Pv;

/// <summary>bzImages around payloads in every supported format, compressed here the way Linux's build does.</summary>
public sealed class KernelDecompressionTests
{
    private static readonly byte[] Elf = MakeElf(1 << 20);
    /// <summary>Over 8 MiB, so the lz4 legacy frame has more than one block.</summary>
    private static readonly byte[] BigElf = MakeElf(9 << 20);

    private static byte[] MakeElf(int textSize)
    {
        var e = TestElf.Linux();
        var rng = new Random(7);
        e.Text = new byte[textSize];
        for (int i = 0; i < e.Text.Length; i++) e.Text[i] = (byte)("xensharp"[i % 8] + (rng.Next(16) == 0 ? 1 : 0));
        e.MemSize = 10 << 20;
        return e.Build();
    }

    /// <summary>Linux appends the le32 uncompressed size to every format but gzip.</summary>
    private static byte[] WithSizeTrailer(byte[] compressed, int size)
    {
        var r = new byte[compressed.Length + 4];
        compressed.CopyTo(r, 0);
        BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(compressed.Length), size);
        return r;
    }

    internal static byte[] WrapInBzImage(byte[] payload, ushort version = 0x020f, int setupSects = 3, uint payloadOffset = 0x1a3)
    {
        int start = (setupSects + 1) * 512 + (int)payloadOffset;
        var f = new byte[start + payload.Length + 100];
        f[0x1f1] = (byte)setupSects;
        "HdrS"u8.CopyTo(f.AsSpan(0x202));
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(0x206), version);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(0x248), payloadOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(0x24c), (uint)payload.Length);
        payload.CopyTo(f, start);
        return f;
    }

    private static byte[] Gzip(byte[] d)
    {
        var ms = new MemoryStream();
        using (var z = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true)) z.Write(d);
        return ms.ToArray();
    }

    private static byte[] Bzip2(byte[] d)
    {
        var ms = new MemoryStream();
        using (var z = BZip2Stream.Create(ms, SharpCompress.Compressors.CompressionMode.Compress, false, leaveOpen: true, false)) z.Write(d);
        return WithSizeTrailer(ms.ToArray(), d.Length);
    }

    private static byte[] Zstd(byte[] d)
    {
        var ms = new MemoryStream();
        using (var z = new ZstdCompressionStream(ms, 3, 1 << 16, leaveOpen: true)) z.Write(d);
        return WithSizeTrailer(ms.ToArray(), d.Length);
    }

    /// <summary>The lz4 legacy frame, built from K4os block compression: magic, then (le32 size, block) per 8 MiB.</summary>
    internal static byte[] Lz4Legacy(byte[] d, bool repeatMagic = false)
    {
        var ms = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, 0x184C2102);
        ms.Write(word);
        for (int at = 0; at < d.Length; at += 8 << 20)
        {
            if (repeatMagic && at > 0) ms.Write(word.ToArray());
            var block = d.AsSpan(at, Math.Min(8 << 20, d.Length - at));
            var target = new byte[LZ4Codec.MaximumOutputSize(block.Length)];
            int n = LZ4Codec.Encode(block, target, LZ4Level.L00_FAST);
            var size = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(size, n);
            ms.Write(size);
            ms.Write(target, 0, n);
        }
        return WithSizeTrailer(ms.ToArray(), d.Length);
    }

    /// <summary>xz and lzma have no encoder here that writes Linux's container; use the xz-utils binaries as Linux's build does.</summary>
    private static byte[]? External(string tool, params string[] args)
    {
        string? path = new[] { "/usr/bin", "/bin", "/usr/local/bin" }.Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);
        if (path == null) return null;
        var psi = new ProcessStartInfo(path) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = new MemoryStream();
        var copy = p.StandardOutput.BaseStream.CopyToAsync(output);
        p.StandardInput.BaseStream.Write(Elf);
        p.StandardInput.Close();
        copy.Wait();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return WithSizeTrailer(output.ToArray(), Elf.Length);
    }

    private static void RoundTrip(byte[] payload, KernelCompression expected, byte[]? original = null)
    {
        var k = KernelImage.FromBytes(WrapInBzImage(payload));
        Assert.Equal(KernelContainer.BzImage, k.Container);
        Assert.Equal(expected, k.Compression);
        Assert.Equal((ushort)0x020f, k.BootProtocolVersion);
        Assert.True(k.Elf.Span.SequenceEqual(original ?? Elf), $"{expected}: decompressed image differs");
        // And the truncated payload is refused with a message, whatever the decoder does inside.
        var cut = payload[..(payload.Length / 2)];
        var ex = Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage(cut)));
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
    }

    [Fact] public void GzipPayload() => RoundTrip(Gzip(Elf), KernelCompression.Gzip);
    [Fact] public void GzipPayloadWithATrailerToo() => RoundTrip(WithSizeTrailer(Gzip(Elf), Elf.Length), KernelCompression.Gzip);
    [Fact] public void Bzip2Payload() => RoundTrip(Bzip2(Elf), KernelCompression.Bzip2);
    [Fact] public void ZstdPayload() => RoundTrip(Zstd(Elf), KernelCompression.Zstd);
    [Fact] public void Lz4LegacyPayload() => RoundTrip(Lz4Legacy(Elf), KernelCompression.Lz4);
    [Fact] public void Lz4LegacyMultiBlockWithRepeatedMagic() => RoundTrip(Lz4Legacy(BigElf, repeatMagic: true), KernelCompression.Lz4, BigElf);

    [SkippableFact]
    public void XzPayload()
    {
        var p = External("xz", "--check=crc32", "--x86", "--lzma2=preset=6", "-c");
        Skip.If(p == null, "xz (xz-utils) not installed");
        RoundTrip(p!, KernelCompression.Xz);
    }

    [SkippableFact]
    public void LzmaPayload()
    {
        var p = External("xz", "--format=lzma", "-9", "-c");
        Skip.If(p == null, "xz (xz-utils) not installed");
        RoundTrip(p!, KernelCompression.Lzma);
    }

    [Fact]
    public void PlainElfPassesThrough()
    {
        var k = KernelImage.FromBytes(Elf);
        Assert.Equal(KernelContainer.Elf, k.Container);
        Assert.Equal(KernelCompression.None, k.Compression);
    }

    [Fact]
    public void UnknownFormatIsNamed() =>
        Assert.Contains("unknown compression format", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage(new byte[100]))).Message);

    [Fact]
    public void LzoIsRefusedClearly() =>
        Assert.Contains("LZO", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage([0x89, (byte)'L', (byte)'Z', (byte)'O', 0, 0x0d, 0x0a, 0x1a, 0x0a]))).Message);

    [Fact]
    public void OutputLimitIsEnforcedForEveryFormat()
    {
        foreach (var payload in new[] { Gzip(Elf), Bzip2(Elf), Zstd(Elf), Lz4Legacy(Elf) })
        {
            var ex = Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage(payload), maxDecompressed: 512 << 10));
            Assert.Contains("limit", ex.Message);
        }
    }

    [Fact]
    public void Lz4TrailerMismatchAndCorruptBlock()
    {
        var p = Lz4Legacy(Elf);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(p.Length - 4), Elf.Length + 10);
        Assert.Contains("declares", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage(p))).Message);
        p = Lz4Legacy(Elf);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(4), 0x7fff_fff0); // first block size beyond the data
        Assert.Contains("truncated or corrupt", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage(p))).Message);
    }

    [Fact]
    public void CorruptedPayloadsFailCleanly()
    {
        var rng = new Random(99);
        foreach (var payload in new[] { Gzip(Elf), Bzip2(Elf), Zstd(Elf), Lz4Legacy(Elf) })
            for (int round = 0; round < 3; round++)
            {
                var p = (byte[])payload.Clone();
                for (int i = 0; i < 8; i++) p[rng.Next(16, p.Length - 4)] ^= (byte)rng.Next(1, 256);
                try
                {
                    var k = KernelImage.FromBytes(WrapInBzImage(p));
                    // A flip the format cannot detect must at least not yield a different length silently.
                    Assert.Equal(Elf.Length, k.Elf.Length);
                }
                catch (PvBuildException) { }
            }
    }

    [Fact]
    public void BzImageHeaderChecks()
    {
        var gz = Gzip(Elf);
        Assert.Contains("too old", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(WrapInBzImage(gz, version: 0x0207))).Message);
        var f = WrapInBzImage(gz);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(0x24c), (uint)f.Length);
        Assert.Contains("runs past", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(f)).Message);
        BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(0x248), 0xffff_fff0);
        Assert.Contains("beyond the file", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(f)).Message);
        Assert.Contains("truncated", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(f.AsMemory(0, 0x210))).Message);
    }
}
