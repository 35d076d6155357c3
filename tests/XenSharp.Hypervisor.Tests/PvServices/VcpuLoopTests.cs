using System.Diagnostics;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.PvServices;

/// <summary>
/// The services contract inside a real VirtualCpu loop: a minimal platform that turns an exit into SCHEDOP_block,
/// calls OnBeforeEntry before each entry and answers HasPendingWork from PvVcpuState, as the CPU half does.
/// </summary>
public sealed class VcpuLoopTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    private sealed class BlockingPlatform(TestDomain d) : IDomainPlatform
    {
        public int Entries;
        public int UpcallsSeen;
        public ExitAction HandleExit(VirtualCpu vcpu, in VcpuExit exit)
        {
            var ctx = new PvHypercallContext(d.Pv, d.Pv.Vcpu(vcpu), d.Va);
            d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Block));
            return ctx.RequestedAction;
        }
        public void BeforeEntry(VirtualCpu vcpu)
        {
            var st = d.Pv.Vcpu(vcpu);
            st.OnBeforeEntry(d.Va);
            Interlocked.Increment(ref Entries);
            if (st.UpcallPending)
            {
                // What the event-callback bounce does to the mask; the guest would then acknowledge.
                st.EvtchnUpcallMask = true;
                Interlocked.Increment(ref UpcallsSeen);
            }
        }
        public bool HasPendingWork(VirtualCpu vcpu) => d.Pv.Vcpu(vcpu).HasPendingWork;
        public void Dispose() { }
    }

    private static void WaitFor(Func<bool> cond, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!cond())
        {
            Assert.True(sw.ElapsedMilliseconds < 5000, $"timed out waiting for {what}");
            Thread.Sleep(1);
        }
    }

    [Fact]
    public void BlockSleepsUntilAnEventThenTheUpcallIsDue()
    {
        var d = _h.NewDomain(vcpus: 1);
        var platform = new BlockingPlatform(d);
        d.Domain.AttachPlatform(platform);
        d.Call(Hypercall.VcpuOp, VcpuOp.StopPeriodicTimer, 0);
        d.Pv.Events.BindIpi(0, out uint port);
        _h.Hv.Start(d.Domain);
        d.Domain.Unpause();
        var vcpu = d.Domain.Vcpus[0];
        WaitFor(() => platform.Entries > 0, "first entry");

        ((InertVcpu)vcpu.Cpu).ExitOnce = true;
        WaitFor(() => vcpu.RunState == VcpuRunState.Blocked, "block");
        int entries = platform.Entries;
        Thread.Sleep(50);
        Assert.Equal(VcpuRunState.Blocked, vcpu.RunState);
        Assert.Equal(entries, platform.Entries);

        d.Pv.Events.Raise(port);
        WaitFor(() => platform.UpcallsSeen > 0, "upcall after wake");
        Assert.NotEqual(VcpuRunState.Blocked, vcpu.RunState);
    }

    [Fact]
    public void BlockedVcpuWakesOnItsSingleshotTimer()
    {
        var d = _h.NewDomain(vcpus: 1);
        var platform = new BlockingPlatform(d);
        d.Domain.AttachPlatform(platform);
        d.Call(Hypercall.VcpuOp, VcpuOp.StopPeriodicTimer, 0);
        d.BindVirq(Virq.Timer, 0);
        _h.Hv.Start(d.Domain);
        d.Domain.Unpause();
        var vcpu = d.Domain.Vcpus[0];
        WaitFor(() => platform.Entries > 0, "first entry");
        d.Call(Hypercall.SetTimerOp, d.Pv.Clock.SystemTimeNs() + 100_000_000);
        ((InertVcpu)vcpu.Cpu).ExitOnce = true;
        WaitFor(() => vcpu.RunState == VcpuRunState.Blocked, "block");
        var sw = Stopwatch.StartNew();
        WaitFor(() => platform.UpcallsSeen > 0, "timer upcall");
        Assert.InRange(sw.ElapsedMilliseconds, 30, 2000);
    }

    [Fact]
    public void StateIsFoundFromTheDomainAndPvclockIsValidAtCreation()
    {
        var d = _h.NewDomain();
        Assert.Same(d.Pv, PvDomainState.Of(d.Domain));
        Assert.NotEqual(0u, d.Pv.SharedInfo.ReadUInt32(32)); // vcpu_info[0].time.version
        Assert.Equal(0u, d.Pv.SharedInfo.ReadUInt32(32) & 1);
        Assert.True(d.Pv.SpecialFrames.TryGet(d.Pv.SharedInfoMfn, out var f));
        Assert.Same(d.Pv.SharedInfo, f.Memory);
        Assert.True(d.Pv.SharedInfoMfn >= d.Ram.FrameCount);
        Assert.False(d.Pv.SpecialFrames.TryGet(3, out _));
        Assert.Equal(1, d.UpcallMask(0));
    }
}
