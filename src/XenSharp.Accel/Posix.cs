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

    public const int StatSize = 144, StatBlocksOffset = 64;

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
