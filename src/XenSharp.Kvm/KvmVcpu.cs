using System.Runtime.InteropServices;
using System.Text;
using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>
/// One KVM vCPU: its fd, its mmapped <c>struct kvm_run</c>, KVM_RUN with the exit decoded into a <see cref="VcpuExit"/>,
/// registers through the kvm_run sync-regs area where KVM offers it, and a kick that works from any thread.
/// <para>
/// String port I/O (<c>rep ins/outs</c>) arrives from KVM as one exit carrying <c>count</c> elements. <see cref="Run"/>
/// hands them out one element per <see cref="VcpuExit"/> (each with count-1 semantics: one port access of
/// <see cref="VcpuExit.Size"/> bytes, <see cref="CompleteRead"/> answering that element), returning the next element
/// without re-entering KVM, and re-enters KVM_RUN only after the last one, so KVM sees the whole batch completed.
/// </para>
/// <para>
/// After an I/O or MMIO exit the instruction completes on the next KVM_RUN (KVM's rule): registers read in between
/// may show the state before the access completes.
/// </para>
/// </summary>
public sealed unsafe class KvmVcpu : IVcpu
{
    private readonly KvmVm? _vm;
    // Tests only: stands in for the KVM_RUN ioctl over a fake kvm_run page, so the exit decoding, the sync-regs
    // bookkeeping and the kick signal can be verified on machines without KVM. Returns like ioctl (errno via SetLastPInvokeError).
    private readonly Func<int>? _runForTests;
    private readonly KvmFileDescriptor _fd;
    private readonly nuint _mmapSize;
    private KvmRun* _run;
    private readonly int _pid = Posix.getpid();

    // Kick / dispose coordination. _runningTid != 0 only while the thread is inside the KVM_RUN ioctl; _busy for the whole of Run.
    private readonly Lock _gate = new();
    private int _runningTid;
    private bool _busy;
    private bool _disposed;

    // Sync regs: the register classes KVM copies into kvm_run on every exit, and whether the copy there is current.
    private readonly ulong _syncMask;
    private bool _regsCurrent, _sregsCurrent;
    private VcpuRegisters _pendingRegs; // a SetRegisters not yet taken by KVM_RUN (kvm_dirty_regs)

    // The read waiting for CompleteRead, and the elements of a string I/O exit not yet handed out.
    private byte* _readTarget;
    private int _readSize;
    private uint _ioNext, _ioCount;

    public int Id { get; }

    /// <summary>Register classes (KVM_SYNC_X86_REGS / _SREGS) that come through the kvm_run sync area instead of ioctls.</summary>
    public ulong SyncedRegisterClasses => _syncMask;
    public bool UsesSyncRegisters => (_syncMask & KvmLayout.SYNC_X86_REGS) != 0;

    internal KvmVcpu(KvmVm vm, int id, bool syncRegisters)
    {
        _vm = vm;
        Id = id;
        int fd = KvmSys.Check(KvmSys.Ioctl(vm.Handle, KvmIoctl.KVM_CREATE_VCPU, id), "KVM_CREATE_VCPU", $"id {id}");
        _fd = new KvmFileDescriptor(fd);
        try
        {
            _mmapSize = (nuint)vm.System.VcpuMmapSize;
            nint p = KvmSys.Mmap(0, _mmapSize, Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_SHARED, _fd, 0);
            if (p == Posix.MapFailed) throw new KvmException("mmap(kvm_run)", $"vcpu {id}", Posix.LastErrno);
            _run = (KvmRun*)p;
            if (syncRegisters)
            {
                int caps = vm.System.CheckExtension(KvmCap.SYNC_REGS);
                _syncMask = (ulong)caps & (KvmLayout.SYNC_X86_REGS | KvmLayout.SYNC_X86_SREGS);
            }
            // KVM stores these classes into kvm_run at the end of every KVM_RUN (including EINTR returns).
            _run->KvmValidRegs = _syncMask;
            _run->KvmDirtyRegs = 0;
        }
        catch
        {
            if (_run != null) Posix.munmap((nint)_run, _mmapSize);
            _run = null;
            _fd.Dispose();
            throw;
        }
    }

    /// <summary>A vCPU over a caller-owned fake kvm_run page whose KVM_RUN is <paramref name="run"/>: for tests of the logic above the ioctls.</summary>
    internal KvmVcpu(KvmRun* page, nuint size, ulong syncMask, Func<int> run)
    {
        _fd = new KvmFileDescriptor();
        _mmapSize = size;
        _run = page;
        _syncMask = syncMask;
        _run->KvmValidRegs = syncMask;
        _runForTests = run;
    }

    private KvmRun* RunPage => _run != null ? _run : throw new ObjectDisposedException(nameof(KvmVcpu));

    public VcpuExit Run()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_busy) throw new InvalidOperationException($"vcpu {Id}: Run is already executing on another thread");
            _busy = true;
        }
        try
        {
            _readTarget = null;
            if (_ioNext < _ioCount) return NextIoElement();

            KickSignal.EnsureUnblockedOnCurrentThread();
            int tid = CurrentTid();
            lock (_gate) _runningTid = tid; // a Kick from here on signals us; one before saw immediate_exit set
            int r, errno;
            try
            {
                r = _runForTests is null ? KvmSys.Ioctl(_fd, KvmIoctl.KVM_RUN, 0) : _runForTests();
                errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
            }
            finally
            {
                lock (_gate) _runningTid = 0;
            }

            AfterRun(r >= 0 || errno == Posix.EINTR);
            if (r < 0)
            {
                if (errno == Posix.EINTR)
                {
                    // A kick (immediate_exit or our signal) or some other signal. The kick is consumed here.
                    Volatile.Write(ref _run->ImmediateExit, 0);
                    return new VcpuExit(ExitReason.Interrupted, Detail: "KVM_RUN interrupted (EINTR)");
                }
                throw new KvmException("KVM_RUN", $"vcpu {Id}", errno);
            }
            return Decode();
        }
        finally
        {
            lock (_gate) _busy = false;
        }
    }

    private void AfterRun(bool kernelStoredRegs)
    {
        if (_syncMask == 0) return;
        // If KVM returned before taking our dirty registers, its store on the way out may have overwritten them.
        if ((_run->KvmDirtyRegs & KvmLayout.SYNC_X86_REGS) != 0) _run->SyncRegs = _pendingRegs;
        if (kernelStoredRegs)
        {
            _regsCurrent = (_syncMask & KvmLayout.SYNC_X86_REGS) != 0;
            _sregsCurrent = (_syncMask & KvmLayout.SYNC_X86_SREGS) != 0;
        }
    }

    [ThreadStatic] private static int _tid;

    private static int CurrentTid() => _tid != 0 ? _tid : (_tid = Posix.gettid());

    private VcpuExit Decode()
    {
        KvmRun* run = _run;
        uint reason = run->ExitReason;
        switch (reason)
        {
            case KvmExit.IO:
                if (run->Io.Size is not (1 or 2 or 4) || run->Io.Count == 0 ||
                    run->Io.DataOffset + (ulong)run->Io.Count * run->Io.Size > _mmapSize)
                    return new VcpuExit(ExitReason.InternalError, Detail:
                        $"KVM_EXIT_IO with unusable geometry: port 0x{run->Io.Port:x} size {run->Io.Size} count {run->Io.Count} data_offset {run->Io.DataOffset}");
                _ioNext = 0;
                _ioCount = run->Io.Count;
                return NextIoElement();

            case KvmExit.MMIO:
            {
                int len = (int)Math.Min(run->Mmio.Len, 8u);
                bool write = run->Mmio.IsWrite != 0;
                if (!write)
                {
                    _readTarget = run->Mmio.Data;
                    _readSize = len;
                }
                return new VcpuExit(ExitReason.Mmio, run->Mmio.PhysAddr, len, write, write ? ReadLittleEndian(run->Mmio.Data, len) : 0);
            }

            case KvmExit.HLT:
                return new VcpuExit(ExitReason.Halt);

            case KvmExit.SHUTDOWN:
                return new VcpuExit(ExitReason.Shutdown, Detail: "KVM_EXIT_SHUTDOWN (triple fault)");

            case KvmExit.INTR:
                return new VcpuExit(ExitReason.Interrupted, Detail: "KVM_EXIT_INTR");

            case KvmExit.IRQ_WINDOW_OPEN:
                // Only after RequestInterruptWindow: the guest can take an interrupt now (InjectInterrupt).
                return new VcpuExit(ExitReason.Interrupted, Detail: "KVM_EXIT_IRQ_WINDOW_OPEN");

            case KvmExit.FAIL_ENTRY:
                return new VcpuExit(ExitReason.InternalError, Data: run->FailEntry.HardwareEntryFailureReason, Detail:
                    $"KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x{run->FailEntry.HardwareEntryFailureReason:x} on host cpu {run->FailEntry.Cpu}");

            case KvmExit.INTERNAL_ERROR:
            {
                uint sub = run->Internal.Suberror;
                var sb = new StringBuilder($"KVM_EXIT_INTERNAL_ERROR suberror {sub} ({SuberrorName(sub)})");
                uint n = Math.Min(run->Internal.Ndata, 16u);
                if (n > 0)
                {
                    sb.Append(", data");
                    for (int i = 0; i < n; i++) sb.Append($" 0x{run->Internal.Data[i]:x}");
                }
                return new VcpuExit(ExitReason.InternalError, Data: sub, Detail: sb.ToString());
            }

            case KvmExit.SYSTEM_EVENT:
            {
                uint type = run->SystemEvent.Type;
                string what = type switch
                {
                    KvmExit.SYSTEM_EVENT_SHUTDOWN => "shutdown", KvmExit.SYSTEM_EVENT_RESET => "reset", KvmExit.SYSTEM_EVENT_CRASH => "crash",
                    _ => $"type {type}",
                };
                return new VcpuExit(ExitReason.SystemEvent, Data: type, Detail: what);
            }

            case KvmExit.UNKNOWN:
                return new VcpuExit(ExitReason.InternalError, Data: run->Hw.HardwareExitReason,
                    Detail: $"KVM_EXIT_UNKNOWN: hardware exit reason 0x{run->Hw.HardwareExitReason:x}");

            default:
                return new VcpuExit(ExitReason.InternalError, Data: reason, Detail: $"unhandled {KvmExit.Name(reason)} ({reason})");
        }
    }

    private static string SuberrorName(uint sub) => sub switch
    {
        KvmExit.INTERNAL_ERROR_EMULATION => "instruction emulation failed",
        KvmExit.INTERNAL_ERROR_SIMUL_EX => "exception while delivering an exception",
        KvmExit.INTERNAL_ERROR_DELIVERY_EV => "event delivery failed",
        KvmExit.INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => "unexpected hardware exit reason",
        _ => "unknown",
    };

    /// <summary>One element of the current KVM_EXIT_IO (count may be above 1 for string I/O).</summary>
    private VcpuExit NextIoElement()
    {
        KvmRun* run = _run;
        int size = run->Io.Size;
        byte* p = (byte*)run + run->Io.DataOffset + (ulong)_ioNext * (ulong)size;
        if (++_ioNext >= _ioCount) _ioNext = _ioCount = 0;
        if (run->Io.Direction == KvmExit.IO_OUT)
            return new VcpuExit(ExitReason.Io, run->Io.Port, size, IsWrite: true, Data: ReadLittleEndian(p, size));
        _readTarget = p;
        _readSize = size;
        return new VcpuExit(ExitReason.Io, run->Io.Port, size, IsWrite: false);
    }

    private static ulong ReadLittleEndian(byte* p, int size)
    {
        ulong v = 0;
        for (int i = 0; i < size; i++) v |= (ulong)p[i] << (8 * i);
        return v;
    }

    public void CompleteRead(ulong value)
    {
        if (_readTarget == null) throw new InvalidOperationException($"vcpu {Id}: the last exit was not an I/O-in or MMIO read");
        for (int i = 0; i < _readSize; i++) _readTarget[i] = (byte)(value >> (8 * i));
    }

    /// <summary>
    /// Sets immediate_exit (covers a Run that has not yet entered KVM_RUN) and, when the vCPU thread is inside
    /// KVM_RUN, sends it <see cref="KickSignal"/> so the ioctl returns EINTR. The next Run consumes the kick.
    /// </summary>
    public void Kick()
    {
        int sig = KickSignal.Number; // install outside the lock
        lock (_gate)
        {
            if (_disposed || _run == null) return;
            Volatile.Write(ref _run->ImmediateExit, 1);
            if (_runningTid != 0) Posix.tgkill(_pid, _runningTid, sig);
        }
    }

    public VcpuRegisters GetRegisters()
    {
        KvmRun* run = RunPage;
        if (_regsCurrent) return run->SyncRegs;
        var regs = GetRegistersByIoctl();
        if ((_syncMask & KvmLayout.SYNC_X86_REGS) != 0)
        {
            run->SyncRegs = regs;
            _regsCurrent = true;
        }
        return regs;
    }

    public void SetRegisters(in VcpuRegisters regs)
    {
        KvmRun* run = RunPage;
        if ((_syncMask & KvmLayout.SYNC_X86_REGS) != 0)
        {
            // Taken by the next KVM_RUN; no ioctl now.
            _pendingRegs = regs;
            run->SyncRegs = regs;
            run->KvmDirtyRegs |= KvmLayout.SYNC_X86_REGS;
            _regsCurrent = true;
            return;
        }
        fixed (VcpuRegisters* p = &regs)
            KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_REGS, p), "KVM_SET_REGS", $"vcpu {Id}");
    }

    /// <summary>KVM_GET_REGS, bypassing the sync area (for checks; stale while a SetRegisters is pending).</summary>
    public VcpuRegisters GetRegistersByIoctl()
    {
        VcpuRegisters regs;
        KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_GET_REGS, &regs), "KVM_GET_REGS", $"vcpu {Id}");
        return regs;
    }

    public SpecialRegisters GetSpecialRegisters()
    {
        KvmRun* run = RunPage;
        if (_sregsCurrent) return run->SyncSregs;
        var sregs = GetSpecialRegistersByIoctl();
        if ((_syncMask & KvmLayout.SYNC_X86_SREGS) != 0)
        {
            run->SyncSregs = sregs;
            _sregsCurrent = true;
        }
        return sregs;
    }

    /// <summary>KVM_GET_SREGS, bypassing the sync area.</summary>
    public SpecialRegisters GetSpecialRegistersByIoctl()
    {
        SpecialRegisters sregs;
        KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_GET_SREGS, &sregs), "KVM_GET_SREGS", $"vcpu {Id}");
        return sregs;
    }

    /// <summary>
    /// KVM_SET_SREGS, only ever when asked: it resets KVM's MMU context, which is slow. Done by ioctl (not the
    /// sync area) so an invalid state is reported here rather than by the next KVM_RUN.
    /// </summary>
    public void SetSpecialRegisters(in SpecialRegisters sregs)
    {
        _ = RunPage;
        fixed (SpecialRegisters* p = &sregs)
            KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_SREGS, p), "KVM_SET_SREGS", $"vcpu {Id}");
        _sregsCurrent = false; // KVM may normalize what it was given; read it back when next asked
    }

    /// <summary>KVM_SET_CPUID2. Call before the first Run: KVM refuses changes after the vCPU has run.</summary>
    public void SetCpuid(IReadOnlyList<CpuidEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        byte[] buffer = new byte[KvmCpuid2Header.Size + entries.Count * KvmCpuidEntry2.Size];
        fixed (byte* p = buffer)
        {
            ((KvmCpuid2Header*)p)->Nent = (uint)entries.Count;
            var e = (KvmCpuidEntry2*)(p + KvmCpuid2Header.Size);
            for (int i = 0; i < entries.Count; i++)
            {
                var c = entries[i];
                e[i].Function = c.Function;
                e[i].Index = c.Index;
                e[i].Flags = c.IndexSignificant ? KvmLayout.CPUID_FLAG_SIGNIFICANT_INDEX : 0;
                e[i].Eax = c.Eax;
                e[i].Ebx = c.Ebx;
                e[i].Ecx = c.Ecx;
                e[i].Edx = c.Edx;
            }
            KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_CPUID2, p), "KVM_SET_CPUID2", $"vcpu {Id} ({entries.Count} entries)");
        }
    }

    public void SetMsr(uint index, ulong value)
    {
        var m = new KvmMsrsOne { Header = { Nmsrs = 1 }, Entry = { Index = index, Data = value } };
        int n = KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_MSRS, &m), "KVM_SET_MSRS", $"vcpu {Id} MSR 0x{index:x}");
        if (n != 1) throw new KvmException("KVM_SET_MSRS", $"vcpu {Id} MSR 0x{index:x}", $"KVM refused the value 0x{value:x} (unknown MSR or invalid value)");
    }

    public ulong GetMsr(uint index)
    {
        var m = new KvmMsrsOne { Header = { Nmsrs = 1 }, Entry = { Index = index } };
        int n = KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_GET_MSRS, &m), "KVM_GET_MSRS", $"vcpu {Id} MSR 0x{index:x}");
        if (n != 1) throw new KvmException("KVM_GET_MSRS", $"vcpu {Id} MSR 0x{index:x}", "KVM does not know this MSR");
        return m.Entry.Data;
    }

    /// <summary>kvm_run.ready_for_interrupt_injection after the last exit (no in-kernel irqchip): InjectInterrupt will be taken at once.</summary>
    public bool ReadyForInterruptInjection => RunPage->ReadyForInterruptInjection != 0;

    /// <summary>
    /// kvm_run.request_interrupt_window (no in-kernel irqchip): when set, KVM_RUN returns (as
    /// <see cref="ExitReason.Interrupted"/>, detail KVM_EXIT_IRQ_WINDOW_OPEN) as soon as the guest can take an interrupt.
    /// </summary>
    public bool RequestInterruptWindow
    {
        get => RunPage->RequestInterruptWindow != 0;
        set => RunPage->RequestInterruptWindow = value ? (byte)1 : (byte)0;
    }

    /// <summary>KVM_INTERRUPT: queues an external interrupt; only for VMs without the in-kernel irqchip.</summary>
    public void InjectInterrupt(int vector)
    {
        if ((uint)vector > 255) throw new ArgumentOutOfRangeException(nameof(vector), vector, "vector must be 0..255");
        if (_vm?.HasIrqchip == true) throw new InvalidOperationException("InjectInterrupt is for VMs without the in-kernel irqchip; use SetIrqLine");
        var irq = new KvmInterrupt { Irq = (uint)vector };
        KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_INTERRUPT, &irq), "KVM_INTERRUPT", $"vcpu {Id} vector 0x{vector:x}");
    }

    public void Dispose()
    {
        bool wasRunning;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            wasRunning = _busy;
            if (wasRunning && _run != null)
            {
                // Whether Run is inside KVM_RUN or about to enter it, make it come out.
                Volatile.Write(ref _run->ImmediateExit, 1);
                if (_runningTid != 0) Posix.tgkill(_pid, _runningTid, KickSignal.Number);
            }
        }
        if (wasRunning)
        {
            // Another thread is inside Run: it leaves KVM_RUN at once (kicked); unmap only after it is out.
            var deadline = Environment.TickCount64 + 10_000;
            while (Volatile.Read(ref _busy) && Environment.TickCount64 < deadline) Thread.Sleep(1);
        }
        lock (_gate)
        {
            if (_run != null && !_busy && _runForTests is null) Posix.munmap((nint)_run, _mmapSize);
            _run = null;
        }
        _fd.Dispose();
        _vm?.Forget(this);
    }
}
