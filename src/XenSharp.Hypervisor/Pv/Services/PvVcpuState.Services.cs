using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// Per-vCPU PV state. THIS FILE (Pv/Services/PvVcpuState.Services.cs) is the services half: events, time,
/// timers, runstate, poll, up/down and the initial context of VCPUOP_initialise. The CPU half adds its own
/// fields (trap table, callbacks, kernel stack, segment bases, guest mode...) in its own partial file.
/// Fields read by other threads are volatile or read through atomics.
/// </summary>
public sealed partial class PvVcpuState
{
    private readonly object _lock = new();
    private GuestMemory _vcpuInfoMemory;
    private ulong _vcpuInfoOffset;
    private volatile bool _hasVcpuInfo;

    internal PvVcpuState(PvDomainState domainState, VirtualCpu vcpu)
    {
        DomainState = domainState;
        Vcpu = vcpu;
        Id = vcpu.Id;
        if (Id < X86_64Layout.LegacyMaxVcpus)
        {
            _vcpuInfoMemory = domainState.SharedInfo;
            _vcpuInfoOffset = (ulong)Id * 64;
            _hasVcpuInfo = true;
        }
        else
        {
            // Xen's dummy vcpu_info: events for this vCPU go nowhere until the guest registers one.
            _vcpuInfoMemory = domainState.DummyPage;
            _vcpuInfoOffset = 0;
        }
        Down = !vcpu.StartsOnline;
        Initialised = vcpu.StartsOnline;
        _runstate = Down ? VcpuRunState.Offline : VcpuRunState.Runnable;
        _runstateEntry = 0;
        PeriodicPeriodNs = DefaultPeriodNs;
        PeriodicNextNs = DefaultPeriodNs;
        // vcpu_info.time must be valid before the guest first runs (Linux reads it very early).
        if (_hasVcpuInfo) PublishTime();
    }

    public PvDomainState DomainState { get; }
    public VirtualCpu Vcpu { get; }
    public int Id { get; }

    // ---------------------------------------------------------------- vcpu_info and events

    /// <summary>Where this vCPU's vcpu_info lives now: a shared_info slot or the area registered with VCPUOP_register_vcpu_info.</summary>
    public (GuestMemory Memory, ulong Offset) VcpuInfoLocation
    {
        get { lock (_lock) return (_vcpuInfoMemory, _vcpuInfoOffset); }
    }

    /// <summary>True once VCPUOP_register_vcpu_info moved vcpu_info into guest RAM.</summary>
    public bool VcpuInfoRegistered { get; private set; }

    /// <summary>False for vCPUs ≥ 32 that have not registered a vcpu_info: they cannot receive events.</summary>
    public bool HasVcpuInfo => _hasVcpuInfo;

    private ref byte InfoByte(int field)
    {
        var (m, o) = (_vcpuInfoMemory, _vcpuInfoOffset);
        return ref m.Span(o + (ulong)field, 1)[0];
    }

    private ref long PendingSel => ref _vcpuInfoMemory.Int64At(_vcpuInfoOffset + 8);

    /// <summary>vcpu_info.evtchn_upcall_pending (lock-free).</summary>
    public bool EvtchnUpcallPending => _hasVcpuInfo && Volatile.Read(ref InfoByte(0)) != 0;

    /// <summary>vcpu_info.evtchn_upcall_mask (lock-free): the guest's virtual interrupt flag, inverted.</summary>
    public bool EvtchnUpcallMask
    {
        get => !_hasVcpuInfo || Volatile.Read(ref InfoByte(1)) != 0;
        set { if (_hasVcpuInfo) Volatile.Write(ref InfoByte(1), value ? (byte)1 : (byte)0); }
    }

    /// <summary>An event upcall is due: pending and not masked. The CPU half bounces to the event callback when this is true before entry.</summary>
    public bool UpcallPending => EvtchnUpcallPending && !EvtchnUpcallMask;

    /// <summary>Writes vcpu_info.arch.cr2 (the CPU half's #PF bounce).</summary>
    public void WriteCr2(ulong cr2)
    {
        if (_hasVcpuInfo) Volatile.Write(ref _vcpuInfoMemory.Int64At(_vcpuInfoOffset + 16), (long)cr2);
    }

    /// <summary>Sets the selector bit for word <paramref name="word"/>; when it was clear, marks an upcall pending and kicks. Thread-safe.</summary>
    internal void MarkPending(int word)
    {
        if (!_hasVcpuInfo) return;
        long bit = 1L << word;
        long old = Interlocked.Or(ref PendingSel, bit);
        if ((old & bit) != 0) return;
        MarkUpcallPending();
    }

    /// <summary>vcpu_mark_events_pending: sets evtchn_upcall_pending and kicks the vCPU when it was clear.</summary>
    internal void MarkUpcallPending()
    {
        if (!_hasVcpuInfo) return;
        ref byte p = ref InfoByte(0);
        if (Interlocked.Exchange(ref p, 1) != 0) return;
        Kick();
    }

    /// <summary>Interrupts the vCPU (or wakes it from block/poll) unless it is down.</summary>
    internal void Kick()
    {
        if (Down) return;
        Vcpu.Kick();
    }

    /// <summary>VCPUOP_register_vcpu_info: moves vcpu_info to guest RAM at mfn:offset. Returns 0 or -errno.</summary>
    internal int RegisterVcpuInfo(ulong mfn, uint offset)
    {
        var mem = DomainState.Domain.Memory;
        if (offset > 4096 - 64 || (offset & 7) != 0) return -XenErrno.EINVAL;
        if (!DomainState.IsPopulatedRam(mfn)) return -XenErrno.EINVAL;
        lock (_lock)
        {
            if (VcpuInfoRegistered) return -XenErrno.EINVAL;
            ulong newOff = mfn * 4096 + offset;
            Span<byte> old = stackalloc byte[64];
            if (_hasVcpuInfo) _vcpuInfoMemory.Span(_vcpuInfoOffset, 64).CopyTo(old);
            else { old.Clear(); old[1] = 1; } // From Xen's dummy vcpu_info: a fresh area with events masked.
            old.CopyTo(mem.Span(newOff, 64));
            // The old slot keeps the mask set so that nothing is delivered through it any more.
            if (_hasVcpuInfo) _vcpuInfoMemory.Span(_vcpuInfoOffset, 64)[1] = 1;
            _vcpuInfoMemory = mem;
            _vcpuInfoOffset = newOff;
            _hasVcpuInfo = true;
            VcpuInfoRegistered = true;
            // As Xen: assume every selector word may hold pending events, and force a scan.
            Volatile.Write(ref PendingSel, -1L);
            Volatile.Write(ref InfoByte(0), (byte)1);
        }
        PublishTime();
        Kick();
        return 0;
    }

    // ---------------------------------------------------------------- time

    /// <summary>Guest VA of the secondary vcpu_time_info (VCPUOP_register_vcpu_time_memory_area), 0 when none.</summary>
    public ulong TimeAreaVa { get; internal set; }
    private ulong _lastPublishTsc;

    /// <summary>Refreshes vcpu_info.time (and the registered time area when <paramref name="memory"/> is given).</summary>
    public void PublishTime(IGuestVirtualMemory? memory = null)
    {
        var clock = DomainState.Clock;
        var t = clock.Snapshot();
        _lastPublishTsc = t.TscTimestamp;
        if (_hasVcpuInfo)
        {
            var (m, o) = VcpuInfoLocation;
            PvClock.Publish(m.Span(o + 32, 32), t);
        }
        if (TimeAreaVa != 0 && memory is not null)
        {
            // The guest's copy is written whole through its mapping; the version protocol still holds because the
            // guest only sees either the old or the new even version with consistent fields written between them.
            Span<byte> buf = stackalloc byte[32];
            if (memory.TryRead(TimeAreaVa, buf))
            {
                PvClock.Publish(buf, t);
                memory.TryWrite(TimeAreaVa, buf);
            }
        }
    }

    // ---------------------------------------------------------------- timers (all deadlines in system-time ns; 0 = none)

    public const ulong DefaultPeriodNs = 10_000_000;
    internal ulong SingleshotDeadlineNs;
    internal ulong PeriodicPeriodNs;
    internal ulong PeriodicNextNs;
    internal ulong PollDeadlineNs;

    public ulong SingleshotDeadline { get { lock (DomainState.Timers.Lock) return SingleshotDeadlineNs; } }
    public ulong PeriodicPeriod { get { lock (DomainState.Timers.Lock) return PeriodicPeriodNs; } }

    // ---------------------------------------------------------------- block / poll

    private volatile uint[]? _pollPorts;
    private volatile bool _pollTimedOut;

    /// <summary>The vCPU is in SCHEDOP_poll on these ports (null when not polling).</summary>
    public IReadOnlyList<uint>? PollPorts => _pollPorts;

    internal void BeginPoll(uint[] ports, ulong deadlineNs)
    {
        _pollTimedOut = false;
        _pollPorts = ports;
        DomainState.Timers.SetPollDeadline(this, deadlineNs);
    }

    internal void PollTimeout()
    {
        _pollTimedOut = true;
        Kick();
    }

    /// <summary>
    /// IDomainPlatform.HasPendingWork for a PV vCPU: whether a vCPU that blocked (SCHEDOP_block, SCHEDOP_poll,
    /// VCPUOP_down) has a reason to run again. Lock-free; called under VirtualCpu's gate.
    /// </summary>
    public bool HasPendingWork
    {
        get
        {
            if (Down) return false;
            var ports = _pollPorts;
            if (ports is not null)
            {
                if (_pollTimedOut || UpcallPending) return true;
                foreach (var p in ports)
                    if (DomainState.Events.IsPending(p)) return true;
                return false;
            }
            return UpcallPending;
        }
    }

    // ---------------------------------------------------------------- up / down / initialise

    /// <summary>
    /// VPF_down: the vCPU is offline (not yet brought up, or VCPUOP_down). Events and timers do not kick a down vCPU
    /// and <see cref="HasPendingWork"/> stays false. CPU half: when another vCPU downs this one (VCPUOP_down on a
    /// running vCPU kicks it), return ExitAction.Block from the next exit while Down is set.
    /// </summary>
    public volatile bool Down;

    /// <summary>The vCPU has a context (the builder's for vCPU 0, VCPUOP_initialise for the others).</summary>
    public bool Initialised { get; internal set; }

    /// <summary>
    /// The context given by VCPUOP_initialise, waiting for the CPU half to load it into the vCPU's registers on
    /// its thread (check and clear with <see cref="TakeInitialContext"/> in BeforeEntry).
    /// </summary>
    private VcpuGuestContext? _pendingContext;

    internal void SetInitialContext(in VcpuGuestContext ctx)
    {
        lock (_lock) _pendingContext = ctx;
    }

    public bool TakeInitialContext(out VcpuGuestContext ctx)
    {
        lock (_lock)
        {
            ctx = _pendingContext ?? default;
            bool had = _pendingContext.HasValue;
            _pendingContext = null;
            return had;
        }
    }

    /// <summary>PHYSDEVOP_set_iopl: the guest kernel's virtual IOPL (0-3) for its user mode, for the CPU half's I/O checks.</summary>
    public uint Iopl { get; internal set; }

    // ---------------------------------------------------------------- runstate

    private VcpuRunState _runstate;
    private ulong _runstateEntry;
    private readonly ulong[] _runstateTime = new ulong[4];

    /// <summary>Guest VA of the registered vcpu_runstate_info, 0 when none.</summary>
    public ulong RunstateAreaVa { get; internal set; }

    public VcpuRunstateInfo RunstateInfo
    {
        get
        {
            lock (_lock) return BuildRunstateLocked(DomainState.Clock.SystemTimeNs());
        }
    }

    private unsafe VcpuRunstateInfo BuildRunstateLocked(ulong now)
    {
        var r = new VcpuRunstateInfo { State = (int)_runstate, StateEntryTime = _runstateEntry };
        for (int i = 0; i < 4; i++) r.Time[i] = _runstateTime[i];
        // The current state's time runs until now, as Xen's get_runstate_info reports.
        r.Time[(int)_runstate] += now > _runstateEntry ? now - _runstateEntry : 0;
        return r;
    }

    /// <summary>
    /// Records a runstate change and writes the registered runstate area through <paramref name="memory"/>
    /// (the vCPU's own page tables, so call it on the vCPU's thread). Unchanged states only refresh nothing.
    /// </summary>
    public unsafe void SetRunstate(VcpuRunState state, IGuestVirtualMemory? memory)
    {
        VcpuRunstateInfo snapshot;
        lock (_lock)
        {
            if (state == _runstate && _runstateEntry != 0) return;
            ulong now = DomainState.Clock.SystemTimeNs();
            if (now > _runstateEntry) _runstateTime[(int)_runstate] += now - _runstateEntry;
            _runstate = state;
            _runstateEntry = now;
            snapshot = BuildRunstateLocked(now);
        }
        if (memory is not null) WriteRunstateArea(memory, snapshot);
    }

    internal unsafe void WriteRunstateArea(IGuestVirtualMemory memory, VcpuRunstateInfo info)
    {
        ulong va = RunstateAreaVa;
        if (va == 0) return;
        if ((DomainState.VmAssist & (1UL << (int)Vmasst.TypeRunstateUpdateFlag)) != 0)
        {
            // XEN_RUNSTATE_UPDATE protocol: flag the entry time, write, then clear the flag.
            ulong flagged = info.StateEntryTime | VcpuOp.RunstateUpdate;
            if (!memory.TryWrite(va + 8, BitConverter.GetBytes(flagged))) return;
            Interlocked.MemoryBarrier();
            var copy = info;
            copy.StateEntryTime = flagged;
            memory.TryWrite(va, MemoryMarshal.AsBytes(new ReadOnlySpan<VcpuRunstateInfo>(ref copy)));
            Interlocked.MemoryBarrier();
            memory.TryWrite(va + 8, BitConverter.GetBytes(info.StateEntryTime));
        }
        else
        {
            memory.TryWrite(va, MemoryMarshal.AsBytes(new ReadOnlySpan<VcpuRunstateInfo>(ref info)));
        }
    }

    // ---------------------------------------------------------------- per-entry hook

    /// <summary>
    /// The CPU half calls this from IDomainPlatform.BeforeEntry on the vCPU's thread: marks the vCPU running
    /// (runstate area), ends a finished poll, runs expired timers, and refreshes vcpu_time_info at least every
    /// second. Then, if <see cref="UpcallPending"/>, it bounces to the event callback.
    /// </summary>
    public void OnBeforeEntry(IGuestVirtualMemory memory)
    {
        if (_pollPorts is not null)
        {
            _pollPorts = null;
            DomainState.Timers.SetPollDeadline(this, 0);
        }
        SetRunstate(VcpuRunState.Running, memory);
        DomainState.Timers.RunExpired(this);
        var clock = DomainState.Clock;
        if (clock.ReadTsc() - _lastPublishTsc > clock.TscHz) PublishTime(memory);
    }
}
