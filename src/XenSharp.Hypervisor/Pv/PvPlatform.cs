using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Hypervisor.Pv;

/// <summary>One CPU-half hypercall in flight: its vCPU, arguments, the services context, and the guest context it returns to (which iret replaces).</summary>
public sealed class PvHypercall
{
    public required VirtualCpu Vcpu { get; init; }
    public required PvVcpuState State { get; init; }
    public required PvHypercallContext Services { get; init; }
    public ulong A1, A2, A3, A4, A5;
    public ref GuestContext Context => ref State.CallContext;
    /// <summary>What the vCPU does after the return (SCHEDOP_block → Block, shutdown → Stop).</summary>
    public ExitAction Action { get => Services.RequestedAction; set => Services.RequestedAction = value; }
    public bool InMulticall => Services.MulticallDepth > 0;
}

/// <summary>IGuestVirtualMemory of one vCPU: walks its current page tables.</summary>
public sealed class PvGuestMemory(GuestPageWalker walker, PvVcpuState st) : IGuestVirtualMemory
{
    public bool TryRead(ulong va, Span<byte> destination)
    {
        try { walker.Read(st.CurrentCr3, va, destination); return true; }
        catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException) { return false; }
    }

    public bool TryWrite(ulong va, ReadOnlySpan<byte> source)
    {
        try { walker.Write(st.CurrentCr3, va, source); return true; }
        catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException) { return false; }
    }
}

/// <summary>
/// The platform of a PV domain: decodes doorbell exits (hypercall, user syscall, exception, refused resume), dispatches
/// hypercalls, bounces exceptions and events into the guest, emulates privileged instructions, and returns to the
/// guest through the resume stub (which also carries out queued page-table writes and flushes in guest context).
/// </summary>
public sealed partial class PvPlatform : IDomainPlatform, IPerfCounterSource
{
    private readonly Domain _domain;
    private readonly HashSet<ulong> _mappedSpecial = new();
    private int _nextSlot = 8;

    public HypervisorArea Area { get; }
    public PvMmu Mmu { get; }
    public PvTraps Traps { get; }
    public GuestPageWalker Walker { get; }

    /// <summary>The services half of this domain (event channels, grants, time, the hypercall table).</summary>
    public PvDomainState Services { get; }

    /// <summary>Exits per hypercall number (doorbell exits that were hypercalls), for measurements.</summary>
    public long[] HypercallCounts { get; } = new long[64];

    /// <summary>Exception exits per vector, and the guest rip of the last one (diagnostics).</summary>
    public long[] ExceptionCounts { get; } = new long[256];

    /// <summary>Port I/O the guest did (emulated for its #GP, or handed to us directly), by port: what a boot probes.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, long> _portAccesses = new();

    internal void CountPortAccess(int port) => _portAccesses.AddOrUpdate(port, 1, (_, n) => n + 1);

    /// <summary>Privileged instructions emulated for the guest's #GP, by instruction (and MSR): what a kernel traps on.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _emulations = new();

    internal void CountEmulation(string what) => _emulations.AddOrUpdate(what, 1, (_, n) => n + 1);
    public ulong LastExceptionRip { get; private set; }

    /// <summary>Syscalls from guest user mode, bounced to the guest kernel (each one an exit here).</summary>
    public long UserSyscalls;

    /// <summary>Returns to the guest by registers alone, without the resume stub (see <see cref="Resume"/>).</summary>
    public long DirectReturns;

    public IEnumerable<PerfCounter> PerfCounters()
    {
        for (int i = 0; i < HypercallCounts.Length; i++)
            yield return new PerfCounter($"hypercall/{Services.Hypercalls.NameOf((ulong)i)}", Interlocked.Read(ref HypercallCounts[i]));
        for (int v = 0; v < ExceptionCounts.Length; v++)
            yield return new PerfCounter($"exception/{X86.VectorName(v)}", Interlocked.Read(ref ExceptionCounts[v]));
        yield return new PerfCounter("syscall/user", Interlocked.Read(ref UserSyscalls));
        yield return new PerfCounter("resume/direct", Interlocked.Read(ref DirectReturns));
        foreach (var (port, n) in _portAccesses.OrderBy(kv => kv.Key)) yield return new PerfCounter($"ioport/0x{port:x4}", n);
        foreach (var (what, n) in _emulations.OrderBy(kv => kv.Key, StringComparer.Ordinal)) yield return new PerfCounter($"emulate/{what}", n);
        long upcalls = 0;
        foreach (var v in _domain.Vcpus) if (Services.Vcpu(v.Id) is { } st) upcalls += st.UpcallCount;
        yield return new PerfCounter("event/upcalls", upcalls);
    }
    public ulong LastExceptionCr2 { get; private set; }

    /// <summary>The guest enabled VMASST_TYPE_writable_pagetables (Linux does in xen_pvmmu_arch_setup): only then are its writes to its own L1 tables emulated, as Xen's pv_ro_page_fault.</summary>
    private bool WritablePageTables => (Services.VmAssist & (1UL << (int)Vmasst.TypeWritablePagetables)) != 0;

    public PvPlatform(Domain domain, PvDomainState services, HypervisorArea area, PvMmu mmu)
    {
        _domain = domain;
        Services = services;
        Area = area;
        Mmu = mmu;
        Walker = new GuestPageWalker(domain.Memory, SpecialFrame);
        Traps = new PvTraps(Walker);
        services.MachphysMapping = new XenMachphysMapping { VStart = area.M2pStart, VEnd = area.M2pEnd, MaxMfn = area.MaxMfn };
        services.ValidateInitialContext = ValidateInitialContext;
        mmu.IsSpecialFrame = EnsureSpecialMapped;
        mmu.DescriptorPageUnmapped = DropLdtShadowsOf;
        RegisterCpuHypercalls(services.Hypercalls);
    }

    public Domain Domain => _domain;
    public PvVcpuState State(int vcpu) => Services.Vcpu(vcpu) ?? throw new ArgumentOutOfRangeException(nameof(vcpu));

    /// <summary>The hypervisor page behind a special (non-RAM) MFN, mapped into the VM on first use.</summary>
    private (GuestMemory Mem, ulong Offset)? SpecialFrame(ulong mfn)
    {
        if (!Services.SpecialFrames.TryGet(mfn, out var f)) return null;
        return (f.Memory, f.Offset);
    }

    /// <summary>Makes a special frame reachable at guest-physical mfn×4096 before the guest maps it.</summary>
    internal bool EnsureSpecialMapped(ulong mfn)
    {
        if (!Services.SpecialFrames.TryGet(mfn, out var f)) return false;
        lock (_mappedSpecial)
        {
            if (_mappedSpecial.Add(mfn)) _domain.Machine.MapMemory(_nextSlot++, mfn << 12, f.Memory, f.Offset, 4096, readOnly: !f.Writable);
        }
        return true;
    }

    public ExitAction HandleExit(VirtualCpu vcpu, in VcpuExit exit)
    {
        var st = State(vcpu.Id);
        try
        {
            switch (exit.Reason)
            {
                case ExitReason.Mmio when (exit.Address & ~0xfffUL) == PvLayout.DoorbellGpa:
                    return Doorbell(vcpu, st, exit.Address & 0xfff, exit.Data);
                case ExitReason.Mmio:
                    if (!exit.IsWrite) vcpu.Cpu.CompleteRead(ulong.MaxValue);
                    throw new PvCrashException($"access to guest-physical 0x{exit.Address:x} with no memory behind it");
                case ExitReason.Io when exit.IsWrite && vcpu.Cpu.GetRegisters() is { } at && Area.Stubs.IsSyscallDoorbell(at.Rip, (int)exit.Address):
                    return SyscallEntered(vcpu, st, at, (int)exit.Address);
                case ExitReason.Io:
                    // Port I/O the TSS bitmap let through without the stub (only the doorbell ports are open): the guest's
                    // own, answered as Xen answers a domU (PortRead/PortWrite). Other ports arrive as #GP and are emulated.
                    if (exit.IsWrite) PortWrite((int)exit.Address, exit.Size, (uint)exit.Data);
                    else vcpu.Cpu.CompleteRead(PortRead((int)exit.Address, exit.Size));
                    return ExitAction.Continue;
                case ExitReason.Halt:
                    return ExitAction.Block;
                case ExitReason.SystemEvent:
                    _domain.Shutdown(ShutdownReason.Poweroff);
                    return ExitAction.Stop;
                default:
                    throw new PvCrashException($"unexpected exit {exit}");
            }
        }
        catch (PvCrashException e)
        {
            _domain.Crash($"vcpu{vcpu.Id}: {e.Message}");
            return ExitAction.Stop;
        }
    }

    private ExitAction Doorbell(VirtualCpu vcpu, PvVcpuState st, ulong offset, ulong data)
    {
        var regs = vcpu.Cpu.GetRegisters();
        if (offset < 0x800)
        {
            st.AtRing0 = true;
            return Trap(vcpu, st, (int)(offset / 8), data, regs);
        }
        switch (offset)
        {
            case PvLayout.DbApplyDone:
                return ContinueCommands(vcpu, st);
            case PvLayout.DbResumeRefused:
            {
                // The guest itself jumped to the ring-0 entry's ud2 (nothing armed): it gets the #UD it executed.
                st.AtRing0 = true;
                var ctx = ReadRing0Frame(vcpu, regs, 0, out _);
                if ((ctx.Cs & 3) != 3) throw new PvCrashException($"resume stub refused at ring 0 (rip 0x{ctx.Regs.Rip:x})");
                Interlocked.Increment(ref ExceptionCounts[X86.VectorUd]);
                Traps.BounceException(st, ref ctx, X86.VectorUd, null);
                st.PendingResume = ctx;
                return ExitAction.Continue;
            }
            default:
                throw new PvCrashException($"doorbell at unknown offset 0x{offset:x}");
        }
    }

    /// <summary>
    /// A syscall stub rang its port: a hypercall from the guest kernel, or a user syscall to bounce to it. The stub runs at
    /// ring 0 on VT-x/AMD-V and the software CPU, at ring 3 under PVM; the CPU state says which, not the guest.
    /// </summary>
    private ExitAction SyscallEntered(VirtualCpu vcpu, PvVcpuState st, in VcpuRegisters regs, int port)
    {
        if (port == PvLayout.DoorbellPortSysenter)
            throw new PvCrashException("sysenter from the guest (no sysenter callback: a 64-bit PV guest uses syscall)");
        st.AtRing0 = (vcpu.Cpu.GetSpecialRegisters().Cs.Selector & 3) == 0;
        var ctx = new GuestContext { Regs = regs, Cs = st.CurrentCs, Ss = st.CurrentSs };
        ctx.Regs.Rip = regs.Rcx;
        ctx.Regs.Rflags = regs.R11;
        if (!st.KernelMode)
        {
            Interlocked.Increment(ref UserSyscalls);
            Traps.UserSyscall(st, ref ctx, port == PvLayout.DoorbellPortSyscall32);
            st.PendingResume = ctx;
            return ExitAction.Continue;
        }
        return DoHypercall(vcpu, st, ctx);
    }

    /// <summary>Reads the hardware frame on the ring-0 stack: <paramref name="pushed"/> words pushed by the stub, then rip, cs, rflags, rsp, ss.</summary>
    private GuestContext ReadRing0Frame(VirtualCpu vcpu, in VcpuRegisters regs, int pushed, out ulong[] words)
    {
        if (!Area.TryVcpuBlockOffset(regs.Rsp, out ulong off) || !Area.TryVcpuBlockOffset(regs.Rsp + (ulong)(pushed + 5) * 8 - 1, out _))
            throw new PvCrashException($"ring-0 stack pointer 0x{regs.Rsp:x} outside the vCPU blocks");
        words = new ulong[pushed + 5];
        for (int i = 0; i < words.Length; i++) words[i] = Area.Memory.ReadUInt64(off + (ulong)i * 8);
        var ctx = new GuestContext { Regs = regs, Cs = (ushort)words[pushed + 1], Ss = (ushort)words[pushed + 4] };
        ctx.Regs.Rip = words[pushed];
        ctx.Regs.Rflags = words[pushed + 2];
        ctx.Regs.Rsp = words[pushed + 3];
        return ctx;
    }

    private ExitAction Trap(VirtualCpu vcpu, PvVcpuState st, int vector, ulong cr2, VcpuRegisters regs)
    {
        // Stub pushed: [rsp] = rax, [rsp+8] = error code (0 if the vector has none).
        var ctx = ReadRing0Frame(vcpu, regs, 2, out var words);
        ctx.Regs.Rax = words[0];
        ulong err = words[1];
        if ((ctx.Cs & 3) != 3)
            throw new PvCrashException($"exception {vector} (err 0x{err:x}) inside the hypervisor area at rip 0x{ctx.Regs.Rip:x}, cr2 0x{cr2:x}");
        st.CurrentCs = ctx.Cs;
        st.CurrentSs = ctx.Ss;
        Interlocked.Increment(ref ExceptionCounts[vector]);
        LastExceptionRip = ctx.Regs.Rip;
        LastExceptionCr2 = cr2;
        switch (vector)
        {
            case X86.VectorPf:
                if (InLdtShadow(vcpu.Id, cr2))
                {
                    // The CPU read a descriptor of an LDT page not shadowed yet: map it and retry, or give the guest
                    // the #PF at the LDT's own address.
                    if (TryMapLdtShadow(vcpu.Id, st, cr2, out ulong ldtVa)) break;
                    cr2 = ldtVa;
                }
                else if (st.KernelMode && (err & 3) == 3 && WritablePageTables && TryEmulatePtWrite(vcpu, st, ref ctx, cr2)) break;
                st.VirtualCr2 = cr2;
                st.WriteCr2(cr2);
                err = (err & ~4UL) | (st.KernelMode ? 0 : 4UL);
                Traps.BounceException(st, ref ctx, vector, err);
                break;
            case X86.VectorGp:
                if (err == 0 && TryEmulatePrivOp(vcpu, st, ref ctx, out var action))
                {
                    st.PendingResume = ctx;
                    return action;
                }
                if ((err & 2) != 0 && SoftwareInterrupt(vcpu, st, ref ctx, (int)(err >> 3))) break;
                Traps.BounceException(st, ref ctx, vector, err);
                break;
            case X86.VectorUd:
                if (TryForcedEmulation(st, ref ctx)) break;
                if (SoftwareInterruptReportedAsUd(vcpu, st, ref ctx)) break;
                Traps.BounceException(st, ref ctx, vector, null);
                break;
            case X86.VectorNm:
                st.VirtualTs = false;
                Traps.BounceException(st, ref ctx, vector, null);
                break;
            default:
                Traps.BounceException(st, ref ctx, vector, X86.HasErrorCode(vector) ? err : null);
                break;
        }
        st.PendingResume = ctx;
        return ExitAction.Continue;
    }

    /// <summary>
    /// PVM raises #UD for INT n and INT3 at CPL3 instead of going through the IDT; hardware gives INT n a #GP through
    /// our DPL0 gate (handled in the #GP case) and INT3 its own trap through the DPL3 gate. Turn the #UD back into
    /// what the CPU would have done, so the guest sees the same on both: its handler, or the #GP.
    /// </summary>
    private bool SoftwareInterruptReportedAsUd(VirtualCpu vcpu, PvVcpuState st, ref GuestContext ctx)
    {
        var code = FetchCode(st, ctx.Regs.Rip, 2);
        if (code.Length >= 1 && code[0] == 0xcc)
        {
            ctx.Regs.Rip += 1;
            Traps.BounceException(st, ref ctx, X86.VectorBp, null);
            return true;
        }
        if (code.Length < 2 || code[0] != 0xcd) return false;
        if (SoftwareInterrupt(vcpu, st, ref ctx, code[1])) return true;
        Traps.BounceException(st, ref ctx, X86.VectorGp, ((ulong)code[1] << 3) | 2);
        return true;
    }

    /// <summary>INT n that the IDT refused (DPL0 gate): deliver it if the trap table's DPL allows the current mode.</summary>
    private bool SoftwareInterrupt(VirtualCpu vcpu, PvVcpuState st, ref GuestContext ctx, int n)
    {
        var t = st.TrapTable[n];
        int dpl = t.Dpl;
        bool allowed = st.KernelMode ? dpl >= 1 : dpl == 3;
        if (!allowed || t.Address == 0) return false;
        ctx.Regs.Rip += 2; // CD ib
        Traps.Bounce(st, ref ctx, t.Address, null, t.MasksEvents);
        return true;
    }

    private ExitAction DoHypercall(VirtualCpu vcpu, PvVcpuState st, GuestContext ctx)
    {
        // rcx is where `syscall` came from, unless the guest jumped into the (user-executable) stub with a value of its own.
        if (!X86.IsCanonical(ctx.Regs.Rip))
            throw new PvCrashException($"hypercall {ctx.Regs.Rax} would return to non-canonical 0x{ctx.Regs.Rip:x} (the syscall stub entered by a jump)");
        ulong nr = ctx.Regs.Rax;
        st.HypercallCount++;
        if (nr < (ulong)HypercallCounts.Length) Interlocked.Increment(ref HypercallCounts[nr]);
        st.ContextReplaced = false;
        st.CallContext = ctx;
        var hc = st.HypercallContext ??= new PvHypercallContext(Services, st, new PvGuestMemory(Walker, st));
        hc.Reset();
        long rc = Services.Hypercalls.Dispatch(hc, nr, new HypercallArgs(ctx.Regs.Rdi, ctx.Regs.Rsi, ctx.Regs.Rdx, ctx.Regs.R10, ctx.Regs.R8));
        ctx = st.CallContext;
        if (!st.ContextReplaced)
        {
            ctx.Regs.Rax = unchecked((ulong)rc);
            ctx.Regs.Rcx = ctx.Regs.Rip;
            ctx.Regs.R11 = ctx.Regs.Rflags;
        }
        st.ContextReplaced = false;
        var action = hc.RequestedAction;
        if (_domain.ShutdownReason is not null) action = ExitAction.Stop;
        st.PendingResume = action == ExitAction.Stop ? null : ctx;
        return action;
    }

    public void BeforeEntry(VirtualCpu vcpu)
    {
        var st = State(vcpu.Id);
        try
        {
            if (st.TakeInitialContext(out var vgc)) LoadInitialContext(vcpu, st, vgc);
            var mem = st.HypercallContext?.Memory ?? new PvGuestMemory(Walker, st);
            st.OnBeforeEntry(mem);
            bool flush = st.RemoteFlushPending;
            if (flush)
            {
                st.RemoteFlushPending = false;
                st.Commands.Add((CommandPage.OpFlushAll, 0, 0));
            }
            if (st.PendingResume is GuestContext pending)
            {
                st.PendingResume = null;
                var ctx = pending;
                Traps.DeliverEvent(st, ref ctx);
                Resume(vcpu, st, ctx);
                return;
            }
            if (!PvTraps.EventDeliverable(st) && !flush) return;
            var regs = vcpu.Cpu.GetRegisters();
            if (regs.Rip >= PvLayout.HvBase && regs.Rip < PvLayout.HvBase + (1UL << 39))
            {
                if (flush) { st.Commands.Clear(); st.RemoteFlushPending = true; }
                // Inside a stub on its way back to the guest: try again shortly.
                _retry ??= new Timer(_ => { foreach (var v in _domain.Vcpus) { var s = State(v.Id); if (PvTraps.EventDeliverable(s) || s.RemoteFlushPending) v.Kick(); } });
                _retry.Change(1, Timeout.Infinite);
                return;
            }
            var c = new GuestContext { Regs = regs, Cs = st.CurrentCs, Ss = st.CurrentSs };
            st.AtRing0 = false;
            Traps.DeliverEvent(st, ref c);
            Resume(vcpu, st, c);
        }
        catch (PvCrashException e)
        {
            _domain.Crash($"vcpu{vcpu.Id}: {e.Message}");
        }
    }

    private Timer? _retry;

    /// <summary>
    /// Returns to <paramref name="ctx"/> through the resume stub: queued commands, then five registers and iretq from the
    /// command page. A list longer than one page runs in chunks, each ending with a doorbell that refills the page.
    /// </summary>
    public void Resume(VirtualCpu vcpu, PvVcpuState st, in GuestContext ctx)
    {
        var cmds = st.Commands;
        if (!st.AtRing0 && cmds.Count == 0 && ctx.Cs == st.CurrentCs && ctx.Ss == st.CurrentSs)
        {
            // The vCPU is at CPL3 already (a stub entered at CPL3, as PVM's syscall does, or guest code that was kicked)
            // and nothing has to run in guest context: the new registers are the whole return. This skips the ring-0
            // round trip, which under PVM runs in KVM's instruction emulator.
            var direct = ctx.Regs;
            direct.Rflags = GuestRflags(ctx);
            vcpu.Cpu.SetRegisters(direct);
            Interlocked.Increment(ref DirectReturns);
            return;
        }
        int capacity = CommandPage.Capacity - 1;
        if (cmds.Count > capacity)
        {
            st.CommandOverflow = cmds.GetRange(capacity, cmds.Count - capacity);
            st.OverflowContext = ctx;
            cmds.RemoveRange(capacity, cmds.Count - capacity);
            cmds.Add((CommandPage.OpMore, 0, 0));
        }
        WriteCommandPage(vcpu, st, ctx);
        var regs = ctx.Regs;
        regs.Rflags = X86.RflagsReserved1;
        if (st.AtRing0)
        {
            regs.Rip = Area.Stubs.Resume;
            regs.Rsp = HypervisorArea.StackTopVa(vcpu.Id);
        }
        else
        {
            regs.Rip = Area.Stubs.EnterRing0;
        }
        vcpu.Cpu.SetRegisters(regs);
        cmds.Clear();
        st.CurrentCs = ctx.Cs;
        st.CurrentSs = ctx.Ss;
        st.AtRing0 = false;
    }

    /// <summary>
    /// The RFLAGS the guest gets back on either return path: IF always set (its interrupt flag is the virtual event
    /// mask) and IOPL 0 (its I/O privilege is virtual too), whatever a hypercall's r11 or a frame said.
    /// </summary>
    private static ulong GuestRflags(in GuestContext ctx) => (ctx.Regs.Rflags | X86.RflagsIf | X86.RflagsReserved1) & ~X86.RflagsIopl;

    private void WriteCommandPage(VirtualCpu vcpu, PvVcpuState st, in GuestContext ctx)
    {
        var cmds = st.Commands;
        var m = Area.Memory;
        ulong p = Area.CommandPageOffset(vcpu.Id);
        m.WriteUInt64(p + CommandPage.Count, (ulong)cmds.Count);
        for (int i = 0; i < cmds.Count; i++)
        {
            ulong e = p + CommandPage.Entries + (ulong)(i * CommandPage.EntrySize);
            m.WriteUInt64(e, cmds[i].Op);
            m.WriteUInt64(e + 8, cmds[i].A);
            m.WriteUInt64(e + 16, cmds[i].B);
        }
        m.WriteUInt64(p + CommandPage.SaveRax, ctx.Regs.Rax);
        m.WriteUInt64(p + CommandPage.SaveRcx, ctx.Regs.Rcx);
        m.WriteUInt64(p + CommandPage.SaveRdx, ctx.Regs.Rdx);
        m.WriteUInt64(p + CommandPage.SaveRsi, ctx.Regs.Rsi);
        m.WriteUInt64(p + CommandPage.SaveRdi, ctx.Regs.Rdi);
        m.WriteUInt64(p + CommandPage.Frame, ctx.Regs.Rip);
        m.WriteUInt64(p + CommandPage.Frame + 8, ctx.Cs);
        m.WriteUInt64(p + CommandPage.Frame + 16, GuestRflags(ctx));
        m.WriteUInt64(p + CommandPage.Frame + 24, ctx.Regs.Rsp);
        m.WriteUInt64(p + CommandPage.Frame + 32, ctx.Ss);
        Volatile.Write(ref m.Int64At(p + CommandPage.Armed), 1);
    }

    /// <summary>The resume stub finished a chunk of a long command list (it is at ring 0): load the next chunk.</summary>
    private ExitAction ContinueCommands(VirtualCpu vcpu, PvVcpuState st)
    {
        var rest = st.CommandOverflow ?? throw new PvCrashException("command-list continuation without pending commands");
        st.CommandOverflow = null;
        st.Commands.Clear();
        st.Commands.AddRange(rest);
        st.AtRing0 = true;
        Resume(vcpu, st, st.OverflowContext);
        return ExitAction.Continue;
    }

    /// <summary>Flushes the TLBs of the domain's other vCPUs at their next entry (kicking them out of the guest).</summary>
    internal void FlushOtherVcpus(VirtualCpu self)
    {
        foreach (var v in _domain.Vcpus)
        {
            if (v == self || !v.Online) continue;
            State(v.Id).RemoteFlushPending = true;
            v.Cpu.Kick();
        }
    }

    public bool HasPendingWork(VirtualCpu vcpu) => State(vcpu.Id).HasPendingWork;

    public void Dispose() { _retry?.Dispose(); Area.Dispose(); }
}
