using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>
/// The host's time stamp counter, which is what a guest's RDTSC returns under KVM (plus the vCPU's TSC offset). The
/// emulator returns the same counter, so whatever the VMM publishes in host-TSC units (Xen's pvclock: tsc_timestamp,
/// tsc_to_system_mul/shift) is read correctly by the guest. Read with a tiny RDTSC stub (.NET has no intrinsic); where no
/// executable stub can be made it counts Stopwatch nanoseconds, the same fallback the PV clock uses.
/// </summary>
public static unsafe class HostTimeStampCounter
{
    private static readonly delegate* unmanaged<ulong> s_rdtsc = CreateStub();

    public static ulong Read() => s_rdtsc != null ? s_rdtsc() : (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    private static delegate* unmanaged<ulong> CreateStub()
    {
        if (!X86Base.IsSupported) return null;
        // rdtsc; shl rdx, 32; or rax, rdx; ret
        ReadOnlySpan<byte> code = [0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3];
        const int ProtExec = 4;
        nint p = Posix.mmap(0, 4096, Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS, -1, 0);
        if (p == Posix.MapFailed) return null;
        code.CopyTo(new Span<byte>((void*)p, code.Length));
        if (mprotect(p, 4096, Posix.PROT_READ | ProtExec) != 0)
        {
            Posix.munmap(p, 4096);
            return null;
        }
        return (delegate* unmanaged<ulong>)p;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int mprotect(nint addr, nuint len, int prot);
}
