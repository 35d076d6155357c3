using System.Runtime.CompilerServices;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv;

/// <summary>The state of one event channel (Xen's ECS_*; numbered as EVTCHNSTAT_*).</summary>
public enum EventChannelState
{
    Free = 0,
    Unbound = 1,
    Interdomain = 2,
    Pirq = 3,
    Virq = 4,
    Ipi = 5,
    /// <summary>Port 0: never usable.</summary>
    Reserved = 6,
}

/// <summary>A read-only view of a port, for tests, xl debug-keys and backends.</summary>
public readonly record struct EventChannelInfo(uint Port, EventChannelState State, int NotifyVcpu, uint RemoteDomain, uint RemotePort, uint Virq);

/// <summary>
/// A domain's event channels, 2-level ABI: 4096 ports whose pending and mask bits live in shared_info,
/// and whose selector bits and upcall flag live in each vCPU's vcpu_info. Binding changes take the domain's
/// lock (both domains' locks, in domain-id order, for interdomain changes); raising a port is lock-free on
/// the guest's bitmaps, with atomics, because the guest runs concurrently.
/// </summary>
public sealed class EventChannels
{
    public const int NrPorts = EvtchnOp.TwoLevelChannels;
    private const ulong PendingOffset = 2048, MaskOffset = 2560;

    private sealed class Channel
    {
        public EventChannelState State;
        public int NotifyVcpu;
        /// <summary>Unbound: the domain allowed to bind. Interdomain: the remote domain id.</summary>
        public uint RemoteDomid;
        public PvDomainState? Remote;
        public uint RemotePort;
        public uint Virq;
        public Dom0Channel? Dom0;
    }

    private readonly PvDomainState _d;
    internal readonly object Lock = new();
    private readonly Channel?[] _ports = new Channel?[NrPorts];
    private readonly Dictionary<int, uint[]> _virqToPort = new();

    internal EventChannels(PvDomainState domainState)
    {
        _d = domainState;
        _ports[0] = new Channel { State = EventChannelState.Reserved };
    }

    private uint SelfId => _d.DomainId;

    private static bool Valid(uint port) => port < NrPorts;

    // ================================================================ queries

    public EventChannelInfo Info(uint port)
    {
        lock (Lock)
        {
            var c = Valid(port) ? _ports[port] : null;
            if (c is null) return new EventChannelInfo(port, EventChannelState.Free, 0, 0, 0, 0);
            return new EventChannelInfo(port, c.State, c.NotifyVcpu, c.RemoteDomid, c.RemotePort, c.Virq);
        }
    }

    /// <summary>The pending bit of <paramref name="port"/> in shared_info (false for invalid ports).</summary>
    public bool IsPending(uint port)
    {
        if (!Valid(port)) return false;
        return (Volatile.Read(ref PendingWord(port)) & Bit(port)) != 0;
    }

    public bool IsMasked(uint port)
    {
        if (!Valid(port)) return true;
        return (Volatile.Read(ref MaskWord(port)) & Bit(port)) != 0;
    }

    private ref long PendingWord(uint port) => ref _d.SharedInfo.Int64At(PendingOffset + port / 64 * 8);
    private ref long MaskWord(uint port) => ref _d.SharedInfo.Int64At(MaskOffset + port / 64 * 8);
    private static long Bit(uint port) => 1L << (int)(port % 64);

    // ================================================================ raising

    /// <summary>
    /// Marks <paramref name="port"/> pending for vCPU <paramref name="vcpu"/> (2-level set_pending): set the pending
    /// bit; if it was clear and the port is unmasked, set the selector bit, and if that was clear, the upcall flag,
    /// and kick the vCPU. Wakes pollers either way.
    /// </summary>
    private void SetPending(uint port, int vcpu)
    {
        try
        {
            long bit = Bit(port);
            if ((Interlocked.Or(ref PendingWord(port), bit) & bit) != 0) return;
            if ((Volatile.Read(ref MaskWord(port)) & bit) == 0)
                _d.Vcpu(vcpu)?.MarkPending((int)(port / 64));
            foreach (var v in _d.AllVcpus)
                if (v.PollPorts is { } pp && pp.Contains(port)) v.Kick();
        }
        catch (ObjectDisposedException)
        {
            // The domain is being destroyed; events to it are dropped.
        }
    }

    /// <summary>Raises <paramref name="port"/> toward its bound vCPU (any state that can be raised). Used by the hypervisor and dom0.</summary>
    public void Raise(uint port)
    {
        int vcpu;
        lock (Lock)
        {
            var c = Valid(port) ? _ports[port] : null;
            if (c is null || c.State is EventChannelState.Free or EventChannelState.Reserved) return;
            vcpu = c.NotifyVcpu;
        }
        SetPending(port, vcpu);
    }

    /// <summary>Sends VIRQ <paramref name="virq"/> to vCPU <paramref name="vcpu"/> (per-vCPU virqs) or to the domain (global virqs, bound on vCPU 0). False when not bound.</summary>
    public bool RaiseVirq(uint virq, int vcpu = 0)
    {
        if (virq >= Virq.Count) return false;
        int owner = IsGlobalVirq(virq) ? 0 : vcpu;
        uint port;
        int notify;
        lock (Lock)
        {
            if (!_virqToPort.TryGetValue(owner, out var map) || (port = map[virq]) == 0) return false;
            notify = _ports[port]!.NotifyVcpu;
        }
        SetPending(port, notify);
        return true;
    }

    /// <summary>Per-vCPU virqs (Xen's virq_is_global is false for these): timer, debug, xenoprof, xenpmu.</summary>
    public static bool IsGlobalVirq(uint virq) =>
        virq is not (Virq.Timer or Virq.Debug or Virq.Xenoprof or Virq.Xenpmu);

    // ================================================================ hypercall operations (0 or -errno)

    private int AllocatePortLocked(out uint port)
    {
        for (uint p = 1; p < NrPorts; p++)
        {
            if (_ports[p] is null)
            {
                port = p;
                return 0;
            }
        }
        port = 0;
        return -XenErrno.ENOSPC;
    }

    /// <summary>Resolves a domid argument that must name the caller: DOMID_SELF or its own id; -ESRCH/-EPERM otherwise.</summary>
    internal int CheckSelf(ushort dom)
    {
        if (dom == DomId.Self || dom == SelfId) return 0;
        if (dom != 0 && _d.Domain.Hypervisor.Find(dom) is null) return -XenErrno.ESRCH;
        return -XenErrno.EPERM;
    }

    public int AllocUnbound(ushort dom, ushort remoteDom, out uint port)
    {
        port = 0;
        int rc = CheckSelf(dom);
        if (rc != 0) return rc;
        lock (Lock)
        {
            rc = AllocatePortLocked(out port);
            if (rc != 0) return rc;
            _ports[port] = new Channel
            {
                State = EventChannelState.Unbound,
                RemoteDomid = remoteDom == DomId.Self ? SelfId : remoteDom,
            };
        }
        return 0;
    }

    public int BindInterdomain(ushort remoteDom, uint remotePort, out uint localPort)
    {
        localPort = 0;
        uint rdom = remoteDom == DomId.Self ? SelfId : remoteDom;
        if (rdom == 0)
            return Dom0Ports.For(_d.Domain.Hypervisor).BindGuestToDom0(this, remotePort, out localPort);
        var rd = rdom == SelfId ? _d : (_d.Domain.Hypervisor.Find(rdom) is { } dom ? PvDomainState.Of(dom) : null);
        if (rd is null) return -XenErrno.ESRCH;
        var remote = rd.Events;
        var (first, second) = SelfId <= rd.DomainId ? (this, remote) : (remote, this);
        lock (first.Lock)
        lock (second.Lock)
        {
            int rc = AllocatePortLocked(out localPort);
            if (rc != 0) return rc;
            if (!Valid(remotePort)) return -XenErrno.EINVAL;
            var rc2 = remote._ports[remotePort];
            if (rc2 is null || rc2.State != EventChannelState.Unbound || rc2.RemoteDomid != SelfId || rc2.Dom0 is not null)
                return -XenErrno.EINVAL;
            if (ReferenceEquals(remote, this) && remotePort == localPort) return -XenErrno.EINVAL;
            _ports[localPort] = new Channel { State = EventChannelState.Interdomain, Remote = rd, RemoteDomid = rd.DomainId, RemotePort = remotePort };
            rc2.State = EventChannelState.Interdomain;
            rc2.Remote = _d;
            rc2.RemoteDomid = SelfId;
            rc2.RemotePort = localPort;
        }
        // Notifications sent on the remote port while it was unbound were dropped: raise ours conservatively, as Xen does.
        SetPending(localPort, 0);
        return 0;
    }

    public int BindVirq(uint virq, uint vcpu, out uint port)
    {
        port = 0;
        if (virq >= Virq.Count) return -XenErrno.EINVAL;
        if (IsGlobalVirq(virq) && vcpu != 0) return -XenErrno.EINVAL;
        if (vcpu > int.MaxValue || _d.Vcpu((int)vcpu) is null) return -XenErrno.ENOENT;
        lock (Lock)
        {
            if (!_virqToPort.TryGetValue((int)vcpu, out var map)) _virqToPort[(int)vcpu] = map = new uint[Virq.Count];
            if (map[virq] != 0) return -XenErrno.EEXIST;
            int rc = AllocatePortLocked(out port);
            if (rc != 0) return rc;
            _ports[port] = new Channel { State = EventChannelState.Virq, Virq = virq, NotifyVcpu = (int)vcpu };
            map[virq] = port;
        }
        return 0;
    }

    public int BindIpi(uint vcpu, out uint port)
    {
        port = 0;
        if (vcpu > int.MaxValue || _d.Vcpu((int)vcpu) is null) return -XenErrno.ENOENT;
        lock (Lock)
        {
            int rc = AllocatePortLocked(out port);
            if (rc != 0) return rc;
            _ports[port] = new Channel { State = EventChannelState.Ipi, NotifyVcpu = (int)vcpu };
        }
        return 0;
    }

    public int Close(uint port)
    {
        if (!Valid(port)) return -XenErrno.EINVAL;
        while (true)
        {
            PvDomainState? remote;
            lock (Lock)
            {
                var c = _ports[port];
                if (c is null || c.State is EventChannelState.Free or EventChannelState.Reserved) return -XenErrno.EINVAL;
                if (c.State != EventChannelState.Interdomain || c.Remote is null || ReferenceEquals(c.Remote, _d))
                {
                    CloseLocked(port, c);
                    return 0;
                }
                remote = c.Remote;
            }
            // Interdomain with another domain: take both locks in order, then re-check.
            var (first, second) = SelfId <= remote.DomainId ? (this, remote.Events) : (remote.Events, this);
            lock (first.Lock)
            lock (second.Lock)
            {
                var c = _ports[port];
                if (c is null || c.State is EventChannelState.Free or EventChannelState.Reserved) return -XenErrno.EINVAL;
                if (c.State == EventChannelState.Interdomain && !ReferenceEquals(c.Remote, remote)) continue;
                CloseLocked(port, c);
                return 0;
            }
        }
    }

    /// <summary>Frees a port; for interdomain, the other end becomes unbound (allowing us to rebind). Needs the remote lock too.</summary>
    private void CloseLocked(uint port, Channel c)
    {
        switch (c.State)
        {
            case EventChannelState.Virq:
                if (_virqToPort.TryGetValue(IsGlobalVirq(c.Virq) ? 0 : c.NotifyVcpu, out var map) && map[c.Virq] == port) map[c.Virq] = 0;
                else foreach (var m in _virqToPort.Values) if (m[c.Virq] == port) m[c.Virq] = 0;
                break;
            case EventChannelState.Interdomain when c.Dom0 is not null:
                c.Dom0.GuestClosed();
                break;
            case EventChannelState.Interdomain when c.Remote is not null:
                var rc = c.Remote.Events._ports[c.RemotePort];
                if (rc is not null && rc.State == EventChannelState.Interdomain && ReferenceEquals(rc.Remote, _d) && rc.RemotePort == port)
                {
                    rc.State = EventChannelState.Unbound;
                    rc.Remote = null;
                    rc.RemoteDomid = SelfId;
                    rc.RemotePort = 0;
                }
                break;
            case EventChannelState.Unbound when c.Dom0 is not null:
                c.Dom0.GuestClosed();
                break;
        }
        _ports[port] = null;
        try { Interlocked.And(ref PendingWord(port), ~Bit(port)); } catch (ObjectDisposedException) { }
    }

    public int Send(uint port)
    {
        if (!Valid(port)) return -XenErrno.EINVAL;
        PvDomainState? remote;
        uint rport;
        Dom0Channel? dom0;
        int notify;
        lock (Lock)
        {
            var c = _ports[port];
            if (c is null) return -XenErrno.EINVAL;
            switch (c.State)
            {
                case EventChannelState.Interdomain:
                    remote = c.Remote;
                    rport = c.RemotePort;
                    dom0 = c.Dom0;
                    notify = 0;
                    break;
                case EventChannelState.Ipi:
                    notify = c.NotifyVcpu;
                    remote = null;
                    rport = 0;
                    dom0 = null;
                    break;
                case EventChannelState.Unbound:
                    return 0; // Nobody listens yet: dropped, as on Xen.
                default:
                    return -XenErrno.EINVAL;
            }
        }
        if (dom0 is not null) dom0.GuestSent();
        else if (remote is not null) remote.Events.Raise(rport);
        else SetPending(port, notify);
        return 0;
    }

    public int Status(ref EvtchnStatus st)
    {
        int rc = CheckSelf(st.Dom);
        if (rc != 0) return rc;
        if (!Valid(st.Port)) return -XenErrno.EINVAL;
        uint port = st.Port;
        ushort dom = st.Dom;
        lock (Lock)
        {
            var c = _ports[port];
            st = new EvtchnStatus { Dom = dom, Port = port, Vcpu = (uint)(c?.NotifyVcpu ?? 0) };
            switch (c?.State ?? EventChannelState.Free)
            {
                case EventChannelState.Free:
                case EventChannelState.Reserved:
                    st.Status = EvtchnOp.StatClosed;
                    break;
                case EventChannelState.Unbound:
                    st.Status = EvtchnOp.StatUnbound;
                    st.UnboundDom = (ushort)c!.RemoteDomid;
                    break;
                case EventChannelState.Interdomain:
                    st.Status = EvtchnOp.StatInterdomain;
                    st.InterdomainDom = (ushort)c!.RemoteDomid;
                    st.InterdomainPort = c.RemotePort;
                    break;
                case EventChannelState.Virq:
                    st.Status = EvtchnOp.StatVirq;
                    st.Virq = c!.Virq;
                    break;
                case EventChannelState.Ipi:
                    st.Status = EvtchnOp.StatIpi;
                    break;
                case EventChannelState.Pirq:
                    st.Status = EvtchnOp.StatPirq;
                    break;
            }
        }
        return 0;
    }

    /// <summary>EVTCHNOP_unmask: clear the mask bit; if it was set and the port is pending, set the selector and upcall flags of the bound vCPU.</summary>
    public int Unmask(uint port)
    {
        if (!Valid(port)) return -XenErrno.EINVAL;
        int vcpu;
        lock (Lock) vcpu = _ports[port]?.NotifyVcpu ?? 0;
        long bit = Bit(port);
        if ((Interlocked.And(ref MaskWord(port), ~bit) & bit) != 0 && (Volatile.Read(ref PendingWord(port)) & bit) != 0)
            _d.Vcpu(vcpu)?.MarkPending((int)(port / 64));
        return 0;
    }

    public int BindVcpu(uint port, uint vcpu)
    {
        if (vcpu > int.MaxValue || _d.Vcpu((int)vcpu) is null) return -XenErrno.ENOENT;
        if (!Valid(port)) return -XenErrno.EINVAL;
        lock (Lock)
        {
            var c = _ports[port];
            if (c is null) return -XenErrno.EINVAL;
            switch (c.State)
            {
                case EventChannelState.Virq when IsGlobalVirq(c.Virq):
                case EventChannelState.Unbound:
                case EventChannelState.Interdomain:
                    c.NotifyVcpu = (int)vcpu;
                    return 0;
                default:
                    return -XenErrno.EINVAL;
            }
        }
    }

    /// <summary>EVTCHNOP_reset on itself: closes every port.</summary>
    public int Reset(ushort dom)
    {
        int rc = CheckSelf(dom);
        if (rc != 0) return rc;
        CloseAll();
        return 0;
    }

    /// <summary>Closes every port (reset, domain destruction): remote ends become unbound, dom0 ends are told.</summary>
    public void CloseAll()
    {
        for (uint p = 1; p < NrPorts; p++)
        {
            bool used;
            lock (Lock) used = _ports[p] is not null;
            if (used) Close(p);
        }
    }

    // ================================================================ dom0 (the host's backends) API

    /// <summary>
    /// Builder/toolstack: allocates a guest port, unbound, that dom0 may bind (start_info console/store ports).
    /// </summary>
    public uint AllocateUnboundForDom0()
    {
        int rc = AllocUnbound(DomId.Self, 0, out uint port);
        if (rc != 0) throw new InvalidOperationException($"d{SelfId}: no free event channel ({rc})");
        return port;
    }

    /// <summary>
    /// A dom0 backend binds guest port <paramref name="guestPort"/>, which the guest (or the builder) allocated
    /// unbound for remote domain 0. <paramref name="onGuestSend"/> runs on the guest's vCPU thread each time
    /// the guest sends on the port: keep it short (hand work to the backend's own thread).
    /// Throws <see cref="EventChannelException"/> with Xen's errno when the port is not bindable.
    /// </summary>
    public Dom0Channel BindInterdomainFromDom0(uint guestPort, Action<Dom0Channel>? onGuestSend)
    {
        var dom0 = Dom0Ports.For(_d.Domain.Hypervisor);
        Dom0Channel ch;
        lock (Lock)
        {
            var c = Valid(guestPort) ? _ports[guestPort] : null;
            if (c is null || c.State != EventChannelState.Unbound || c.RemoteDomid != 0 || c.Dom0 is not null)
                throw new EventChannelException(-XenErrno.EINVAL, $"d{SelfId} port {guestPort} is not unbound for dom0");
            ch = dom0.Create(this, guestPort, onGuestSend);
            c.State = EventChannelState.Interdomain;
            c.Dom0 = ch;
            c.RemoteDomid = 0;
            c.RemotePort = ch.Dom0Port;
        }
        SetPending(guestPort, 0);
        return ch;
    }

    /// <summary>Guest → dom0 binding (EVTCHNOP_bind_interdomain with remote_dom 0) onto a dom0 port that dom0 left unbound for us.</summary>
    internal int BindToDom0Channel(Dom0Channel ch, out uint localPort)
    {
        lock (Lock)
        {
            int rc = AllocatePortLocked(out localPort);
            if (rc != 0) return rc;
            _ports[localPort] = new Channel { State = EventChannelState.Interdomain, Dom0 = ch, RemoteDomid = 0, RemotePort = ch.Dom0Port };
        }
        SetPending(localPort, 0);
        return 0;
    }

    /// <summary>dom0 closed its end: the guest port becomes unbound (for dom0).</summary>
    internal void Dom0Closed(uint guestPort, Dom0Channel ch)
    {
        lock (Lock)
        {
            var c = Valid(guestPort) ? _ports[guestPort] : null;
            if (c is null || !ReferenceEquals(c.Dom0, ch)) return;
            c.State = EventChannelState.Unbound;
            c.Dom0 = null;
            c.RemoteDomid = 0;
            c.RemotePort = 0;
        }
    }

    internal PvDomainState Owner => _d;
}

/// <summary>An event channel operation failed with a Xen errno (negative).</summary>
public sealed class EventChannelException(int errno, string message) : Exception(message)
{
    public int Errno { get; } = errno;
}

/// <summary>
/// Dom0's end of an interdomain channel. Dom0 is the host (XenSharp's xld): it has no shared_info, so its
/// "pending bit" is the <see cref="OnGuestSend"/> callback.
/// </summary>
public sealed class Dom0Channel
{
    private readonly Dom0Ports _owner;
    private volatile EventChannels? _guest;
    private volatile bool _open = true;

    internal Dom0Channel(Dom0Ports owner, uint dom0Port, EventChannels? guest, uint guestPort, uint allowedDomid, Action<Dom0Channel>? onGuestSend)
    {
        _owner = owner;
        Dom0Port = dom0Port;
        _guest = guest;
        GuestPort = guestPort;
        AllowedDomid = allowedDomid;
        OnGuestSend = onGuestSend;
    }

    public uint Dom0Port { get; }
    /// <summary>The guest's port (0 while a dom0-unbound channel waits for the guest to bind).</summary>
    public uint GuestPort { get; private set; }
    public uint AllowedDomid { get; }
    public uint GuestDomainId => _guest?.Owner.DomainId ?? AllowedDomid;
    public bool IsBound => _guest is not null && _open;
    public bool IsOpen => _open;
    /// <summary>Runs on the guest's vCPU thread when the guest sends on its end.</summary>
    public Action<Dom0Channel>? OnGuestSend { get; set; }
    /// <summary>Runs when the guest closes its end (or the domain dies).</summary>
    public Action<Dom0Channel>? OnGuestClosed { get; set; }

    /// <summary>Dom0 → guest notification: raises the guest's port. Does nothing once either end closed.</summary>
    public void Notify()
    {
        var g = _guest;
        if (g is not null && _open) g.Raise(GuestPort);
    }

    /// <summary>Dom0 closes its end: the guest port becomes unbound.</summary>
    public void Close()
    {
        if (!_open) return;
        _open = false;
        _owner.Remove(Dom0Port);
        _guest?.Dom0Closed(GuestPort, this);
    }

    internal void GuestSent()
    {
        if (_open) OnGuestSend?.Invoke(this);
    }

    internal void GuestClosed()
    {
        // As on Xen, our end becomes unbound; a dom0 backend treats it as the frontend going away.
        _guest = null;
        _open = false;
        _owner.Remove(Dom0Port);
        OnGuestClosed?.Invoke(this);
    }

    internal void Attach(EventChannels guest, uint guestPort)
    {
        _guest = guest;
        GuestPort = guestPort;
    }
}

/// <summary>Dom0's port numbers, per hypervisor.</summary>
public sealed class Dom0Ports
{
    private static readonly ConditionalWeakTable<XenHypervisor, Dom0Ports> s_all = new();
    private readonly object _lock = new();
    private readonly Dictionary<uint, Dom0Channel> _ports = new();
    private uint _next = 1;

    public static Dom0Ports For(XenHypervisor hv)
    {
        lock (s_all) return s_all.GetValue(hv, _ => new Dom0Ports());
    }

    private uint AllocateLocked()
    {
        while (_ports.ContainsKey(_next) || _next == 0) _next++;
        return _next++;
    }

    internal Dom0Channel Create(EventChannels guest, uint guestPort, Action<Dom0Channel>? onSend)
    {
        lock (_lock)
        {
            var ch = new Dom0Channel(this, AllocateLocked(), guest, guestPort, guest.Owner.DomainId, onSend);
            _ports[ch.Dom0Port] = ch;
            return ch;
        }
    }

    /// <summary>Dom0 allocates an unbound port that domain <paramref name="remoteDomid"/> may bind with EVTCHNOP_bind_interdomain(0, port).</summary>
    public Dom0Channel AllocateUnbound(uint remoteDomid, Action<Dom0Channel>? onGuestSend)
    {
        lock (_lock)
        {
            var ch = new Dom0Channel(this, AllocateLocked(), null, 0, remoteDomid, onGuestSend);
            _ports[ch.Dom0Port] = ch;
            return ch;
        }
    }

    internal int BindGuestToDom0(EventChannels guest, uint dom0Port, out uint localPort)
    {
        localPort = 0;
        Dom0Channel? ch;
        lock (_lock)
        {
            if (!_ports.TryGetValue(dom0Port, out ch) || ch.IsBound || !ch.IsOpen || ch.AllowedDomid != guest.Owner.DomainId)
                return -XenErrno.EINVAL;
            int rc = guest.BindToDom0Channel(ch, out localPort);
            if (rc != 0) return rc;
            ch.Attach(guest, localPort);
        }
        return 0;
    }

    internal void Remove(uint port)
    {
        lock (_lock) _ports.Remove(port);
    }
}
