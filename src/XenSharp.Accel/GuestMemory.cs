using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace XenSharp.Accel;

/// <summary>
/// A domain's RAM: one memfd, mapped shared into this process. The fd lets back ends and hole punching
/// (ballooning) act on the same pages. Every access is bounds-checked: an address from a guest is never
/// trusted to be inside the region.
/// </summary>
public sealed unsafe class GuestMemory : IDisposable
{
    private readonly int _fd;
    private nint _base;

    public ulong Size { get; }
    public int FileDescriptor => _fd;
    public nint HostAddress => _base != 0 ? _base : throw new ObjectDisposedException(nameof(GuestMemory));

    public GuestMemory(ulong size, string name = "xensharp-guest")
    {
        if (size == 0 || (size & 0xfff) != 0)
            throw new ArgumentException($"guest memory size {size} must be a non-zero multiple of 4096", nameof(size));
        _fd = Posix.Check(Posix.memfd_create(name, Posix.MFD_CLOEXEC), "memfd_create");
        try
        {
            Posix.Check(Posix.ftruncate(_fd, (long)size), "ftruncate(memfd)");
            nint p = Posix.mmap(0, (nuint)size, Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_SHARED | Posix.MAP_NORESERVE, _fd, 0);
            if (p == Posix.MapFailed) Posix.Check(-1, "mmap(memfd)");
            _base = p;
        }
        catch
        {
            Posix.close(_fd);
            throw;
        }
        Size = size;
    }

    public bool Contains(ulong address, ulong length) => length <= Size && address <= Size - length;

    /// <summary>The bytes [address, address+length). Throws <see cref="GuestMemoryException"/> when any byte lies outside.</summary>
    public Span<byte> Span(ulong address, int length)
    {
        if (length < 0 || !Contains(address, (ulong)length))
            throw new GuestMemoryException(address, length, Size);
        return new Span<byte>((byte*)HostAddress + address, length);
    }

    /// <summary>One whole 4 KiB frame.</summary>
    public Span<byte> Frame(ulong pfn) => Span(checked(pfn << 12), 4096);

    public ulong FrameCount => Size >> 12;

    public byte ReadByte(ulong a) => Span(a, 1)[0];
    public ushort ReadUInt16(ulong a) => BinaryPrimitives.ReadUInt16LittleEndian(Span(a, 2));
    public uint ReadUInt32(ulong a) => BinaryPrimitives.ReadUInt32LittleEndian(Span(a, 4));
    public ulong ReadUInt64(ulong a) => BinaryPrimitives.ReadUInt64LittleEndian(Span(a, 8));
    public void WriteByte(ulong a, byte v) => Span(a, 1)[0] = v;
    public void WriteUInt16(ulong a, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(Span(a, 2), v);
    public void WriteUInt32(ulong a, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Span(a, 4), v);
    public void WriteUInt64(ulong a, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(Span(a, 8), v);
    public void Write(ulong a, ReadOnlySpan<byte> data) => data.CopyTo(Span(a, data.Length));
    public void Read(ulong a, Span<byte> into) => Span(a, into.Length).CopyTo(into);

    /// <summary>Reads a NUL-terminated string of at most <paramref name="max"/> bytes.</summary>
    public string ReadCString(ulong a, int max)
    {
        int n = (int)Math.Min((ulong)max, Size > a ? Size - a : 0);
        var s = Span(a, n);
        int end = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? s : s[..end]);
    }

    /// <summary>A reference to an aligned 64-bit word, for atomic operations shared with a running guest.</summary>
    public ref long Int64At(ulong a)
    {
        if ((a & 7) != 0) throw new GuestMemoryException(a, 8, Size);
        return ref MemoryMarshal.Cast<byte, long>(Span(a, 8))[0];
    }

    public ref int Int32At(ulong a)
    {
        if ((a & 3) != 0) throw new GuestMemoryException(a, 4, Size);
        return ref MemoryMarshal.Cast<byte, int>(Span(a, 4))[0];
    }

    /// <summary>Gives frames back to the host: the pages read as zero afterwards and no longer count against host memory.</summary>
    public void Discard(ulong address, ulong length)
    {
        if ((address & 0xfff) != 0 || (length & 0xfff) != 0 || !Contains(address, length))
            throw new GuestMemoryException(address, (int)Math.Min(length, int.MaxValue), Size);
        Posix.Check(Posix.fallocate(_fd, Posix.FALLOC_FL_PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, (long)address, (long)length), "fallocate(PUNCH_HOLE)");
    }

    /// <summary>
    /// Bytes of host memory the memfd holds right now (<c>st_blocks</c> × 512): pages the guest has touched, less
    /// those given back with <see cref="Discard"/>. This is the domain's real footprint, not its reservation.
    /// </summary>
    public ulong AllocatedBytes
    {
        get
        {
            if (_base == 0) return 0;
            return (ulong)Posix.FStat(_fd, "memfd").AllocatedBytes;
        }
    }

    public void Dispose()
    {
        nint b = Interlocked.Exchange(ref _base, 0);
        if (b != 0)
        {
            Posix.munmap(b, (nuint)Size);
            Posix.close(_fd);
        }
    }
}

/// <summary>An access outside a domain's memory: a bad guest pointer, never a host crash.</summary>
public sealed class GuestMemoryException(ulong address, long length, ulong size)
    : Exception($"guest-physical access [0x{address:x}, +{length}) lies outside guest memory of {size} bytes")
{
    public ulong Address { get; } = address;
}
