using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// A domain's Xen system time: nanoseconds since the domain was created, defined as a pure function of the
/// guest-visible TSC (scaled with the same mul/shift the guest uses), so every vCPU and every publication
/// agree exactly, and the wall clock at system time 0 published in shared_info.
/// </summary>
public sealed class PvClock
{
    private readonly Func<ulong> _readTsc;

    /// <param name="readGuestTsc">The TSC as the guest's RDTSC returns it (host TSC plus any offset the accelerator applies).</param>
    public PvClock(Func<ulong>? readGuestTsc = null, ulong? tscHz = null, bool? tscStable = null)
    {
        _readTsc = readGuestTsc ?? HostTsc.Read;
        TscHz = tscHz ?? HostTsc.Hz;
        if (TscHz == 0) throw new ArgumentException("TSC frequency is 0");
        (Mul, Shift) = ComputeScale(TscHz);
        TscStable = tscStable ?? HostTsc.IsInvariant;
        Tsc0 = _readTsc();
        var utc = DateTime.UtcNow;
        ulong sys = SystemTimeNs();
        ulong unixNs = (ulong)(utc - DateTime.UnixEpoch).Ticks * 100;
        WallclockAtZeroNs = unixNs - sys;
    }

    public ulong TscHz { get; }
    public uint Mul { get; }
    public sbyte Shift { get; }
    public bool TscStable { get; }
    /// <summary>Guest TSC at system time 0.</summary>
    public ulong Tsc0 { get; }
    /// <summary>Unix time (ns) at system time 0.</summary>
    public ulong WallclockAtZeroNs { get; private set; }

    public ulong ReadTsc() => _readTsc();

    /// <summary>Current system time (ns since the domain started).</summary>
    public ulong SystemTimeNs() => TscToSystem(_readTsc());

    public ulong TscToSystem(ulong tsc) => Scale(tsc - Tsc0, Mul, Shift);

    /// <summary>pvclock scaling: ((delta shifted by shift) × mul) >> 32, with a 96-bit product as the guest computes it.</summary>
    public static ulong Scale(ulong delta, uint mul, sbyte shift)
    {
        if (shift < 0) delta >>= -shift; else delta <<= shift;
        return (ulong)(((UInt128)delta * mul) >> 32);
    }

    /// <summary>Chooses shift and a 32-bit mul with mul/2^32 × 2^shift = 1e9 / hz, mul in [2^31, 2^32).</summary>
    public static (uint Mul, sbyte Shift) ComputeScale(ulong hz)
    {
        const ulong Ns = 1_000_000_000;
        int shift = 0;
        ulong t = hz;
        while (t > 2 * Ns) { t >>= 1; shift--; }
        while (t <= Ns) { t <<= 1; shift++; }
        // Use the exact frequency (not the truncated t) for the fraction.
        UInt128 num = (UInt128)Ns << 32;
        UInt128 den = shift >= 0 ? (UInt128)hz << shift : (UInt128)hz >> -shift;
        if (shift < 0)
        {
            // delta >> k then × mul: mul = 1e9·2^32 / (hz / 2^k), computed exactly as 1e9·2^(32+k) / hz.
            num = (UInt128)Ns << (32 - shift);
            den = hz;
        }
        ulong mul = (ulong)(num / den);
        if (mul > uint.MaxValue) mul = uint.MaxValue;
        return ((uint)mul, (sbyte)shift);
    }

    /// <summary>A consistent vcpu_time_info for now.</summary>
    public VcpuTimeInfo Snapshot()
    {
        ulong tsc = _readTsc();
        return new VcpuTimeInfo
        {
            TscTimestamp = tsc,
            SystemTime = TscToSystem(tsc),
            TscToSystemMul = Mul,
            TscShift = Shift,
            Flags = TscStable ? PvclockFlags.TscStable : (byte)0,
        };
    }

    /// <summary>Writes a vcpu_time_info at <paramref name="offset"/> of <paramref name="memory"/> with the odd/even version protocol.</summary>
    public void Publish(GuestMemory memory, ulong offset) => Publish(memory.Span(offset, 32), Snapshot());

    public static void Publish(Span<byte> area, VcpuTimeInfo t)
    {
        ref uint version = ref MemoryMarshal.Cast<byte, uint>(area[..4])[0];
        uint v = Volatile.Read(ref version);
        uint odd = (v + 1) | 1;
        Volatile.Write(ref version, odd);
        Interlocked.MemoryBarrier();
        MemoryMarshal.Write(area[8..], t.TscTimestamp);
        MemoryMarshal.Write(area[16..], t.SystemTime);
        MemoryMarshal.Write(area[24..], t.TscToSystemMul);
        area[28] = (byte)t.TscShift;
        area[29] = t.Flags;
        Interlocked.MemoryBarrier();
        Volatile.Write(ref version, odd + 1);
    }

    /// <summary>Writes wc_sec/wc_nsec/wc_sec_hi (wall time at system time 0) with the wc_version protocol.</summary>
    public void PublishWallclock(GuestMemory sharedInfo)
    {
        var area = sharedInfo.Span(3072, 16);
        ref uint version = ref MemoryMarshal.Cast<byte, uint>(area[..4])[0];
        uint v = Volatile.Read(ref version);
        uint odd = (v + 1) | 1;
        Volatile.Write(ref version, odd);
        Interlocked.MemoryBarrier();
        ulong sec = WallclockAtZeroNs / 1_000_000_000;
        MemoryMarshal.Write(area[4..], (uint)sec);
        MemoryMarshal.Write(area[8..], (uint)(WallclockAtZeroNs % 1_000_000_000));
        MemoryMarshal.Write(area[12..], (uint)(sec >> 32));
        Interlocked.MemoryBarrier();
        Volatile.Write(ref version, odd + 1);
    }

    /// <summary>Unix time now in ns as the guest computes it from the published fields.</summary>
    public ulong WallclockNowNs() => WallclockAtZeroNs + SystemTimeNs();
}
