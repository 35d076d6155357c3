using System.ComponentModel;
using System.Runtime.InteropServices;

namespace XenSharp.Accel;

/// <summary>The few libc calls the back ends and guest memory need, with errno turned into exceptions that name the call.</summary>
public static unsafe partial class Posix
{
    public const int O_RDONLY = 0, O_RDWR = 2, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;
    public const int PROT_READ = 1, PROT_WRITE = 2;
    public const int MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
    public const uint MFD_CLOEXEC = 1;
    public const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
    public const int EINTR = 4, EAGAIN = 11, ENOENT = 2, EACCES = 13, ENODEV = 19, ENXIO = 6, EPERM = 1;
    public static readonly nint MapFailed = -1;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, nint arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(nint addr, nuint length);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int memfd_create(string name, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fallocate(int fd, int mode, long offset, long length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(int fd);

    /// <summary>fstat(2) into a raw <c>struct stat</c> (x86-64 layout: 144 bytes, st_blocks at offset 64).</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int fstat(int fd, byte* statbuf);

    /// <summary>Offsets in the x86-64 <c>struct stat</c>: st_mode (32-bit), st_size and st_blocks (64-bit).</summary>
    public const int StatSize = 144, StatModeOffset = 24, StatSizeOffset = 48, StatBlocksOffset = 64;
    public const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFBLK = 0x6000;

    /// <summary>A file's type and permission bits, apparent size, and the bytes its blocks take on disk (st_blocks × 512).</summary>
    public readonly record struct FileStat(uint Mode, long Size, long AllocatedBytes)
    {
        public uint Type => Mode & S_IFMT;
    }

    /// <summary>fstat(2) of an open descriptor; <paramref name="what"/> names it in the error.</summary>
    public static FileStat FStat(int fd, string what)
    {
        byte* st = stackalloc byte[StatSize];
        Check(fstat(fd, st), $"fstat({what})");
        return ToFileStat(st);
    }

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat(string path, byte* statbuf);

    /// <summary>stat(2) of a path (symbolic links followed), or null with <see cref="LastErrno"/> set.</summary>
    public static FileStat? Stat(string path)
    {
        byte* st = stackalloc byte[StatSize];
        return stat(path, st) == 0 ? ToFileStat(st) : null;
    }

    private static FileStat ToFileStat(byte* st) =>
        new(*(uint*)(st + StatModeOffset), *(long*)(st + StatSizeOffset), *(long*)(st + StatBlocksOffset) * 512);

    /// <summary>lseek(2); <see cref="SEEK_DATA"/>/<see cref="SEEK_HOLE"/> find a sparse file's allocated ranges.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial long lseek(int fd, long offset, int whence);

    public const int SEEK_DATA = 3, SEEK_HOLE = 4;
    public const int O_NONBLOCK = 0x800;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int madvise(nint addr, nuint length, int advice);

    [LibraryImport("libc")]
    public static partial int gettid();

    [LibraryImport("libc", SetLastError = true)]
    public static partial int tgkill(int tgid, int tid, int sig);

    [LibraryImport("libc")]
    public static partial int getpid();

    public static int LastErrno => Marshal.GetLastPInvokeError();

    public static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM", 2 => "ENOENT", 4 => "EINTR", 6 => "ENXIO", 9 => "EBADF", 11 => "EAGAIN", 12 => "ENOMEM", 13 => "EACCES",
        14 => "EFAULT", 16 => "EBUSY", 17 => "EEXIST", 19 => "ENODEV", 22 => "EINVAL", 24 => "EMFILE", 28 => "ENOSPC", 38 => "ENOSYS",
        _ => $"errno {errno}",
    };

    /// <summary>Throws a <see cref="Win32Exception"/> naming <paramref name="call"/> and the errno when <paramref name="result"/> is negative.</summary>
    public static int Check(int result, string call)
    {
        if (result < 0)
        {
            int errno = LastErrno;
            throw new Win32Exception(errno, $"{call} failed: {ErrnoName(errno)} ({new Win32Exception(errno).Message})");
        }
        return result;
    }
}
