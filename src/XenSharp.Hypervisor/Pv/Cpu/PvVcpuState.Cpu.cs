using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Hypervisor.Pv;

/// <summary>The CPU half of a PV vCPU's state (Xen's arch.pv): mode, trap table, callbacks, stacks, L4s, segment bases.</summary>
public sealed partial class PvVcpuState
{
    /// <summary>Guest-kernel mode (true) or guest-user mode. Both run at CPL3.</summary>
    public bool KernelMode { get; set; } = true;

    public readonly TrapEntry[] TrapTable = new TrapEntry[256];

    public ulong EventCallback, FailsafeCallback, SyscallCallback, Syscall32Callback, SysenterCallback;
    public bool SyscallDisablesEvents, FailsafeDisablesEvents;

    public ulong KernelSs = PvLayout.Ring3Ds, KernelSp;
    /// <summary>MFNs of the kernel and user top-level tables (0 = none).</summary>
    public ulong KernelL4, UserL4;
    /// <summary>The CR3 the vCPU runs with now (kernel L4 in kernel mode, user L4 in user mode).</summary>
    public ulong CurrentCr3;

    public ulong FsBase, GsBaseKernel, GsBaseUser;
    public bool VirtualTs;
    public ulong VirtualCr2;
    public readonly ulong[] DebugRegs = { 0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400 };
    public int VirtualIopl;

    public readonly ulong?[] GdtFrames = new ulong?[14];
    public int GdtEntries;
    public ulong LdtBase;
    public int LdtEntries;
    /// <summary>Guest frames mapped in this vCPU's shadow LDT (each holds a descriptor-page type reference).</summary>
    public readonly ulong?[] LdtShadow = new ulong?[PvLayout.LdtPages];

    /// <summary>The CS/SS the guest runs with now (Xen does not know user selectors otherwise).</summary>
    public ushort CurrentCs = PvLayout.Ring3Cs64, CurrentSs = PvLayout.Ring3Ds;

    /// <summary>Whether the vCPU is stopped inside a ring-0 stub (exception entries; syscall on VT-x/AMD-V/emu) or at CPL3.</summary>
    public bool AtRing0;

    /// <summary>Commands for the resume stub, run in guest context before the return to the guest.</summary>
    public readonly List<(ulong Op, ulong A, ulong B)> Commands = new();

    /// <summary>Set by a hypercall (iret) that replaced the whole guest context instead of returning a value.</summary>
    public bool ContextReplaced;


    public long HypercallCount, ExceptionCount, UpcallCount, FailsafeCount;
}

/// <summary>A trap_info entry: flags bits 0-1 DPL, bit 2 "interrupt gate" (mask events).</summary>
public readonly record struct TrapEntry(byte Flags, ushort Cs, ulong Address)
{
    public int Dpl => Flags & 3;
    public bool MasksEvents => (Flags & 4) != 0;
}

public sealed partial class PvVcpuState
{
    /// <summary>The context the vCPU returns to at its next entry (set by exit handling, consumed by BeforeEntry).</summary>
    public GuestContext? PendingResume;

    /// <summary>The guest context of the hypercall in progress (iret replaces it).</summary>
    public GuestContext CallContext;

    /// <summary>This vCPU's hypercall context, reused between calls.</summary>
    internal PvHypercallContext? HypercallContext;

    /// <summary>Special registers, MSRs and CPUID have been loaded into the accelerator's vCPU.</summary>
    public bool CpuLoaded;

    /// <summary>Commands beyond one command page, and the context to return to once they have all run.</summary>
    internal List<(ulong Op, ulong A, ulong B)>? CommandOverflow;
    internal GuestContext OverflowContext;

    /// <summary>Another vCPU asked for a TLB flush on this one (TLB_FLUSH_ALL/MULTI, INVLPG_MULTI, UVMF_ALL).</summary>
    public volatile bool RemoteFlushPending;
}
