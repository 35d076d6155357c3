using System.Buffers.Binary;

namespace XenSharp.Hypervisor.Pv.Build;

public enum KernelContainer { Elf, BzImage }

/// <summary>A kernel file reduced to its ELF image: an ELF64 vmlinux as is, or the decompressed payload of a bzImage.</summary>
public sealed record KernelImage(KernelContainer Container, KernelCompression Compression, ReadOnlyMemory<byte> Elf, ushort? BootProtocolVersion)
{
    public static KernelImage Load(string path, long maxDecompressed = KernelDecompressor.DefaultMaxOutput)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new PvBuildException($"kernel image {path} does not exist");
        if (info.Length > maxDecompressed) throw new PvBuildException($"kernel image {path} is {info.Length} bytes, over the {maxDecompressed >> 20} MiB limit");
        return FromBytes(File.ReadAllBytes(path), maxDecompressed);
    }

    public static KernelImage FromBytes(ReadOnlyMemory<byte> file, long maxDecompressed = KernelDecompressor.DefaultMaxOutput)
    {
        var span = file.Span;
        if (span.StartsWith(ElfImage.Magic))
            return new KernelImage(KernelContainer.Elf, KernelCompression.None, file, null);
        if (BzImage.IsBzImage(span))
        {
            var (payload, version) = BzImage.Payload(file);
            var elf = KernelDecompressor.Decompress(payload, out var format, maxDecompressed);
            if (!elf.AsSpan().StartsWith(ElfImage.Magic))
                throw new PvBuildException($"bzImage payload ({format}) did not decompress to an ELF image");
            return new KernelImage(KernelContainer.BzImage, format, elf, version);
        }
        throw new PvBuildException("kernel image is neither an ELF file nor a bzImage (no \\x7fELF magic, no \"HdrS\" at 0x202)");
    }
}

/// <summary>The x86 boot-protocol setup header of a bzImage: only what finds the compressed payload.</summary>
public static class BzImage
{
    public const int SetupSectsOffset = 0x1f1, HeaderMagicOffset = 0x202, VersionOffset = 0x206,
        PayloadOffsetOffset = 0x248, PayloadLengthOffset = 0x24c, SetupHeaderEnd = 0x250;
    /// <summary>Boot protocol 2.08 introduced payload_offset/payload_length.</summary>
    public const ushort MinimumVersion = 0x0208;

    public static bool IsBzImage(ReadOnlySpan<byte> file) =>
        file.Length >= HeaderMagicOffset + 4 && file.Slice(HeaderMagicOffset, 4).SequenceEqual("HdrS"u8);

    public static (ReadOnlyMemory<byte> Payload, ushort Version) Payload(ReadOnlyMemory<byte> file)
    {
        var s = file.Span;
        if (!IsBzImage(s)) throw new PvBuildException("not a bzImage: no \"HdrS\" at 0x202");
        if (s.Length < SetupHeaderEnd) throw new PvBuildException($"bzImage is truncated: {s.Length} bytes, its setup header ends at 0x{SetupHeaderEnd:x}");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(s[VersionOffset..]);
        if (version < MinimumVersion)
            throw new PvBuildException($"bzImage boot protocol {version >> 8}.{version & 0xff:d2} is too old; 2.08 or later carries the payload location");
        ulong offset = (ulong)(s[SetupSectsOffset] + 1) * 512 + BinaryPrimitives.ReadUInt32LittleEndian(s[PayloadOffsetOffset..]);
        ulong length = BinaryPrimitives.ReadUInt32LittleEndian(s[PayloadLengthOffset..]);
        if (offset >= (ulong)s.Length)
            throw new PvBuildException($"bzImage payload offset 0x{offset:x} lies beyond the file's {s.Length} bytes");
        if (length == 0 || offset + length > (ulong)s.Length)
            throw new PvBuildException($"bzImage payload [0x{offset:x}, +0x{length:x}) runs past the file's {s.Length} bytes");
        return (file.Slice((int)offset, (int)length), version);
    }
}
