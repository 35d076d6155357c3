using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace XenSharp.Dom0.Block;

/// <summary>Opening an image failed (missing file, locked by another domain, ...).</summary>
public sealed class DiskImageException(string message) : Exception(message);

/// <summary>
/// A raw image file or block device behind a vbd: positional I/O, O_DIRECT when the file system takes it (bounce
/// buffers aligned to 4 KiB), flock-based exclusivity (read-write: exclusive; read-only: shared), fdatasync for
/// flushes and hole punching for discards.
/// </summary>
public sealed unsafe partial class DiskImage : IDiskImage
{
    private const int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000, O_DIRECT = 0x4000;
    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
    private const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
    private const ulong BLKGETSIZE64 = 0x80081272;
    private const int Align = 4096;

    private static readonly ConcurrentDictionary<(ulong Dev, ulong Ino), (uint Domid, bool Rw, int Count)> s_holders = new();
    private readonly SafeFileHandle _fd;
    private readonly (ulong, ulong) _key;
    private readonly object _bounceLock = new();
    private byte* _bounce;
    private int _bounceSize;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(SafeFileHandle fd, int op);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long len);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(SafeFileHandle fd, ulong req, out ulong value);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pread(SafeFileHandle fd, byte* buf, nint count, long offset);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pwrite(SafeFileHandle fd, byte* buf, nint count, long offset);

    private DiskImage(SafeFileHandle fd, string path, bool readOnly, bool direct, bool isBlock, long size, (ulong, ulong) key)
    {
        _fd = fd;
        Path = path;
        ReadOnly = readOnly;
        Direct = direct;
        IsBlockDevice = isBlock;
        SizeBytes = size;
        _key = key;
    }

    public string Path { get; }
    public string Format => "raw";
    public bool ReadOnly { get; }
    /// <summary>True when opened with O_DIRECT; false after falling back (see <see cref="Note"/>).</summary>
    public bool Direct { get; }
    public string? Note { get; private init; }
    public bool IsBlockDevice { get; }
    public long SizeBytes { get; private set; }
    public ulong Sectors => (ulong)SizeBytes / Blkif.SectorSize;
    /// <summary>Hole punching works on regular files; block devices get no discard.</summary>
    public bool CanDiscard => !IsBlockDevice && !ReadOnly;

    /// <summary>Opens <paramref name="path"/> for domain <paramref name="domid"/>; a read-write open excludes every other open of the same image.</summary>
    public static DiskImage Open(string path, bool readOnly, uint domid, bool tryDirect = true)
    {
        var key = DevIno(path); // throws for a missing path
        bool isBlock = IsBlockDev(path);
        int baseFlags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
        string? note = null;
        bool direct = false;
        SafeFileHandle? fd = null;
        if (tryDirect)
        {
            int raw = open(path, baseFlags | O_DIRECT, 0);
            if (raw >= 0)
            {
                fd = new SafeFileHandle(raw, true);
                direct = true;
            }
            else note = $"O_DIRECT not supported on {path} (errno {Marshal.GetLastPInvokeError()}): using the page cache";
        }
        if (fd is null)
        {
            int raw = open(path, baseFlags, 0);
            if (raw < 0) throw new DiskImageException($"cannot open {path}: errno {Marshal.GetLastPInvokeError()}");
            fd = new SafeFileHandle(raw, true);
        }

        // Exclusivity: first within this process (to name the other domain), then across processes with flock.
        bool taken = false;
        s_holders.AddOrUpdate(key,
            _ => { taken = true; return (domid, !readOnly, 1); },
            (_, h) =>
            {
                if (h.Rw || !readOnly)
                {
                    fd.Dispose();
                    throw new DiskImageException($"{path} is already in use {(h.Rw ? "read-write" : "read-only")} by domain {h.Domid}");
                }
                taken = true;
                return (h.Domid, false, h.Count + 1);
            });
        if (!taken) throw new DiskImageException($"{path}: lock failed");
        if (flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0)
        {
            Release(key);
            fd.Dispose();
            throw new DiskImageException($"{path} is locked by another process (flock errno {Marshal.GetLastPInvokeError()})");
        }

        long size;
        if (isBlock)
        {
            if (ioctl(fd, BLKGETSIZE64, out ulong sz) != 0) { Release(key); fd.Dispose(); throw new DiskImageException($"{path}: BLKGETSIZE64 failed"); }
            size = (long)sz;
        }
        else size = RandomAccess.GetLength(fd);

        var img = new DiskImage(fd, path, readOnly, direct, isBlock, size, key) { Note = note };
        if (direct && (size % Align != 0 || !img.ProbeDirect()))
        {
            img.Dispose();
            var again = Open(path, readOnly, domid, tryDirect: false);
            return new DiskImage(again.DetachHandle(), path, readOnly, false, isBlock, size, key)
            { Note = $"O_DIRECT unusable on {path} (size not a multiple of {Align} or reads fail): using the page cache" };
        }
        return img;
    }

    /// <summary>
    /// Opens the container file of a structured format (qcow2): the page cache (its metadata I/O is small and
    /// unaligned; durability comes from <see cref="Flush"/>), the same locking, and writes may extend the file.
    /// </summary>
    internal static DiskImage OpenGrowable(string path, bool readOnly, uint domid)
    {
        var img = Open(path, readOnly, domid, tryDirect: false);
        img._growable = true;
        return img;
    }

    private bool _growable;
    private bool _detached;
    private SafeFileHandle DetachHandle() { _detached = true; return _fd; }

    private static void Release((ulong, ulong) key)
    {
        while (s_holders.TryGetValue(key, out var h))
        {
            if (h.Count <= 1) { if (s_holders.TryRemove(new(key, h))) return; }
            else if (s_holders.TryUpdate(key, (h.Domid, h.Rw, h.Count - 1), h)) return;
        }
    }

    private bool ProbeDirect()
    {
        if (SizeBytes < Align) return true;
        var buf = new byte[Align];
        try { Read(0, buf); return true; }
        catch (IOException) { return false; }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct StatBuf { public fixed byte B[256]; }
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat(string path, out StatBuf st);

    private static (ulong, ulong) DevIno(string path)
    {
        if (stat(path, out var st) != 0) throw new DiskImageException($"cannot stat {path}: errno {Marshal.GetLastPInvokeError()}");
        // x86_64 struct stat: st_dev at 0, st_ino at 8, st_mode at 24.
        return (*(ulong*)st.B, *(ulong*)(st.B + 8));
    }

    private static bool IsBlockDev(string path)
    {
        if (stat(path, out var st) != 0) return false;
        uint mode = *(uint*)(st.B + 24);
        return (mode & 0xF000) == 0x6000;
    }

    private byte* Bounce(int len)
    {
        if (_bounceSize < len)
        {
            if (_bounce != null) NativeMemory.AlignedFree(_bounce);
            _bounceSize = (len + Align - 1) & ~(Align - 1);
            _bounce = (byte*)NativeMemory.AlignedAlloc((nuint)_bounceSize, Align);
        }
        return _bounce;
    }

    /// <summary>Reads <paramref name="dst"/>.Length bytes at <paramref name="offset"/> (sector-aligned).</summary>
    public void Read(long offset, Span<byte> dst)
    {
        if (offset < 0 || offset + dst.Length > SizeBytes) throw new ArgumentOutOfRangeException(nameof(offset));
        lock (_bounceLock)
        {
            if (!Direct) { Full(offset, dst, write: false); return; }
            // O_DIRECT: whole aligned blocks through the bounce buffer.
            long start = offset & ~(long)(Align - 1);
            long end = Math.Min((offset + dst.Length + Align - 1) & ~(long)(Align - 1), (SizeBytes + Align - 1) & ~(long)(Align - 1));
            int len = (int)(end - start);
            byte* b = Bounce(len);
            var span = new Span<byte>(b, len);
            span.Clear();
            int got = Io(start, b, len, write: false);
            if (got < (int)(offset - start) + dst.Length) throw new IOException($"{Path}: short read at {offset}");
            span.Slice((int)(offset - start), dst.Length).CopyTo(dst);
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> src)
    {
        if (ReadOnly) throw new IOException($"{Path} is read-only");
        if (offset < 0 || (offset + src.Length > SizeBytes && !_growable)) throw new ArgumentOutOfRangeException(nameof(offset));
        lock (_bounceLock)
        {
            if (!Direct)
            {
                fixed (byte* p = src) Full(offset, new Span<byte>(p, src.Length), write: true);
                SizeBytes = Math.Max(SizeBytes, offset + src.Length);
                return;
            }
            // O_DIRECT: read-modify-write of the aligned blocks covering the range.
            long start = offset & ~(long)(Align - 1);
            long end = (offset + src.Length + Align - 1) & ~(long)(Align - 1);
            int len = (int)(end - start);
            byte* b = Bounce(len);
            var span = new Span<byte>(b, len);
            if (start != offset || end != offset + src.Length)
            {
                span.Clear();
                Io(start, b, len, write: false);
            }
            src.CopyTo(span.Slice((int)(offset - start)));
            // Never extend the file: write only what lies inside it (the tail of an odd-sized image page-cached).
            long inside = Math.Min(end, SizeBytes) - start;
            long alignedInside = inside & ~(long)(Align - 1);
            if (alignedInside > 0) Io(start, b, (int)alignedInside, write: true, exact: true);
            if (inside > alignedInside)
                throw new IOException($"{Path}: O_DIRECT write of a partial tail block");
        }
    }

    private void Full(long offset, Span<byte> buf, bool write)
    {
        fixed (byte* p = buf)
        {
            int n = Io(offset, p, buf.Length, write, exact: true);
            if (n != buf.Length) throw new IOException($"{Path}: short {(write ? "write" : "read")} at {offset}");
        }
    }

    private int Io(long offset, byte* p, int len, bool write, bool exact = false)
    {
        int done = 0;
        while (done < len)
        {
            nint r = write ? pwrite(_fd, p + done, len - done, offset + done) : pread(_fd, p + done, len - done, offset + done);
            if (r < 0)
            {
                int e = Marshal.GetLastPInvokeError();
                if (e == 4) continue;
                throw new IOException($"{Path}: {(write ? "pwrite" : "pread")} errno {e}");
            }
            if (r == 0) break;
            done += (int)r;
        }
        if (exact && done != len) throw new IOException($"{Path}: short I/O at {offset}");
        return done;
    }

    /// <summary>fdatasync: everything written so far is on stable storage when this returns.</summary>
    public void Flush()
    {
        if (fdatasync(_fd) != 0) throw new IOException($"{Path}: fdatasync errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Punches a hole (the range reads back as zeros; the file keeps its size).</summary>
    public void Discard(long offset, long length)
    {
        if (!CanDiscard) throw new IOException($"{Path}: discard not supported");
        if (offset < 0 || length < 0 || offset + length > SizeBytes) throw new ArgumentOutOfRangeException(nameof(offset));
        if (length == 0) return;
        if (fallocate(_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0)
            throw new IOException($"{Path}: fallocate(PUNCH_HOLE) errno {Marshal.GetLastPInvokeError()}");
    }

    private int _disposed;
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (!_detached)
        {
            Release(_key);
            _fd.Dispose();
        }
        lock (_bounceLock)
        {
            if (_bounce != null) NativeMemory.AlignedFree(_bounce);
            _bounce = null;
        }
    }
}
