using System.ComponentModel;
using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>A file descriptor of /dev/kvm, a VM or a vCPU, closed exactly once.</summary>
public sealed class KvmFileDescriptor : SafeHandle
{
    public KvmFileDescriptor() : base(-1, ownsHandle: true) { }

    internal KvmFileDescriptor(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    public int Value => (int)handle;

    protected override bool ReleaseHandle() => Posix.close((int)handle) == 0;
}

/// <summary>A failed KVM ioctl: the message names the ioctl, what it was applied to, and the errno.</summary>
public sealed class KvmException : Win32Exception
{
    public string Ioctl { get; }
    public int Errno => NativeErrorCode;

    public KvmException(string ioctl, string? what, int errno)
        : base(errno, $"{ioctl}{(what is null ? "" : " " + what)} failed: {KvmErrno.Describe(errno)}")
        => Ioctl = ioctl;

    /// <summary>An ioctl that returned success but did not do what was asked (e.g. KVM_SET_MSRS returning 0 entries).</summary>
    public KvmException(string ioctl, string what, string reason) : base(0, $"{ioctl} {what} failed: {reason}") => Ioctl = ioctl;
}

/// <summary>errno names, extending <see cref="Posix.ErrnoName"/> with the ones ioctls on KVM return.</summary>
public static class KvmErrno
{
    public const int EIO = 5, E2BIG = 7, EBADF = 9, ENOMEM = 12, EFAULT = 14, EBUSY = 16, EEXIST = 17, EINVAL = 22, ENOTTY = 25, ENOSPC = 28;

    public static string Name(int errno) => errno switch
    {
        EIO => "EIO", E2BIG => "E2BIG", ENOTTY => "ENOTTY", 34 => "ERANGE", 95 => "EOPNOTSUPP",
        _ => Posix.ErrnoName(errno),
    };

    /// <summary>"EINVAL (Invalid argument)".</summary>
    public static string Describe(int errno) => $"{Name(errno)} ({new Win32Exception(errno).Message})";
}

/// <summary>libc calls this project needs beyond <see cref="Posix"/>, taking SafeHandles so an fd cannot be closed under a call.</summary>
internal static unsafe partial class KvmSys
{
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(SafeHandle fd, nuint request, nint arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(SafeHandle fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, SafeHandle fd, long offset);

    [LibraryImport("libc", EntryPoint = "sigaction", SetLastError = true)]
    public static partial int Sigaction(int signum, SigAction* act, SigAction* oldact);

    [LibraryImport("libc", EntryPoint = "pthread_sigmask")]
    public static partial int PthreadSigmask(int how, SigSet* set, SigSet* oldset);

    [LibraryImport("libc", EntryPoint = "__libc_current_sigrtmin")]
    public static partial int CurrentSigRtMin();

    [LibraryImport("libc", EntryPoint = "__libc_current_sigrtmax")]
    public static partial int CurrentSigRtMax();

    public const int SIG_BLOCK = 0, SIG_UNBLOCK = 1, SIG_SETMASK = 2;
    public const int SA_RESTART = 0x10000000, SA_SIGINFO = 4, SA_ONSTACK = 0x08000000;
    public static readonly nint SIG_DFL = 0, SIG_IGN = 1;

    /// <summary>ioctl that throws <see cref="KvmException"/> naming the ioctl on failure.</summary>
    public static int Check(int result, string ioctl, string? what = null)
    {
        if (result < 0) throw new KvmException(ioctl, what, Marshal.GetLastPInvokeError());
        return result;
    }
}

/// <summary>glibc's sigset_t on Linux: 1024 bits.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SigSet
{
    public const int Size = 128;
    public fixed ulong Bits[16];

    public void Add(int signal) => Bits[(signal - 1) / 64] |= 1UL << ((signal - 1) % 64);
}

/// <summary>glibc's struct sigaction on x86-64 (152 bytes): handler, mask, flags, restorer.</summary>
[StructLayout(LayoutKind.Explicit, Size = 152)]
internal struct SigAction
{
    public const int Size = 152;
    [FieldOffset(0)] public nint Handler;
    [FieldOffset(8)] public SigSet Mask;
    [FieldOffset(136)] public int Flags;
    [FieldOffset(144)] public nint Restorer;
}
