using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.PvServices;

public sealed class EventChannelTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    [Fact]
    public void IpiLoopbackSetsPendingSelectorAndUpcallAndKicks()
    {
        var d = _h.NewDomain();
        d.Pv.Vcpu(0)!.EvtchnUpcallMask = false;
        var (rc, ipi) = d.Evtchn(EvtchnOp.BindIpi, new EvtchnBindIpi { Vcpu = 0 });
        Assert.Equal(0, rc);
        Assert.True(ipi.Port >= 1);
        int kicks = d.Kicks(0);
        Assert.Equal(0, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = ipi.Port }).Rc);
        Assert.True(d.Pending(ipi.Port));
        Assert.Equal(1UL << (int)(ipi.Port / 64), d.PendingSel(0));
        Assert.Equal(1, d.UpcallPending(0));
        Assert.True(d.Pv.Vcpu(0)!.UpcallPending);
        Assert.True(d.Kicks(0) > kicks);
        // Sending again while pending changes nothing and does not kick.
        kicks = d.Kicks(0);
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = ipi.Port });
        Assert.Equal(kicks, d.Kicks(0));
    }

    [Fact]
    public void MaskedPortIsPendingButNoUpcallUntilUnmask()
    {
        var d = _h.NewDomain();
        var (_, ipi) = d.Evtchn(EvtchnOp.BindIpi, new EvtchnBindIpi { Vcpu = 1 });
        d.SetMask(ipi.Port, true);
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = ipi.Port });
        Assert.True(d.Pending(ipi.Port));
        Assert.Equal(0UL, d.PendingSel(1));
        Assert.Equal(0, d.UpcallPending(1));
        Assert.Equal(0, d.Evtchn(EvtchnOp.Unmask, new EvtchnUnmask { Port = ipi.Port }).Rc);
        Assert.False(d.Masked(ipi.Port));
        Assert.Equal(1UL << (int)(ipi.Port / 64), d.PendingSel(1));
        Assert.Equal(1, d.UpcallPending(1));
        // The upcall is due on vCPU 1 only once it unmasks events (vcpu_info mask starts at 1).
        Assert.False(d.Pv.Vcpu(1)!.UpcallPending);
        d.Pv.Vcpu(1)!.EvtchnUpcallMask = false;
        Assert.True(d.Pv.Vcpu(1)!.UpcallPending);
        Assert.Equal(0, d.UpcallPending(0));
    }

    [Fact]
    public void UnmaskOfNotPendingPortDoesNotRaise()
    {
        var d = _h.NewDomain();
        var (_, ipi) = d.Evtchn(EvtchnOp.BindIpi, new EvtchnBindIpi { Vcpu = 0 });
        d.SetMask(ipi.Port, true);
        Assert.Equal(0, d.Evtchn(EvtchnOp.Unmask, new EvtchnUnmask { Port = ipi.Port }).Rc);
        Assert.Equal(0, d.UpcallPending(0));
        Assert.Equal(0UL, d.PendingSel(0));
    }

    [Fact]
    public void InterdomainBetweenTwoDomains()
    {
        var a = _h.NewDomain("a");
        var b = _h.NewDomain("b");
        var (rc, un) = a.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = DomId.Self, RemoteDom = (ushort)b.Domain.Id });
        Assert.Equal(0, rc);
        var (rc2, bi) = b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = un.Port });
        Assert.Equal(0, rc2);
        // Xen raises the new local port conservatively.
        Assert.True(b.Pending(bi.LocalPort));
        b.GuestAcknowledgeAll(0);

        Assert.Equal(0, a.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = un.Port }).Rc);
        Assert.True(b.Pending(bi.LocalPort));
        Assert.False(a.Pending(un.Port));
        Assert.Equal(0, b.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = bi.LocalPort }).Rc);
        Assert.True(a.Pending(un.Port));

        var (src, st) = a.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = DomId.Self, Port = un.Port });
        Assert.Equal(0, src);
        Assert.Equal(EvtchnOp.StatInterdomain, st.Status);
        Assert.Equal((ushort)b.Domain.Id, st.InterdomainDom);
        Assert.Equal(bi.LocalPort, st.InterdomainPort);

        // Closing one end leaves the other unbound (for the closer), and sends there are dropped.
        Assert.Equal(0, b.Evtchn(EvtchnOp.Close, new EvtchnClose { Port = bi.LocalPort }).Rc);
        var (_, st2) = a.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = DomId.Self, Port = un.Port });
        Assert.Equal(EvtchnOp.StatUnbound, st2.Status);
        Assert.Equal((ushort)b.Domain.Id, st2.UnboundDom);
        Assert.Equal(0, a.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = un.Port }).Rc);
        var (_, st3) = b.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = DomId.Self, Port = bi.LocalPort });
        Assert.Equal(EvtchnOp.StatClosed, st3.Status);
    }

    [Fact]
    public void BindInterdomainChecksTheRemoteEnd()
    {
        var a = _h.NewDomain("a");
        var b = _h.NewDomain("b");
        var c = _h.NewDomain("c");
        var (_, un) = a.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = DomId.Self, RemoteDom = (ushort)b.Domain.Id });
        // c is not the domain the port was offered to.
        Assert.Equal(-XenErrno.EINVAL, c.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = un.Port }).Rc);
        Assert.Equal(-XenErrno.EINVAL, b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = 5000 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = 0 }).Rc);
        Assert.Equal(-XenErrno.ESRCH, b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = 999, RemotePort = un.Port }).Rc);
        Assert.Equal(0, b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = un.Port }).Rc);
        // Already bound.
        Assert.Equal(-XenErrno.EINVAL, b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = un.Port }).Rc);
    }

    [Fact]
    public void LoopbackInterdomainWithinOneDomain()
    {
        var d = _h.NewDomain();
        var (_, un) = d.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = DomId.Self, RemoteDom = DomId.Self });
        var (rc, bi) = d.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = DomId.Self, RemotePort = un.Port });
        Assert.Equal(0, rc);
        d.GuestAcknowledgeAll(0);
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = un.Port });
        Assert.True(d.Pending(bi.LocalPort));
        Assert.False(d.Pending(un.Port));
        Assert.Equal(0, d.Evtchn(EvtchnOp.Close, new EvtchnClose { Port = un.Port }).Rc);
        Assert.Equal(EventChannelState.Unbound, d.Pv.Events.Info(bi.LocalPort).State);
    }

    [Fact]
    public void VirqBindingRules()
    {
        var d = _h.NewDomain(vcpus: 2);
        uint t0 = d.BindVirq(Virq.Timer, 0);
        uint t1 = d.BindVirq(Virq.Timer, 1);
        Assert.NotEqual(t0, t1);
        Assert.Equal(-XenErrno.EEXIST, d.Evtchn(EvtchnOp.BindVirq, new EvtchnBindVirq { Virq = Virq.Timer, Vcpu = 0 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.BindVirq, new EvtchnBindVirq { Virq = Virq.Count, Vcpu = 0 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.BindVirq, new EvtchnBindVirq { Virq = Virq.Console, Vcpu = 1 }).Rc);
        Assert.Equal(-XenErrno.ENOENT, d.Evtchn(EvtchnOp.BindVirq, new EvtchnBindVirq { Virq = Virq.Debug, Vcpu = 7 }).Rc);
        uint con = d.BindVirq(Virq.Console, 0);

        Assert.True(d.Pv.Events.RaiseVirq(Virq.Timer, 1));
        Assert.True(d.Pending(t1));
        Assert.False(d.Pending(t0));
        Assert.Equal(1, d.UpcallPending(1));

        // A global virq can move to another vCPU; a per-vCPU one cannot.
        Assert.Equal(0, d.Evtchn(EvtchnOp.BindVcpu, new EvtchnBindVcpu { Port = con, Vcpu = 1 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.BindVcpu, new EvtchnBindVcpu { Port = t0, Vcpu = 1 }).Rc);
        Assert.Equal(-XenErrno.ENOENT, d.Evtchn(EvtchnOp.BindVcpu, new EvtchnBindVcpu { Port = con, Vcpu = 99 }).Rc);

        var (_, st) = d.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = DomId.Self, Port = t1 });
        Assert.Equal(EvtchnOp.StatVirq, st.Status);
        Assert.Equal(Virq.Timer, st.Virq);
        Assert.Equal(1u, st.Vcpu);

        // Close frees the virq for rebinding.
        Assert.Equal(0, d.Evtchn(EvtchnOp.Close, new EvtchnClose { Port = t0 }).Rc);
        Assert.False(d.Pv.Events.RaiseVirq(Virq.Timer, 0));
        d.BindVirq(Virq.Timer, 0);
    }

    [Fact]
    public void HostileArgumentsGetXenErrors()
    {
        var d = _h.NewDomain();
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = 4096 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = uint.MaxValue }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = 0 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = 77 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Close, new EvtchnClose { Port = 0 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Close, new EvtchnClose { Port = 77 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Unmask, new EvtchnUnmask { Port = 4096 }).Rc);
        Assert.Equal(-XenErrno.EINVAL, d.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = DomId.Self, Port = 9999 }).Rc);
        Assert.Equal(-XenErrno.ENOENT, d.Evtchn(EvtchnOp.BindIpi, new EvtchnBindIpi { Vcpu = 5 }).Rc);
        Assert.Equal(-XenErrno.EPERM, d.Evtchn(EvtchnOp.BindPirq, new EvtchnBindVirq { Virq = 3 }).Rc);
        var other = _h.NewDomain("other");
        Assert.Equal(-XenErrno.EPERM, d.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = (ushort)other.Domain.Id, RemoteDom = 0 }).Rc);
        Assert.Equal(-XenErrno.ESRCH, d.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = 1234, RemoteDom = 0 }).Rc);
        Assert.Equal(-XenErrno.EPERM, d.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = (ushort)other.Domain.Id, Port = 1 }).Rc);
        foreach (int cmd in new[] { EvtchnOp.InitControl, EvtchnOp.ExpandArray, EvtchnOp.SetPriority })
            Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.EventChannelOp, (ulong)cmd, PvHarness.Scratch));
        // Wild pointers.
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.EventChannelOp, (ulong)EvtchnOp.Send, 0xdead_beef_0000));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.EventChannelOp, (ulong)EvtchnOp.BindIpi, d.Ram.Size - 4));
    }

    [Fact]
    public void PortSpaceExhaustionGivesEnospc()
    {
        var d = _h.NewDomain();
        for (int i = 1; i < EventChannels.NrPorts; i++)
            Assert.Equal(0, d.Pv.Events.BindIpi(0, out _));
        Assert.Equal(-XenErrno.ENOSPC, d.Pv.Events.BindIpi(0, out _));
        Assert.Equal(0, d.Evtchn(EvtchnOp.Reset, (ushort)DomId.Self).Rc);
        Assert.Equal(0, d.Pv.Events.BindIpi(0, out uint p));
        Assert.Equal(1u, p);
    }

    [Fact]
    public void Dom0BackendChannelBothWays()
    {
        var d = _h.NewDomain();
        uint guestPort = d.Pv.Events.AllocateUnboundForDom0();
        int sends = 0;
        var ch = d.Pv.Events.BindInterdomainFromDom0(guestPort, _ => sends++);
        d.GuestAcknowledgeAll(0);
        Assert.Equal(0, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = guestPort }).Rc);
        Assert.Equal(1, sends);
        ch.Notify();
        Assert.True(d.Pending(guestPort));
        var (_, st) = d.Evtchn(EvtchnOp.Status, new EvtchnStatus { Dom = DomId.Self, Port = guestPort });
        Assert.Equal(EvtchnOp.StatInterdomain, st.Status);
        Assert.Equal((ushort)0, st.InterdomainDom);
        Assert.Equal(ch.Dom0Port, st.InterdomainPort);
        // Binding twice is refused; a port not offered to dom0 cannot be bound.
        Assert.Throws<EventChannelException>(() => d.Pv.Events.BindInterdomainFromDom0(guestPort, null));
        var (_, own) = d.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = DomId.Self, RemoteDom = DomId.Self });
        Assert.Throws<EventChannelException>(() => d.Pv.Events.BindInterdomainFromDom0(own.Port, null));
        // Dom0 closes: the guest port is unbound again and sends are dropped.
        ch.Close();
        Assert.Equal(EventChannelState.Unbound, d.Pv.Events.Info(guestPort).State);
        Assert.Equal(0, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = guestPort }).Rc);
        Assert.Equal(1, sends);
    }

    [Fact]
    public void GuestClosingDom0ChannelTellsTheBackend()
    {
        var d = _h.NewDomain();
        uint guestPort = d.Pv.Events.AllocateUnboundForDom0();
        bool closed = false;
        var ch = d.Pv.Events.BindInterdomainFromDom0(guestPort, null);
        ch.OnGuestClosed = _ => closed = true;
        Assert.Equal(0, d.Evtchn(EvtchnOp.Close, new EvtchnClose { Port = guestPort }).Rc);
        Assert.True(closed);
        Assert.False(ch.IsOpen);
        ch.Notify(); // Harmless.
    }

    [Fact]
    public void GuestBindsToDom0UnboundPort()
    {
        var d = _h.NewDomain();
        int sends = 0;
        var ch = Dom0Ports.For(_h.Hv).AllocateUnbound(d.Domain.Id, _ => sends++);
        var (rc, bi) = d.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = 0, RemotePort = ch.Dom0Port });
        Assert.Equal(0, rc);
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = bi.LocalPort });
        Assert.Equal(1, sends);
        d.GuestAcknowledgeAll(0);
        ch.Notify();
        Assert.True(d.Pending(bi.LocalPort));
        var e = _h.NewDomain("e");
        var ch2 = Dom0Ports.For(_h.Hv).AllocateUnbound(d.Domain.Id, null);
        Assert.Equal(-XenErrno.EINVAL, e.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = 0, RemotePort = ch2.Dom0Port }).Rc);
    }

    [Fact]
    public void DestroyingADomainUnbindsItsPeers()
    {
        var a = _h.NewDomain("a");
        var b = _h.NewDomain("b");
        var (_, un) = a.Evtchn(EvtchnOp.AllocUnbound, new EvtchnAllocUnbound { Dom = DomId.Self, RemoteDom = (ushort)b.Domain.Id });
        b.Evtchn(EvtchnOp.BindInterdomain, new EvtchnBindInterdomain { RemoteDom = (ushort)a.Domain.Id, RemotePort = un.Port });
        _h.Hv.Destroy(b.Domain);
        Assert.Equal(EventChannelState.Unbound, a.Pv.Events.Info(un.Port).State);
        Assert.Equal(0, a.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = un.Port }).Rc);
    }

    [Fact]
    public async Task ConcurrentRaisesNeverLoseABit()
    {
        var d = _h.NewDomain();
        var ports = new uint[256];
        for (int i = 0; i < ports.Length; i++) d.Pv.Events.BindIpi(0, out ports[i]);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (int i = t; i < ports.Length; i += 4) d.Pv.Events.Raise(ports[i]);
        })));
        foreach (var p in ports) Assert.True(d.Pending(p));
        ulong expectSel = 0;
        foreach (var p in ports) expectSel |= 1UL << (int)(p / 64);
        Assert.Equal(expectSel, d.PendingSel(0));
    }
}
