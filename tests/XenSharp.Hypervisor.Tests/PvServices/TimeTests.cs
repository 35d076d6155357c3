using XenSharp.Accel;
using System.Diagnostics;
using System.Runtime.InteropServices;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.PvServices;

public sealed class TimeTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    /// <summary>What a guest computes from a vcpu_time_info and its RDTSC.</summary>
    private static ulong GuestNow(VcpuTimeInfo t, ulong tsc) => t.SystemTime + PvClock.Scale(tsc - t.TscTimestamp, t.TscToSystemMul, t.TscShift);

    private static VcpuTimeInfo ReadTime(TestDomain d, int vcpu)
    {
        var area = d.Pv.SharedInfo.Span((ulong)vcpu * 64 + 32, 32);
        var t = MemoryMarshal.Read<VcpuTimeInfo>(area);
        Assert.Equal(0u, t.Version & 1);
        Assert.NotEqual(0u, t.Version);
        return t;
    }

    [Theory]
    [InlineData(1_000_000_000UL)]
    [InlineData(2_893_000_000UL)]
    [InlineData(3_700_123_456UL)]
    [InlineData(25_000_000UL)]
    [InlineData(100_000_000_000UL)]
    public void ScaleConvertsOneSecondOfTicksToOneSecond(ulong hz)
    {
        var (mul, shift) = PvClock.ComputeScale(hz);
        Assert.True(mul >= 1u << 31);
        ulong ns = PvClock.Scale(hz, mul, shift);
        Assert.InRange((long)ns, 1_000_000_000L - 2, 1_000_000_000L + 2);
        ulong ns10 = PvClock.Scale(hz * 10, mul, shift);
        Assert.InRange((long)ns10, 10_000_000_000L - 20, 10_000_000_000L + 20);
    }

    [Fact]
    public void PublishedPvclockTracksStopwatch()
    {
        var d = _h.NewDomain();
        var v = d.Pv.Vcpu(0)!;
        v.PublishTime();
        var t = ReadTime(d, 0);
        Assert.Equal(d.Pv.Clock.Mul, t.TscToSystemMul);
        var sw = Stopwatch.StartNew();
        ulong g0 = GuestNow(t, HostTsc.Read());
        Thread.Sleep(200);
        ulong g1 = GuestNow(t, HostTsc.Read());
        double guestMs = (g1 - g0) / 1e6, realMs = sw.Elapsed.TotalMilliseconds;
        Assert.InRange(guestMs, realMs * 0.97 - 2, realMs * 1.03 + 2);
        // System time counts from the domain's creation: small, positive.
        Assert.InRange(g1 / 1e9, 0.0, 60.0);
    }

    [Fact]
    public void VcpusAgreeAndVersionIsEvenAndGrows()
    {
        var d = _h.NewDomain(vcpus: 2);
        d.Pv.Vcpu(0)!.PublishTime();
        uint v0 = ReadTime(d, 0).Version;
        Thread.Sleep(5);
        d.Pv.Vcpu(1)!.PublishTime();
        d.Pv.Vcpu(0)!.PublishTime();
        var a = ReadTime(d, 0);
        var b = ReadTime(d, 1);
        Assert.True(a.Version > v0);
        ulong tsc = HostTsc.Read();
        // Both publications describe the same function of the TSC.
        Assert.InRange((long)GuestNow(a, tsc) - (long)GuestNow(b, tsc), -2, 2);
    }

    [Fact]
    public void WallclockMatchesUtc()
    {
        var d = _h.NewDomain();
        var si = d.Pv.SharedInfo;
        Assert.Equal(0u, si.ReadUInt32(3072) & 1);
        ulong sec = si.ReadUInt32(3076) | ((ulong)si.ReadUInt32(3084) << 32);
        ulong nsec = si.ReadUInt32(3080);
        Assert.True(nsec < 1_000_000_000);
        d.Pv.Vcpu(0)!.PublishTime();
        ulong now = GuestNow(ReadTime(d, 0), HostTsc.Read());
        double unix = sec + nsec / 1e9 + now / 1e9;
        double expected = (DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds;
        Assert.InRange(unix, expected - 0.5, expected + 0.5);
    }

    [Fact]
    public void SingleshotTimerRaisesVirqTimerOnItsVcpu()
    {
        var d = _h.NewDomain(vcpus: 2);
        d.Pv.Vcpu(1)!.Down = false; // As if brought up.
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.StopPeriodicTimer, 1));
        uint port = d.BindVirq(Virq.Timer, 1);
        ulong deadline = d.Pv.Clock.SystemTimeNs() + 30_000_000;
        d.Put(PvHarness.Scratch, new VcpuSetSingleshotTimer { TimeoutAbsNs = deadline });
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetSingleshotTimer, 1, PvHarness.Scratch, vcpu: 1));
        Assert.False(d.Pending(port));
        var sw = Stopwatch.StartNew();
        while (!d.Pending(port) && sw.ElapsedMilliseconds < 2000) Thread.Sleep(1);
        Assert.True(d.Pending(port));
        Assert.True(d.Pv.Clock.SystemTimeNs() >= deadline);
        Assert.Equal(1, d.UpcallPending(1));
        Assert.Equal(0UL, d.Pv.Vcpu(1)!.SingleshotDeadline);
    }

    [Fact]
    public void SingleshotRules()
    {
        var d = _h.NewDomain(vcpus: 2);
        d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.StopPeriodicTimer, 0);
        uint port = d.BindVirq(Virq.Timer, 0);
        // In the past with VCPU_SSHOTTMR_future → -ETIME; without it → fires at once.
        d.Put(PvHarness.Scratch, new VcpuSetSingleshotTimer { TimeoutAbsNs = 1, Flags = VcpuOp.SingleshotFuture });
        Assert.Equal(-XenErrno.ETIME, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetSingleshotTimer, 0, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new VcpuSetSingleshotTimer { TimeoutAbsNs = 1 });
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetSingleshotTimer, 0, PvHarness.Scratch));
        d.Pv.Timers.RunExpired(d.Pv.Vcpu(0)!);
        Assert.True(d.Pending(port));
        // Only on the calling vCPU.
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetSingleshotTimer, 1, PvHarness.Scratch, vcpu: 0));
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.StopSingleshotTimer, 1, vcpu: 0));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetSingleshotTimer, 0, 0xffff_ffff_0000));
        // Stop cancels.
        d.Put(PvHarness.Scratch, new VcpuSetSingleshotTimer { TimeoutAbsNs = d.Pv.Clock.SystemTimeNs() + 10_000_000_000 });
        d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetSingleshotTimer, 0, PvHarness.Scratch);
        Assert.NotEqual(0UL, d.Pv.Vcpu(0)!.SingleshotDeadline);
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.StopSingleshotTimer, 0));
        Assert.Equal(0UL, d.Pv.Vcpu(0)!.SingleshotDeadline);
    }

    [Fact]
    public void PeriodicTimerDefaultsToTenMsAndCanBeChangedAndStopped()
    {
        var d = _h.NewDomain();
        var v = d.Pv.Vcpu(0)!;
        Assert.Equal(10_000_000UL, v.PeriodicPeriod);
        uint port = d.BindVirq(Virq.Timer, 0);
        var sw = Stopwatch.StartNew();
        while (!d.Pending(port) && sw.ElapsedMilliseconds < 2000) Thread.Sleep(1);
        Assert.True(d.Pending(port));

        d.Put(PvHarness.Scratch, new VcpuSetPeriodicTimer { PeriodNs = 999_999 });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetPeriodicTimer, 0, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new VcpuSetPeriodicTimer { PeriodNs = 5_000_000 });
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.SetPeriodicTimer, 0, PvHarness.Scratch));
        Assert.Equal(5_000_000UL, v.PeriodicPeriod);
        // Acknowledge, wait for a few ticks.
        d.GuestAcknowledgeAll(0);
        sw.Restart();
        while (!d.Pending(port) && sw.ElapsedMilliseconds < 2000) Thread.Sleep(1);
        Assert.True(d.Pending(port));

        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.StopPeriodicTimer, 0));
        Assert.Equal(0UL, v.PeriodicPeriod);
        Thread.Sleep(20);
        d.GuestAcknowledgeAll(0);
        Thread.Sleep(50);
        Assert.False(d.Pending(port));
    }

    [Fact]
    public void SetTimerOpSetsAndClearsTheSingleshot()
    {
        var d = _h.NewDomain();
        ulong t = d.Pv.Clock.SystemTimeNs() + 5_000_000_000;
        Assert.Equal(0, d.Call(Hypercall.SetTimerOp, t));
        Assert.Equal(t, d.Pv.Vcpu(0)!.SingleshotDeadline);
        Assert.Equal(0, d.Call(Hypercall.SetTimerOp, 0));
        Assert.Equal(0UL, d.Pv.Vcpu(0)!.SingleshotDeadline);
        // A deadline absurdly far away is pulled in to ~50 ms.
        Assert.Equal(0, d.Call(Hypercall.SetTimerOp, 1UL << 62));
        Assert.InRange((long)(d.Pv.Vcpu(0)!.SingleshotDeadline - d.Pv.Clock.SystemTimeNs()), 0, 60_000_000);
    }

    [Fact]
    public void TimeMemoryAreaGetsACopy()
    {
        var d = _h.NewDomain();
        ulong va = PvHarness.Scratch + 0x2000;
        d.Put(PvHarness.Scratch, new VcpuRegisterTimeMemoryArea { Addr = va });
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, (ulong)VcpuOp.RegisterVcpuTimeMemoryArea, 0, PvHarness.Scratch));
        var t = d.Get<VcpuTimeInfo>(va);
        Assert.Equal(0u, t.Version & 1);
        Assert.Equal(d.Pv.Clock.Mul, t.TscToSystemMul);
        Assert.NotEqual(0UL, t.TscTimestamp);
    }
}
