using System.Buffers.Binary;

namespace XenSharp.Dom0.Block.Qcow2;

/// <summary>A corrupt or hostile qcow2 structure met during I/O: that request fails, the process and image carry on.</summary>
internal sealed class Qcow2CorruptException(string message) : IOException(message);

/// <summary>
/// The host file holding a qcow2 image: positional I/O through the container <see cref="DiskImage"/> (its lock,
/// page cache and fdatasync), reads past the end as zeros (QEMU leaves the tail of a last cluster unwritten), and the
/// big-endian fields qcow2 stores.
/// </summary>
internal sealed class Qcow2File(DiskImage container) : IDisposable
{
    public string Path => container.Path;
    public bool ReadOnly => container.ReadOnly;
    public long Length => container.SizeBytes;

    public void Read(long offset, Span<byte> dst)
    {
        long inside = Math.Clamp(Length - offset, 0, dst.Length);
        if (inside > 0) container.Read(offset, dst[..(int)inside]);
        dst[(int)inside..].Clear();
    }

    public byte[] Read(long offset, int length)
    {
        var b = new byte[length];
        Read(offset, b);
        return b;
    }

    public void Write(long offset, ReadOnlySpan<byte> src)
    {
        container.Write(offset, src);
        Written?.Invoke(offset, src);
    }

    /// <summary>Observes every write and sync in order: the crash-consistency tests replay them as a power cut would.</summary>
    internal WriteObserver? Written;
    internal Action? Synced;
    internal delegate void WriteObserver(long offset, ReadOnlySpan<byte> data);

    public void WriteU64(long offset, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        Write(offset, b);
    }

    /// <summary>fdatasync: the write-ordering barrier of every metadata update.</summary>
    public void Sync()
    {
        container.Flush();
        Synced?.Invoke();
    }

    public void Dispose() => container.Dispose();
}
