using XenSharp.Accel;

namespace XenSharp.Hypervisor;

/// <summary>What a vCPU does after its platform handled an exit.</summary>
public enum ExitAction
{
    /// <summary>Enter the guest again.</summary>
    Continue,
    /// <summary>Sleep until <see cref="VirtualCpu.Wake"/> (an event, an interrupt, input) and then enter the guest.</summary>
    Block,
    /// <summary>Leave the run loop: the domain has shut down or the vCPU went offline.</summary>
    Stop,
}

/// <summary>
/// The domain-type-specific half of a domain (PV ABI or HVM devices): it owns the guest's view of the
/// platform and turns exits into emulation. Its methods run on the vCPU's own thread.
/// </summary>
public interface IDomainPlatform : IDisposable
{
    ExitAction HandleExit(VirtualCpu vcpu, in VcpuExit exit);

    /// <summary>Runs before each entry into the guest: deliver pending events or interrupts.</summary>
    void BeforeEntry(VirtualCpu vcpu);

    /// <summary>True when the vCPU has something to do after blocking (an interrupt or event is pending).</summary>
    bool HasPendingWork(VirtualCpu vcpu);
}
