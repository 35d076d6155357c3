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
                KernelCompression.Gzip => CheckGzipSize(payload.Span, Drain(new GZipStream(AsStream(payload), CompressionMode.Decompress), f, maxOutput)),
                KernelCompression.Bzip2 => Drain(BZip2Stream.Create(AsStream(payload), SharpCompress.Compressors.CompressionMode.Decompress,
                    decompressConcatenated: false, leaveOpen: false, tolerateTruncatedStream: false), f, maxOutput),
                KernelCompression.Xz => Drain(new XZStream(AsStream(payload)), f, maxOutput),
                KernelCompression.Lzma => DecompressLzma(payload, maxOutput),
                KernelCompression.Zstd => Drain(new ZstdDecompressionStream(AsStream(payload[..ZstdFramesLength(payload.Span)]), 1 << 17,
                    checkEndOfStream: true, leaveOpen: false), f, maxOutput),
                KernelCompression.Lz4 => DecompressLz4Legacy(payload.Span, maxOutput),
                KernelCompression.Lzo => throw new PvBuildException("bzImage payload is LZO-compressed, which XenSharp does not support; use a kernel built with gzip, xz, lzma, bzip2, lz4 or zstd"),
                _ => throw new PvBuildException($"unknown compression format of bzImage payload (first bytes {Convert.ToHexString(payload.Span[..Math.Min(8, payload.Length)])})"),
            };
        }
        // Decoders fed hostile data throw whatever their internals hit; all of it means "bad payload".
        catch (Exception e) when (e is not PvBuildException and not OutOfMemoryException)
        {
            throw new PvBuildException($"{f} payload is corrupt or truncated: {e.Message}", e);
        }
    }

    /// <summary>
    /// .NET's inflater stops quietly at the end of a truncated deflate stream, so check the gzip ISIZE (output length
    /// mod 2^32) at the member's end, which is the payload's end or 4 bytes before it when Linux's size trailer follows.
    /// </summary>
    private static byte[] CheckGzipSize(ReadOnlySpan<byte> payload, byte[] output)
    {
        uint size = unchecked((uint)output.Length);
        bool ok = payload.Length >= 18 && (BinaryPrimitives.ReadUInt32LittleEndian(payload[^4..]) == size
            || (payload.Length >= 22 && BinaryPrimitives.ReadUInt32LittleEndian(payload[^8..]) == size));
        if (!ok) throw new PvBuildException($"Gzip payload is truncated or corrupt: it inflated to {output.Length} bytes but its gzip trailer disagrees");
        return output;
    }

    /// <summary>
    /// The length of the zstd (and skippable) frames at the start of <paramref name="data"/>, found by walking frame
    /// headers and block headers, so the decoder never sees Linux's 4-byte size trailer (which it would take for a bad frame).
    /// </summary>
    private static int ZstdFramesLength(ReadOnlySpan<byte> data)
    {
        int at = 0;
        while (data.Length - at >= 4)
        {
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(data[at..]);
            if ((magic & 0xFFFFFFF0) == 0x184D2A50) // skippable frame: magic, le32 size, data
            {
                if (data.Length - at < 8) break;
                ulong skip = 8UL + BinaryPrimitives.ReadUInt32LittleEndian(data[(at + 4)..]);
                if (skip > (ulong)(data.Length - at)) throw new PvBuildException("Zstd payload is truncated inside a skippable frame");
                at += (int)skip;
                continue;
            }
            if (magic != 0xFD2FB528) break;
            if (data.Length - at < 5) throw new PvBuildException("Zstd payload is truncated inside a frame header");
            byte fhd = data[at + 4];
            int fcsFlag = fhd >> 6, singleSegment = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1, dictIdFlag = fhd & 3;
            int header = 1 + (singleSegment == 0 ? 1 : 0) + (dictIdFlag == 3 ? 4 : dictIdFlag)
                + (fcsFlag == 0 ? singleSegment : 1 << fcsFlag);
            long pos = at + 4L + header;
            while (true)
            {
                if (pos + 3 > data.Length) throw new PvBuildException("Zstd payload is truncated: a block header is missing");
                int bh = data[(int)pos] | data[(int)pos + 1] << 8 | data[(int)pos + 2] << 16;
                bool last = (bh & 1) != 0;
                int type = (bh >> 1) & 3, size = bh >> 3;
                if (type == 3) throw new PvBuildException("Zstd payload is corrupt: reserved block type");
                pos += 3 + (type == 1 ? 1 : size); // an RLE block stores one byte
                if (pos > data.Length) throw new PvBuildException("Zstd payload is truncated inside a block");
                if (last) break;
            }
            pos += checksum * 4;
            if (pos > data.Length) throw new PvBuildException("Zstd payload is truncated: the frame checksum is missing");
            at = (int)pos;
        }
        if (at == 0) throw new PvBuildException("Zstd payload holds no complete frame");
        return at;
    }

    private static string Limit(long max) => max % (1 << 20) == 0 ? $"{max >> 20} MiB" : $"{max}-byte";

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
                if (total > max) throw new PvBuildException($"{f} payload decompresses to more than the {Limit(max)} limit");
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
        if (size > max) throw new PvBuildException($"lzma payload declares {size} bytes, more than the {Limit(max)} limit");
        // Input size unknown (-1): the decoder then stops at the end marker or declared size and ignores Linux's trailer.
        var output = Drain(LzmaStream.Create(props, AsStream(payload[13..]), -1, size < 0 ? -1 : size, leaveOpen: false), KernelCompression.Lzma, max);
        if (size >= 0 && output.Length != size)
            throw new PvBuildException($"lzma payload is truncated: it inflated to {output.Length} of its declared {size} bytes");
        return output;
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
        if (expected > max) throw new PvBuildException($"lz4 payload declares {expected} bytes, more than the {Limit(max)} limit");
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
