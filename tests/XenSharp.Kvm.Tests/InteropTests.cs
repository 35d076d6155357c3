using XenSharp.Accel;
using XenSharp.Kvm;

namespace XenSharp.Kvm.Tests;

/// <summary>The fd and mmap plumbing the KVM objects use, exercised on a memfd (no KVM needed).</summary>
public sealed unsafe class InteropTests
{
    [Fact]
    public void File_descriptor_handles_close_exactly_once_and_mmap_through_them()
    {
        int fd = Posix.memfd_create("kvm-interop-test", Posix.MFD_CLOEXEC);
        Assert.True(fd >= 0);
        var handle = new KvmFileDescriptor(fd);
        Assert.Equal(0, Posix.ftruncate(fd, 4096));
        nint p = KvmSys.Mmap(0, 4096, Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_SHARED, handle, 0);
        Assert.NotEqual(Posix.MapFailed, p);
        *(ulong*)p = 0x1234;
        Assert.Equal(0, Posix.munmap(p, 4096));
        Assert.True(File.Exists($"/proc/self/fd/{fd}") || Directory.Exists($"/proc/self/fd/{fd}"));
        handle.Dispose();
        handle.Dispose();
        Assert.False(File.Exists($"/proc/self/fd/{fd}") || Directory.Exists($"/proc/self/fd/{fd}"));
    }

    [Fact]
    public void Ioctl_failures_through_a_handle_become_KvmExceptions()
    {
        int fd = Posix.open("/dev/null", Posix.O_RDWR | Posix.O_CLOEXEC);
        using var handle = new KvmFileDescriptor(fd);
        var e = Assert.Throws<KvmException>(() => KvmSys.Check(KvmSys.Ioctl(handle, KvmIoctl.KVM_RUN, 0), "KVM_RUN", "vcpu 3"));
        Assert.Equal("KVM_RUN vcpu 3 failed: ENOTTY (Inappropriate ioctl for device)", e.Message);
    }
}
