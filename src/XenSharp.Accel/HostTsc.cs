using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace XenSharp.Accel;

/// <summary>
/// The host's time stamp counter: read with a tiny RDTSC stub (.NET has no intrinsic for it), frequency
/// from CPUID leaf 0x15 when the CPU enumerates it, else calibrated once against Stopwatch. PV guests read
/// RDTSC natively (and the software CPU returns this counter too), so a pvclock published in it reads right.
/// </summary>
public static unsafe class HostTsc
{
    private static readonly delegate* unmanaged<ulong> s_rdtsc = CreateStub();
    private static readonly Lazy<ulong> s_hz = new(DetermineHz);

    /// <summary>False when no executable stub could be made: <see cref="Read"/> then counts Stopwatch nanoseconds instead (tests still work; a real guest would see a clock in another unit).</summary>
    public static bool IsNative => s_rdtsc != null;

    public static ulong Read() => s_rdtsc != null ? s_rdtsc() : (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>TSC ticks per second.</summary>
    public static ulong Hz => s_hz.Value;

    /// <summary>CPUID 0x80000007 EDX[8]: the TSC runs at a constant rate in every P/C-state.</summary>
    public static bool IsInvariant
    {
        get
        {
            if (!X86Base.IsSupported || s_rdtsc == null) return false;
            var (maxExt, _, _, _) = X86Base.CpuId(unchecked((int)0x80000000), 0);
            if ((uint)maxExt < 0x80000007) return false;
            var (_, _, _, edx) = X86Base.CpuId(unchecked((int)0x80000007), 0);
            return (edx & (1 << 8)) != 0;
        }
    }

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

    private static ulong DetermineHz()
    {
        if (s_rdtsc == null) return 1_000_000_000;
        if (X86Base.IsSupported)
        {
            var (max, _, _, _) = X86Base.CpuId(0, 0);
            if (max >= 0x15)
            {
                var (den, num, crystal, _) = X86Base.CpuId(0x15, 0);
                if (den != 0 && num != 0 && crystal != 0) return (ulong)crystal * (uint)num / (uint)den;
            }
        }
        // Calibrate: best of three 20 ms windows.
        ulong best = 0;
        double bestErr = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            long s0 = Stopwatch.GetTimestamp();
            ulong t0 = Read();
            long s0b = Stopwatch.GetTimestamp();
            Thread.Sleep(20);
            long s1 = Stopwatch.GetTimestamp();
            ulong t1 = Read();
            long s1b = Stopwatch.GetTimestamp();
            double err = (s0b - s0) + (s1b - s1);
            double seconds = ((s1 + s1b) / 2.0 - (s0 + s0b) / 2.0) / Stopwatch.Frequency;
            if (err < bestErr)
            {
                bestErr = err;
                best = (ulong)((t1 - t0) / seconds);
            }
        }
        return best;
    }
}
