using System.Runtime.InteropServices;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.PvServices;

public sealed class VcpuSchedMemoryTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    // ------------------------------------------------------------ sched_op

    [Fact]
    public void BlockUnmasksAndAsksTheLoopToBlock()
    {
        var d = _h.NewDomain();
        var v = d.Pv.Vcpu(0)!;
        Assert.True(v.EvtchnUpcallMask);
        var ctx = d.Ctx();
        Assert.Equal(0, d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Block)));
        Assert.Equal(ExitAction.Block, ctx.RequestedAction);
        Assert.False(v.EvtchnUpcallMask);
        Assert.False(v.HasPendingWork);
        d.Pv.Events.BindIpi(0, out uint p);
        d.Pv.Events.Raise(p);
        Assert.True(v.HasPendingWork);
        Assert.Equal(0, d.Call(Hypercall.SchedOp, SchedOp.Yield));
    }

    [Fact]
    public void PollReturnsAtOnceWhenAPortIsPendingElseBlocksUntilPortOrTimeout()
    {
        var d = _h.NewDomain();
        var v = d.Pv.Vcpu(0)!;
        d.Pv.Events.BindIpi(0, out uint a);
        d.Pv.Events.BindIpi(0, out uint b);
        d.SetMask(a, true);
        d.SetMask(b, true);
        ulong ports = PvHarness.Scratch + 0x100;
        d.Put(ports, a);
        d.Put(ports + 4, b);

        d.Pv.Events.Raise(b);
        var ctx = d.Ctx();
        d.Put(PvHarness.Scratch, new SchedPoll { Ports = ports, NrPorts = 2, Timeout = 0 });
        Assert.Equal(0, d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Poll, PvHarness.Scratch)));
        Assert.Equal(ExitAction.Continue, ctx.RequestedAction);

        d.GuestAcknowledgeAll(0);
        ctx = d.Ctx();
        Assert.Equal(0, d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Poll, PvHarness.Scratch)));
        Assert.Equal(ExitAction.Block, ctx.RequestedAction);
        Assert.False(v.HasPendingWork);
        int kicks = d.Kicks(0);
        d.Pv.Events.Raise(a); // Masked, but polled: wakes.
        Assert.True(v.HasPendingWork);
        Assert.True(d.Kicks(0) > kicks);
        v.OnBeforeEntry(d.Va);
        Assert.Null(v.PollPorts);

        // Timeout.
        d.GuestAcknowledgeAll(0);
        d.Put(PvHarness.Scratch, new SchedPoll { Ports = ports, NrPorts = 2, Timeout = d.Pv.Clock.SystemTimeNs() + 20_000_000 });
        ctx = d.Ctx();
        d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Poll, PvHarness.Scratch));
        Assert.Equal(ExitAction.Block, ctx.RequestedAction);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!v.HasPendingWork && sw.ElapsedMilliseconds < 2000) Thread.Sleep(1);
        Assert.True(v.HasPendingWork);

        // Hostile: too many ports, a bad port, a wild array.
        d.Put(PvHarness.Scratch, new SchedPoll { Ports = ports, NrPorts = 129 });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.SchedOp, SchedOp.Poll, PvHarness.Scratch));
        d.Put(ports, 5000u);
        d.Put(PvHarness.Scratch, new SchedPoll { Ports = ports, NrPorts = 1 });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.SchedOp, SchedOp.Poll, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new SchedPoll { Ports = 0xffff_0000_0000, NrPorts = 3 });
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.SchedOp, SchedOp.Poll, PvHarness.Scratch));
    }

    [Theory]
    [InlineData(0u, XenSharp.Hypervisor.ShutdownReason.Poweroff)]
    [InlineData(1u, XenSharp.Hypervisor.ShutdownReason.Reboot)]
    [InlineData(2u, XenSharp.Hypervisor.ShutdownReason.Suspend)]
    [InlineData(3u, XenSharp.Hypervisor.ShutdownReason.Crash)]
    [InlineData(4u, XenSharp.Hypervisor.ShutdownReason.Watchdog)]
    [InlineData(5u, XenSharp.Hypervisor.ShutdownReason.SoftReset)]
    public void ShutdownReasons(uint reason, XenSharp.Hypervisor.ShutdownReason expected)
    {
        var d = _h.NewDomain();
        d.Put(PvHarness.Scratch, new SchedShutdown { Reason = reason });
        var ctx = d.Ctx();
        Assert.Equal(0, d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Shutdown, PvHarness.Scratch)));
        Assert.Equal(expected, d.Domain.ShutdownReason);
        Assert.Equal(ExitAction.Stop, ctx.RequestedAction);
    }

    [Fact]
    public void ShutdownHostileAndOtherSubops()
    {
        var d = _h.NewDomain();
        d.Put(PvHarness.Scratch, new SchedShutdown { Reason = 77 });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.SchedOp, SchedOp.Shutdown, PvHarness.Scratch));
        Assert.Null(d.Domain.ShutdownReason);
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.SchedOp, SchedOp.Shutdown, 0xffff_0000_0000));
        d.Put(PvHarness.Scratch, new SchedRemoteShutdown { DomainId = 999 });
        Assert.Equal(-XenErrno.ESRCH, d.Call(Hypercall.SchedOp, SchedOp.RemoteShutdown, PvHarness.Scratch));
        var other = _h.NewDomain("o");
        d.Put(PvHarness.Scratch, new SchedRemoteShutdown { DomainId = (ushort)other.Domain.Id });
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.SchedOp, SchedOp.RemoteShutdown, PvHarness.Scratch));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.SchedOp, SchedOp.Watchdog, PvHarness.Scratch));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.SchedOp, 42, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new SchedShutdown { Reason = 9 });
        Assert.Equal(0, d.Call(Hypercall.SchedOp, SchedOp.ShutdownCode, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new SchedShutdown { Reason = 0 });
        d.Call(Hypercall.SchedOp, SchedOp.Shutdown, PvHarness.Scratch);
        Assert.Equal(9, d.Domain.ShutdownCode);
    }

    // ------------------------------------------------------------ vcpu_op

    [Fact]
    public void IsUpInitialiseUpDown()
    {
        var d = _h.NewDomain(vcpus: 3);
        Assert.Equal(1, d.Call(Hypercall.VcpuOp, VcpuOp.IsUp, 0));
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.IsUp, 1));
        Assert.Equal(-XenErrno.ENOENT, d.Call(Hypercall.VcpuOp, VcpuOp.IsUp, 3));
        Assert.Equal(-XenErrno.ENOENT, d.Call(Hypercall.VcpuOp, VcpuOp.IsUp, ulong.MaxValue));

        // Up before initialise is refused.
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VcpuOp, VcpuOp.Up, 1));
        var gc = new VcpuGuestContext { Flags = Vgcf.InKernel };
        gc.UserRegs.Rip = 0xffff_ffff_8100_0000;
        d.Put(PvHarness.Scratch, gc);
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.Initialise, 1, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EEXIST, d.Call(Hypercall.VcpuOp, VcpuOp.Initialise, 1, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.VcpuOp, VcpuOp.Initialise, 2, d.Ram.Size - 100));
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.Up, 1));
        Assert.Equal(1, d.Call(Hypercall.VcpuOp, VcpuOp.IsUp, 1));
        Assert.True(d.Pv.Vcpu(1)!.TakeInitialContext(out var loaded));
        Assert.Equal(0xffff_ffff_8100_0000UL, loaded.UserRegs.Rip);
        Assert.False(d.Pv.Vcpu(1)!.TakeInitialContext(out _));

        // A validator supplied by the CPU half can refuse a context.
        d.Pv.ValidateInitialContext = (_, c) => c.UserRegs.Rip == 0 ? -XenErrno.EINVAL : 0;
        d.Put(PvHarness.Scratch, new VcpuGuestContext());
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VcpuOp, VcpuOp.Initialise, 2, PvHarness.Scratch));

        // Down of another vCPU, then of ourselves when we are the last → poweroff.
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.Down, 1));
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.IsUp, 1));
        var ctx = d.Ctx();
        d.Pv.Hypercalls.Dispatch(ctx, Hypercall.VcpuOp, new HypercallArgs(VcpuOp.Down, 0));
        Assert.Equal(XenSharp.Hypervisor.ShutdownReason.Poweroff, d.Domain.ShutdownReason);
    }

    [Fact]
    public void DownSelfBlocksAndAnEventDoesNotWakeIt()
    {
        var d = _h.NewDomain(vcpus: 2);
        d.Pv.Vcpu(1)!.Down = false;
        var ctx = d.Ctx(1);
        Assert.Equal(0, d.Pv.Hypercalls.Dispatch(ctx, Hypercall.VcpuOp, new HypercallArgs(VcpuOp.Down, 1)));
        Assert.Equal(ExitAction.Block, ctx.RequestedAction);
        var v = d.Pv.Vcpu(1)!;
        v.EvtchnUpcallMask = false;
        d.Pv.Events.BindIpi(1, out uint p);
        int kicks = d.Kicks(1);
        d.Pv.Events.Raise(p);
        Assert.False(v.HasPendingWork);
        Assert.Equal(kicks, d.Kicks(1));
        Assert.Equal((int)VcpuOp.RunstateOffline, v.RunstateInfo.State);
    }

    [Fact]
    public void RegisterVcpuInfoMovesEventDelivery()
    {
        var d = _h.NewDomain();
        const ulong mfn = 0x80, off = 0x40;
        d.Pv.SharedInfo.WriteByte(1, 0); // Guest unmasked events in the shared_info slot.
        d.Put(PvHarness.Scratch, new VcpuRegisterVcpuInfo { Mfn = mfn, Offset = (uint)off });
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.RegisterVcpuInfo, 0, PvHarness.Scratch));
        ulong at = mfn * 4096 + off;
        Assert.Equal(1, d.Ram.ReadByte(at));
        Assert.Equal(0, d.Ram.ReadByte(at + 1)); // Copied across.
        Assert.Equal(ulong.MaxValue, d.Ram.ReadUInt64(at + 8));
        Assert.NotEqual(0u, d.Ram.ReadUInt32(at + 32)); // time published there
        Assert.True(d.Pv.Vcpu(0)!.UpcallPending);
        // Only once.
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VcpuOp, VcpuOp.RegisterVcpuInfo, 0, PvHarness.Scratch));

        // Events now land in the new area.
        d.Ram.WriteByte(at, 0);
        d.Ram.WriteUInt64(at + 8, 0);
        d.Pv.Events.BindIpi(0, out uint p);
        d.Pv.Events.Raise(p);
        Assert.Equal(1, d.Ram.ReadByte(at));
        Assert.Equal(0, d.UpcallPending(0));

        // Hostile: crossing the page end, misaligned, outside RAM, on another running vCPU.
        var e = _h.NewDomain("e", vcpus: 2);
        foreach (var (m, o) in new[] { (0x80UL, 4096u - 63), (0x80UL, 3u), (1UL << 40, 0u) })
        {
            e.Put(PvHarness.Scratch, new VcpuRegisterVcpuInfo { Mfn = m, Offset = o });
            Assert.Equal(-XenErrno.EINVAL, e.Call(Hypercall.VcpuOp, VcpuOp.RegisterVcpuInfo, 0, PvHarness.Scratch));
        }
        e.Pv.Vcpu(1)!.Down = false;
        e.Put(PvHarness.Scratch, new VcpuRegisterVcpuInfo { Mfn = 0x90 });
        Assert.Equal(-XenErrno.EINVAL, e.Call(Hypercall.VcpuOp, VcpuOp.RegisterVcpuInfo, 1, PvHarness.Scratch, vcpu: 0));
    }

    [Fact]
    public void RunstateAreaAndInfo()
    {
        var d = _h.NewDomain();
        ulong area = PvHarness.Scratch + 0x3000;
        d.Call(Hypercall.VmAssist, Vmasst.CmdEnable, Vmasst.TypeRunstateUpdateFlag);
        d.Put(PvHarness.Scratch, new VcpuRegisterRunstateMemoryArea { Addr = area });
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.RegisterRunstateMemoryArea, 0, PvHarness.Scratch));
        var v = d.Pv.Vcpu(0)!;
        v.OnBeforeEntry(d.Va);
        var r = d.Get<VcpuRunstateInfo>(area);
        Assert.Equal(VcpuOp.RunstateRunning, r.State);
        Assert.Equal(0UL, r.StateEntryTime & VcpuOp.RunstateUpdate);
        Thread.Sleep(20);
        var ctx = d.Ctx();
        d.Pv.Hypercalls.Dispatch(ctx, Hypercall.SchedOp, new HypercallArgs(SchedOp.Block));
        r = d.Get<VcpuRunstateInfo>(area);
        Assert.Equal(VcpuOp.RunstateBlocked, r.State);
        unsafe { Assert.True(r.Time[VcpuOp.RunstateRunning] >= 15_000_000); }
        Assert.Equal(0, d.Call(Hypercall.VcpuOp, VcpuOp.GetRunstateInfo, 0, PvHarness.Scratch));
        var info = d.Get<VcpuRunstateInfo>(PvHarness.Scratch);
        Assert.Equal(VcpuOp.RunstateBlocked, info.State);
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.VcpuOp, VcpuOp.GetRunstateInfo, 0, 0xffff_0000_0000));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.VcpuOp, VcpuOp.SendNmi, 0));
    }

    // ------------------------------------------------------------ memory_op

    [Fact]
    public void ReservationQueriesAndMemoryMap()
    {
        var d = _h.NewDomain(mib: 16, maxMib: 32);
        d.Put(PvHarness.Scratch, DomId.Self);
        Assert.Equal(4096, d.Call(Hypercall.MemoryOp, MemoryOp.CurrentReservation, PvHarness.Scratch));
        Assert.Equal(8192, d.Call(Hypercall.MemoryOp, MemoryOp.MaximumReservation, PvHarness.Scratch));
        Assert.Equal(4095, d.Call(Hypercall.MemoryOp, MemoryOp.MaximumGpfn, PvHarness.Scratch));
        var other = _h.NewDomain("o");
        d.Put(PvHarness.Scratch, (ushort)other.Domain.Id);
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.MemoryOp, MemoryOp.CurrentReservation, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, (ushort)777);
        Assert.Equal(-XenErrno.ESRCH, d.Call(Hypercall.MemoryOp, MemoryOp.CurrentReservation, PvHarness.Scratch));
        Assert.True(d.Call(Hypercall.MemoryOp, MemoryOp.MaximumRamPage) > 8192);

        ulong buf = PvHarness.Scratch + 0x100;
        d.Put(PvHarness.Scratch, new XenMemoryMap { NrEntries = 8, Buffer = buf });
        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.MemoryMap, PvHarness.Scratch));
        Assert.Equal(1u, d.Get<XenMemoryMap>(PvHarness.Scratch).NrEntries);
        Assert.Equal(0UL, d.Get<ulong>(buf));
        Assert.Equal(32UL << 20, d.Get<ulong>(buf + 8));
        Assert.Equal(1u, d.Get<uint>(buf + 16));
        d.Put(PvHarness.Scratch, new XenMemoryMap { NrEntries = 0, Buffer = buf });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.MemoryOp, MemoryOp.MemoryMap, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new XenMemoryMap { NrEntries = 1, Buffer = 0xffff_0000_0000 });
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.MemoryOp, MemoryOp.MemoryMap, PvHarness.Scratch));

        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.MachphysMapping, PvHarness.Scratch));
        var mm = d.Get<XenMachphysMapping>(PvHarness.Scratch);
        Assert.Equal(d.Pv.MachphysMapping.VStart, mm.VStart);
        Assert.Equal(d.Pv.MachphysMapping.MaxMfn, mm.MaxMfn);
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.MemoryOp, MemoryOp.Exchange, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.MemoryOp, MemoryOp.MachineMemoryMap, PvHarness.Scratch));
    }

    [Fact]
    public void BalloonDownAndBackUp()
    {
        var d = _h.NewDomain(mib: 16, maxMib: 16);
        ulong list = PvHarness.Scratch + 0x800;
        d.Ram.Frame(0x300)[0] = 0x77;
        d.Put(list, 0x300UL);
        d.Put(list + 8, 0x301UL);
        d.Put(list + 16, 0x300UL); // Already ballooned by then: the call stops there.
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 3, Domid = DomId.Self });
        Assert.Equal(2, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));
        Assert.False(d.Pv.IsPopulatedRam(0x300));
        Assert.Equal(0, d.Ram.Frame(0x300)[0]);
        Assert.Equal(4094, d.Pv.PopulatedPages);

        // Hostile extents: outside RAM, misaligned for the order, too large an order, wild list.
        d.Put(list, 1UL << 40);
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 1, Domid = DomId.Self });
        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));
        d.Put(list, 0x401UL);
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 1, ExtentOrder = 1, Domid = DomId.Self });
        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 1, ExtentOrder = 20, Domid = DomId.Self });
        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = 0xffff_0000_0000, NrExtents = ulong.MaxValue, Domid = DomId.Self });
        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));

        // populate_physmap brings 0x300 back (PV: the MFN is written back, identity).
        d.Put(list, 0x300UL);
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 1, Domid = DomId.Self });
        Assert.Equal(1, d.Call(Hypercall.MemoryOp, MemoryOp.PopulatePhysmap, PvHarness.Scratch));
        Assert.True(d.Pv.IsPopulatedRam(0x300));
        Assert.Equal(0x300UL, d.Get<ulong>(list));
        // Populating a populated frame fails.
        Assert.Equal(0, d.Call(Hypercall.MemoryOp, MemoryOp.PopulatePhysmap, PvHarness.Scratch));
        // increase_reservation finds the other hole (0x301), then max_pages stops it.
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 2, Domid = DomId.Self });
        Assert.Equal(1, d.Call(Hypercall.MemoryOp, MemoryOp.IncreaseReservation, PvHarness.Scratch));
        Assert.Equal(0x301UL, d.Get<ulong>(list));
        Assert.Equal(4096, d.Pv.PopulatedPages);
        // Another domain's reservation is not ours to change.
        var o = _h.NewDomain("o");
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 1, Domid = (ushort)o.Domain.Id });
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));
    }

    [Fact]
    public void BalloonDownGivesTheHostPagesBackAndPopulateTakesThemAgain()
    {
        var d = _h.NewDomain(mib: 64, maxMib: 64);
        ulong list = PvHarness.Scratch + 0x800;
        // The guest touches 16 MiB at 32 MiB (frames 0x2000-0x2fff): the memfd now holds them.
        for (ulong pfn = 0x2000; pfn < 0x3000; pfn++) d.Ram.Frame(pfn)[7] = 1;
        // Balloon those 16 MiB out in 2 MiB extents (order 9, as Linux's balloon driver does when it can).
        for (int i = 0; i < 8; i++) d.Put(list + (ulong)i * 8, 0x2000UL + (ulong)i * 512);
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 8, ExtentOrder = 9, Domid = DomId.Self });
        ulong touched = d.Ram.AllocatedBytes;
        Assert.True(touched >= 16UL << 20, $"memfd holds {touched} bytes after touching 16 MiB");
        Assert.Equal(8, d.Call(Hypercall.MemoryOp, MemoryOp.DecreaseReservation, PvHarness.Scratch));
        ulong after = d.Ram.AllocatedBytes;
        Assert.True(touched - after >= 16UL << 20, $"st_blocks: {touched} bytes before the balloon, {after} after: expected 16 MiB fewer");
        Assert.Equal(16384 - 4096, d.Pv.PopulatedPages);

        // populate_physmap gives them back to the guest; the host pages come back as the guest writes them.
        d.Put(PvHarness.Scratch, new XenMemoryReservation { ExtentStart = list, NrExtents = 8, ExtentOrder = 9, Domid = DomId.Self });
        Assert.Equal(8, d.Call(Hypercall.MemoryOp, MemoryOp.PopulatePhysmap, PvHarness.Scratch));
        Assert.Equal(16384, d.Pv.PopulatedPages);
        Assert.Equal(0, d.Ram.Frame(0x2000)[7]);
        for (ulong pfn = 0x2000; pfn < 0x3000; pfn++) d.Ram.Frame(pfn)[7] = 1;
        Assert.True(d.Ram.AllocatedBytes - after >= 16UL << 20);
    }
}
