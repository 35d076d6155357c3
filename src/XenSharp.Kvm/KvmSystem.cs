using System.ComponentModel;
using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>
/// The open /dev/kvm: API version, capabilities, the size of a vCPU's shared kvm_run mapping, the CPUID leaves
/// KVM can expose, and the factory for VM file descriptors.
/// </summary>
public sealed unsafe class KvmSystem : IDisposable
{
    public const string DefaultDevicePath = "/dev/kvm";

    private readonly KvmFileDescriptor _fd;

    public string DevicePath { get; }
    public int ApiVersion { get; }
    /// <summary>Bytes to mmap from a vCPU fd (kvm_run plus the pages after it).</summary>
    public int VcpuMmapSize { get; }

    /// <summary>Opens <paramref name="devicePath"/>; throws <see cref="AcceleratorUnavailableException"/> saying what is wrong and what to do.</summary>
    public KvmSystem(string devicePath = DefaultDevicePath)
    {
        DevicePath = devicePath;
        int fd = Posix.open(devicePath, Posix.O_RDWR | Posix.O_CLOEXEC);
        if (fd < 0) throw new AcceleratorUnavailableException(OpenFailureMessage(devicePath, Posix.LastErrno));
        _fd = new KvmFileDescriptor(fd);
        try
        {
            int version = KvmSys.Ioctl(_fd, KvmIoctl.KVM_GET_API_VERSION, 0);
            if (version < 0)
            {
                int errno = Posix.LastErrno;
                throw new AcceleratorUnavailableException(
                    $"{devicePath} is not a KVM device: KVM_GET_API_VERSION failed with {KvmErrno.Describe(errno)}");
            }
            if (version != KvmLayout.ApiVersion)
                throw new AcceleratorUnavailableException($"{devicePath} speaks KVM API version {version}, this build needs {KvmLayout.ApiVersion}");
            ApiVersion = version;
            if (CheckExtension(KvmCap.USER_MEMORY) <= 0)
                throw new AcceleratorUnavailableException($"KVM on {devicePath} lacks KVM_CAP_USER_MEMORY; a newer kernel is needed");
            if (CheckExtension(KvmCap.IMMEDIATE_EXIT) <= 0)
                throw new AcceleratorUnavailableException($"KVM on {devicePath} lacks KVM_CAP_IMMEDIATE_EXIT (Linux 4.11+), which vCPU kicks rely on; a newer kernel is needed");
            VcpuMmapSize = KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
            if (VcpuMmapSize < KvmRun.Size)
                throw new AcceleratorUnavailableException($"KVM_GET_VCPU_MMAP_SIZE is {VcpuMmapSize}, smaller than struct kvm_run ({KvmRun.Size})");
        }
        catch
        {
            _fd.Dispose();
            throw;
        }
    }

    /// <summary>What to tell a user whose open of the KVM device failed with <paramref name="errno"/>.</summary>
    public static string OpenFailureMessage(string path, int errno) => errno switch
    {
        Posix.ENOENT => $"{path} is missing: load kvm_intel or kvm_amd (or kvm_pvm where there is no hardware virtualization), or run on a host with hardware virtualization enabled",
        Posix.ENODEV or Posix.ENXIO =>
            $"{path} exists but no KVM back end answers (ENODEV): load kvm_intel or kvm_amd (or kvm_pvm where there is no hardware virtualization), enable VT-x/AMD-V in the firmware or nested virtualization on the host, or run on a host that offers KVM",
        Posix.EACCES or Posix.EPERM => $"permission denied opening {path}: run as root or add the user to the kvm group (then log in again)",
        _ => $"cannot open {path}: {KvmErrno.Describe(errno)}",
    };

    internal KvmFileDescriptor Handle => _fd;

    /// <summary>KVM_CHECK_EXTENSION: 0 when absent, otherwise 1 or a capability-specific value.</summary>
    public int CheckExtension(int capability)
    {
        int r = KvmSys.Ioctl(_fd, KvmIoctl.KVM_CHECK_EXTENSION, capability);
        return r < 0 ? 0 : r;
    }

    /// <summary>KVM_CREATE_VM with the default machine type; the caller owns the returned fd.</summary>
    internal KvmFileDescriptor CreateVmFd()
    {
        int fd = KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_CREATE_VM, 0), "KVM_CREATE_VM");
        return new KvmFileDescriptor(fd);
    }

    /// <summary>KVM_GET_SUPPORTED_CPUID: the leaves (with the bits KVM can virtualize) a VMM may pass to <see cref="IVcpu.SetCpuid"/>.</summary>
    public IReadOnlyList<CpuidEntry> GetSupportedCpuid()
    {
        for (int n = 64; ; n *= 2)
        {
            byte[] buffer = new byte[KvmCpuid2Header.Size + n * KvmCpuidEntry2.Size];
            fixed (byte* p = buffer)
            {
                ((KvmCpuid2Header*)p)->Nent = (uint)n;
                if (KvmSys.Ioctl(_fd, KvmIoctl.KVM_GET_SUPPORTED_CPUID, p) < 0)
                {
                    int errno = Posix.LastErrno;
                    if (errno == KvmErrno.E2BIG && n < 4096) continue;
                    throw new KvmException("KVM_GET_SUPPORTED_CPUID", $"({n} entries)", errno);
                }
                int count = (int)((KvmCpuid2Header*)p)->Nent;
                var result = new CpuidEntry[count];
                var e = (KvmCpuidEntry2*)(p + KvmCpuid2Header.Size);
                for (int i = 0; i < count; i++)
                    result[i] = new CpuidEntry(e[i].Function, e[i].Index, e[i].Eax, e[i].Ebx, e[i].Ecx, e[i].Edx,
                        (e[i].Flags & KvmLayout.CPUID_FLAG_SIGNIFICANT_INDEX) != 0);
                return result;
            }
        }
    }

    public void Dispose() => _fd.Dispose();
}
