namespace XenSharp.Hypervisor.Pv;

/// <summary>The five register arguments of a hypercall (rdi, rsi, rdx, r10, r8 on x86-64).</summary>
public readonly record struct HypercallArgs(ulong A1 = 0, ulong A2 = 0, ulong A3 = 0, ulong A4 = 0, ulong A5 = 0)
{
    public ulong this[int i] => i switch { 0 => A1, 1 => A2, 2 => A3, 3 => A4, 4 => A5, _ => throw new ArgumentOutOfRangeException(nameof(i)) };
}

/// <summary>
/// One hypercall in progress, made by <see cref="Vcpu"/> on its own thread. The CPU half builds it (once per
/// vCPU is fine: call <see cref="Reset"/> between calls), calls <see cref="HypercallTable.Dispatch"/>, writes the
/// result to rax and then returns <see cref="RequestedAction"/> from its IDomainPlatform.HandleExit.
/// </summary>
public sealed class PvHypercallContext
{
    public PvHypercallContext(PvDomainState domainState, PvVcpuState vcpuState, IGuestVirtualMemory memory)
    {
        DomainState = domainState;
        VcpuState = vcpuState;
        Memory = memory;
    }

    public PvDomainState DomainState { get; }
    public PvVcpuState VcpuState { get; }
    public Domain Domain => DomainState.Domain;
    public VirtualCpu Vcpu => VcpuState.Vcpu;
    /// <summary>The calling vCPU's guest-virtual memory (current page tables, kernel mode).</summary>
    public IGuestVirtualMemory Memory { get; set; }

    /// <summary>
    /// What the vCPU loop must do after this hypercall: Continue, Block (SCHEDOP_block/poll, VCPUOP_down of
    /// itself: sleep until <see cref="PvVcpuState.HasPendingWork"/>) or Stop (the domain shut down).
    /// </summary>
    public ExitAction RequestedAction { get; set; } = ExitAction.Continue;

    /// <summary>Depth of multicall nesting (a multicall inside a multicall is refused).</summary>
    internal int MulticallDepth { get; set; }

    public void Reset() => RequestedAction = ExitAction.Continue;
}

/// <summary>A hypercall handler. Returns the value for rax: >= 0 on success, a negated Xen errno on failure.</summary>
public delegate long HypercallHandler(PvHypercallContext ctx, in HypercallArgs args);
