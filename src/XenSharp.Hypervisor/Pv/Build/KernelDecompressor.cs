using System.Buffers.Binary;
using System.IO.Compression;
using K4os.Compression.LZ4;
using SharpCompress.Compressors.BZip2;
using SharpCompress.Compressors.LZMA;
using SharpCompress.Compressors.Xz;
using ZstdDecompressionStream = SharpCompress.Compressors.ZStandard.DecompressionStream;

namespace XenSharp.Hypervisor.Pv.Build;

public enum KernelCompression { None, Gzip, Bzip2, Xz, Lzma, Lzo, Lz4, Zstd }

/// <summary>
/// Decompresses a bzImage payload. The format is sniffed from its magic bytes, in the order libxenguest tries them.
/// Linux appends the uncompressed size (le32) after every format but gzip; decoders stop at the end of their
/// stream, so that trailer is ignored except by LZ4, whose legacy frame has no end marker.
/// Output is capped: a payload that inflates beyond the limit is refused, not buffered.
/// </summary>
public static class KernelDecompressor
{
    public const long DefaultMaxOutput = 256L << 20;

    private const uint Lz4LegacyMagic = 0x184C2102;
    /// <summary>The Linux lz4 legacy format compresses 8 MiB blocks.</summary>
    private const int Lz4LegacyBlockSize = 8 << 20;

    public static KernelCompression Sniff(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith((ReadOnlySpan<byte>)[0x1f, 0x8b])) return KernelCompression.Gzip;
        if (data.StartsWith("BZh"u8)) return KernelCompression.Bzip2;
        if (data.StartsWith((ReadOnlySpan<byte>)[0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00])) return KernelCompression.Xz;
        if (data.StartsWith((ReadOnlySpan<byte>)[0x28, 0xb5, 0x2f, 0xfd])) return KernelCompression.Zstd;
        if (data.StartsWith((ReadOnlySpan<byte>)[0x5d, 0x00])) return KernelCompression.Lzma;
        if (data.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'L', (byte)'Z', (byte)'O'])) return KernelCompression.Lzo;
        if (data.StartsWith((ReadOnlySpan<byte>)[0x02, 0x21, 0x4c, 0x18])) return KernelCompression.Lz4;
        return KernelCompression.None;
    }

    /// <summary>Decompresses <paramref name="payload"/>; throws <see cref="PvBuildException"/> for unknown, corrupt, truncated or oversized data.</summary>
    public static byte[] Decompress(ReadOnlyMemory<byte> payload, out KernelCompression format, long maxOutput = DefaultMaxOutput)
    {
        if (maxOutput <= 0 || maxOutput > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(maxOutput));
        format = Sniff(payload.Span);
        var f = format;
        try
        {
            return f switch
            {
                KernelCompression.Gzip => Drain(new GZipStream(AsStream(payload), CompressionMode.Decompress), f, maxOutput),
                KernelCompression.Bzip2 => Drain(BZip2Stream.Create(AsStream(payload), SharpCompress.Compressors.CompressionMode.Decompress,
                    decompressConcatenated: false, leaveOpen: false, tolerateTruncatedStream: false), f, maxOutput),
                KernelCompression.Xz => Drain(new XZStream(AsStream(payload)), f, maxOutput),
                KernelCompression.Lzma => DecompressLzma(payload, maxOutput),
                KernelCompression.Zstd => Drain(new ZstdDecompressionStream(AsStream(payload), 1 << 17, checkEndOfStream: false, leaveOpen: false), f, maxOutput),
                KernelCompression.Lz4 => DecompressLz4Legacy(payload.Span, maxOutput),
                KernelCompression.Lzo => throw new PvBuildException("bzImage payload is LZO-compressed, which XenSharp does not support; use a kernel built with gzip, xz, lzma, bzip2, lz4 or zstd"),
                _ => throw new PvBuildException($"unknown compression format of bzImage payload (first bytes {Convert.ToHexString(payload.Span[..Math.Min(8, payload.Length)])})"),
            };
        }
        catch (PvBuildException) { throw; }
        catch (Exception e) when (e is InvalidDataException or IOException or EndOfStreamException or InvalidOperationException
                                    or ArgumentException or IndexOutOfRangeException or NotSupportedException
                                    or SharpCompress.Common.ArchiveException or SharpCompress.Compressors.ZStandard.ZstdException)
        {
            throw new PvBuildException($"{f} payload is corrupt or truncated: {e.Message}", e);
        }
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> m) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(m, out var seg)
            ? new MemoryStream(seg.Array!, seg.Offset, seg.Count, writable: false)
            : new MemoryStream(m.ToArray(), writable: false);

    private static byte[] Drain(Stream s, KernelCompression f, long max)
    {
        using (s)
        {
            long total = 0;
            var chunks = new List<(byte[] Data, int Length)>();
            while (true)
            {
                var chunk = new byte[1 << 20];
                int filled = 0;
                while (filled < chunk.Length)
                {
                    int n = s.Read(chunk, filled, chunk.Length - filled);
                    if (n == 0) break;
                    filled += n;
                }
                total += filled;
                if (total > max) throw new PvBuildException($"{f} payload decompresses to more than the {max >> 20} MiB limit");
                if (filled > 0) chunks.Add((chunk, filled));
                if (filled < chunk.Length) break;
            }
            if (total == 0) throw new PvBuildException($"{f} payload decompressed to nothing");
            var result = new byte[total];
            long at = 0;
            foreach (var (data, length) in chunks)
            {
                Buffer.BlockCopy(data, 0, result, (int)at, length);
                at += length;
            }
            return result;
        }
    }

    /// <summary>The .lzma ("alone") container: 5 property bytes, a le64 size (all ones = unknown, end marker follows), raw LZMA.</summary>
    private static byte[] DecompressLzma(ReadOnlyMemory<byte> payload, long max)
    {
        var span = payload.Span;
        if (span.Length < 13) throw new PvBuildException("lzma payload is truncated: shorter than its 13-byte header");
        byte[] props = span[..5].ToArray();
        long size = BinaryPrimitives.ReadInt64LittleEndian(span[5..13]);
        if (size > max) throw new PvBuildException($"lzma payload declares {size} bytes, more than the {max >> 20} MiB limit");
        var input = AsStream(payload[13..]);
        return Drain(LzmaStream.Create(props, input, input.Length, size < 0 ? -1 : size, leaveOpen: false), KernelCompression.Lzma, max);
    }

    /// <summary>
    /// The lz4 "legacy" frame Linux uses: magic, then blocks of le32 compressed size + data, each inflating to at most
    /// 8 MiB; the magic may repeat between blocks. Linux appends the le32 uncompressed size, which ends the frame
    /// (the format has no end marker), as libxenguest also assumes.
    /// </summary>
    private static byte[] DecompressLz4Legacy(ReadOnlySpan<byte> data, long max)
    {
        if (data.Length <= 8) throw new PvBuildException("lz4 payload is truncated: no room for a block and the size trailer");
        uint expected = BinaryPrimitives.ReadUInt32LittleEndian(data[^4..]);
        if (expected == 0) throw new PvBuildException("lz4 payload's size trailer is 0");
        if (expected > max) throw new PvBuildException($"lz4 payload declares {expected} bytes, more than the {max >> 20} MiB limit");
        var input = data[4..^4];
        var output = new byte[expected];
        int produced = 0;
        while (input.Length > 0)
        {
            if (input.Length < 4) throw new PvBuildException($"lz4 payload is truncated: {input.Length} stray bytes where a block header should be");
            uint chunk = BinaryPrimitives.ReadUInt32LittleEndian(input);
            input = input[4..];
            if (chunk == Lz4LegacyMagic) continue;
            if (chunk == 0 || chunk > (uint)input.Length)
                throw new PvBuildException($"lz4 payload is truncated or corrupt: block of {chunk} bytes with {input.Length} left");
            int room = Math.Min(output.Length - produced, Lz4LegacyBlockSize);
            if (room == 0) throw new PvBuildException($"lz4 payload inflates beyond its declared size of {expected} bytes");
            int n = LZ4Codec.Decode(input[..(int)chunk], output.AsSpan(produced, room));
            if (n < 0) throw new PvBuildException($"lz4 block at payload offset {data.Length - 4 - input.Length} is corrupt (or inflates beyond the declared size)");
            produced += n;
            input = input[(int)chunk..];
        }
        if (produced != output.Length)
            throw new PvBuildException($"lz4 payload inflated to {produced} bytes but its trailer declares {expected}");
        return output;
    }
}
