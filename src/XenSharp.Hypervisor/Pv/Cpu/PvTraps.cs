using System.Buffers.Binary;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// Guest CPU state transitions of Xen's PV ABI, free of any accelerator: bounce frames (exceptions, events, syscalls),
/// the iret hypercall, and the kernel/user switch. Everything that must happen in guest context (CR3 loads, GS base
/// writes) is queued on <see cref="PvVcpuState.Commands"/>.
/// </summary>
public sealed class PvTraps(GuestPageWalker walker)
{
    private const ulong RflagsAll = 0x3f7fd5; // CF PF AF ZF SF TF IF DF OF IOPL NT RF VM AC VIF VIP ID (architectural flags)

    public GuestPageWalker Walker => walker;

    public static bool EventDeliverable(PvVcpuState st) => st.EventCallback != 0 && st.UpcallPending;

    public static void EnterKernelMode(PvVcpuState st)
    {
        if (st.KernelMode) return;
        st.KernelMode = true;
        st.CurrentCr3 = st.KernelL4 << 12;
        st.Commands.Add((CommandPage.OpLoadCr3, st.CurrentCr3, 0));
        st.Commands.Add((CommandPage.OpWrmsr, X86.MsrGsBase, st.GsBaseKernel));
    }

    public static void EnterUserMode(PvVcpuState st)
    {
        if (!st.KernelMode) return;
        st.KernelMode = false;
        st.CurrentCr3 = st.UserL4 << 12;
        st.Commands.Add((CommandPage.OpLoadCr3, st.CurrentCr3, 0));
        st.Commands.Add((CommandPage.OpWrmsr, X86.MsrGsBase, st.GsBaseUser));
    }

    /// <summary>
    /// Builds Xen's bounce frame and points the context at <paramref name="handler"/>: from the new rsp upward
    /// RCX, R11, [error code], RIP, CS (saved upcall mask in bits 32-39), RFLAGS (IF = !mask), RSP, SS.
    /// </summary>
    public void Bounce(PvVcpuState st, ref GuestContext ctx, ulong handler, ulong? errorCode, bool maskEvents,
        ushort? frameCs = null, ushort? frameSs = null, ushort[]? failsafeSegs = null)
    {
        if (handler == 0) throw new PvCrashException("no handler registered for a bounce");
        byte oldMask = st.EvtchnUpcallMask ? (byte)1 : (byte)0;
        bool fromUser = !st.KernelMode;
        ulong rsp;
        ushort cs = frameCs ?? ctx.Cs;
        ushort ss = frameSs ?? ctx.Ss;
        if (fromUser)
        {
            EnterKernelMode(st);
            rsp = st.KernelSp;
        }
        else
        {
            rsp = ctx.Regs.Rsp;
            cs = (ushort)(cs & ~3);
        }
        rsp &= ~0xfUL;
        if (rsp - 64 >= X86_64Layout.HypervisorVirtStart && rsp - 64 < X86_64Layout.HypervisorVirtEnd)
            throw new PvCrashException($"bounce stack 0x{rsp:x} lies in the hypervisor hole");
        ulong rflags = (ctx.Regs.Rflags & ~X86.RflagsIf) | (oldMask == 0 ? X86.RflagsIf : 0);
        var words = new List<ulong> { ctx.Regs.Rcx, ctx.Regs.R11 };
        if (failsafeSegs is not null) foreach (var sel in failsafeSegs) words.Add(sel); // DS, ES, FS, GS
        if (errorCode is ulong ec) words.Add(ec);
        words.AddRange(new[] { ctx.Regs.Rip, cs | ((ulong)oldMask << 32), rflags, ctx.Regs.Rsp, ss });
        ulong frame = rsp - (ulong)words.Count * 8;
        var bytes = new byte[words.Count * 8];
        for (int i = 0; i < words.Count; i++) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), words[i]);
        try { walker.Write(st.CurrentCr3, frame, bytes); }
        catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException)
        { throw new PvCrashException($"cannot write bounce frame at 0x{frame:x}: {e.Message}"); }

        ctx.Regs.Rip = handler;
        ctx.Regs.Rsp = frame;
        ctx.Regs.Rflags = (ctx.Regs.Rflags & ~(X86.RflagsTf | X86.RflagsNt | X86.RflagsRf | X86.RflagsVm | X86.RflagsAc)) | X86.RflagsIf | X86.RflagsReserved1;
        ctx.Cs = PvLayout.Ring3Cs64;
        ctx.Ss = PvLayout.Ring3Ds;
        if (maskEvents) st.EvtchnUpcallMask = true;
    }

    /// <summary>Delivers exception <paramref name="vector"/> through the trap table.</summary>
    public void BounceException(PvVcpuState st, ref GuestContext ctx, int vector, ulong? errorCode)
    {
        var t = st.TrapTable[vector];
        if (t.Address == 0) throw new PvCrashException($"unhandled trap {vector} (no trap table entry) at rip 0x{ctx.Regs.Rip:x} err {errorCode?.ToString("x") ?? "-"}");
        st.ExceptionCount++;
        Bounce(st, ref ctx, t.Address, X86.HasErrorCode(vector) ? errorCode ?? 0 : null, t.MasksEvents);
    }

    /// <summary>
    /// Xen's failsafe callback: returning to the guest failed on its segment state (a frame whose CS/SS/RIP the CPU
    /// would refuse, or a data selector that does not load). The guest gets, from the new rsp upward, RCX, R11, the
    /// selector values DS, ES, FS, GS (<paramref name="segs"/>), then RIP, CS, RFLAGS, RSP, SS of the context that
    /// could not be entered. No failsafe callback registered: the domain is crashed (Xen's bad bounce IP).
    /// </summary>
    public void Failsafe(PvVcpuState st, ref GuestContext ctx, ushort ds, ushort es, ushort fs, ushort gs, string why)
    {
        if (st.FailsafeCallback == 0) throw new PvCrashException($"{why}, and no failsafe callback is registered");
        st.FailsafeCount++;
        Bounce(st, ref ctx, st.FailsafeCallback, null, st.FailsafeDisablesEvents, failsafeSegs: new[] { ds, es, fs, gs });
    }

    /// <summary>Delivers a pending event to the event callback if the mask allows. Returns whether it did.</summary>
    public bool DeliverEvent(PvVcpuState st, ref GuestContext ctx)
    {
        if (!EventDeliverable(st)) return false;
        st.UpcallCount++;
        Bounce(st, ref ctx, st.EventCallback, null, true);
        return true;
    }

    /// <summary>A syscall from guest user mode: bounce to the syscall callback in kernel mode (C.4).</summary>
    public void UserSyscall(PvVcpuState st, ref GuestContext ctx, bool compat)
    {
        ulong cb = compat ? st.Syscall32Callback : st.SyscallCallback;
        if (cb == 0)
        {
            ctx.Regs.Rip -= 2;
            BounceException(st, ref ctx, X86.VectorUd, null);
            return;
        }
        Bounce(st, ref ctx, cb, null, st.SyscallDisablesEvents, compat ? PvLayout.Ring3Cs32 : PvLayout.Ring3Cs64, PvLayout.Ring3Ds);
        ctx.Regs.Rflags &= ~X86.RflagsDf;
    }

    /// <summary>HYPERVISOR_iret: pops the iret_context at the guest's rsp and returns into it (C.6).</summary>
    public void Iret(PvVcpuState st, ref GuestContext ctx)
    {
        var b = new byte[72];
        try { walker.Read(st.CurrentCr3, ctx.Regs.Rsp, b); }
        catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException)
        { throw new PvCrashException($"iret: cannot read frame at 0x{ctx.Regs.Rsp:x}"); }
        ulong Q(int i) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(i * 8));
        ulong rax = Q(0), r11 = Q(1), rcx = Q(2), flags = Q(3), rip = Q(4), cs = Q(5), rflags = Q(6), rsp = Q(7), ss = Q(8);
        if ((cs & 3) == 3)
        {
            if (st.UserL4 == 0) throw new PvCrashException("iret to user mode without a user page table");
            EnterUserMode(st);
        }
        ctx.Regs.Rip = rip;
        ctx.Cs = (ushort)(cs | 3);
        ctx.Ss = (ushort)(ss | 3);
        ctx.Regs.Rflags = (rflags & RflagsAll & ~(X86.RflagsIopl | X86.RflagsVm)) | X86.RflagsIf | X86.RflagsReserved1;
        ctx.Regs.Rsp = rsp;
        ctx.Regs.Rax = rax;
        if ((flags & Vgcf.InSyscall) == 0)
        {
            ctx.Regs.R11 = r11;
            ctx.Regs.Rcx = rcx;
        }
        st.EvtchnUpcallMask = (rflags & X86.RflagsIf) == 0;
        st.ContextReplaced = true;
    }
}

/// <summary>The guest did something it cannot survive (Xen's domain_crash).</summary>
public sealed class PvCrashException(string message) : Exception(message);
