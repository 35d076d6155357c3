using XenSharp.Hypervisor;

namespace XenSharp.Toolstack;

/// <summary>What xl.cfg's on_poweroff / on_reboot / on_crash / on_watchdog / on_soft_reset ask for.</summary>
public enum ShutdownAction { Destroy, Restart, Preserve, RenameRestart, CoredumpDestroy, CoredumpRestart, SoftReset }

/// <summary>
/// Everything the toolstack needs to build one domain, derived from a validated xl.cfg. It is kept for the
/// domain's lifetime so that a restart rebuilds the same domain.
/// </summary>
public sealed record DomainPlan(
    string Name,
    DomainType Type,
    ulong MemoryMiB,
    ulong MaxMemoryMiB,
    int Vcpus,
    int MaxVcpus,
    string Kernel,
    string? Ramdisk,
    string? Cmdline,
    ShutdownAction OnPoweroff,
    ShutdownAction OnReboot,
    ShutdownAction OnCrash,
    ShutdownAction OnWatchdog,
    ShutdownAction OnSoftReset,
    Guid Uuid,
    string ConfigText,
    string ConfigPath)
{
    public ShutdownAction ActionFor(ShutdownReason reason) => reason switch
    {
        ShutdownReason.Poweroff => OnPoweroff,
        ShutdownReason.Reboot => OnReboot,
        ShutdownReason.Crash => OnCrash,
        ShutdownReason.Watchdog => OnWatchdog,
        ShutdownReason.SoftReset => OnSoftReset,
        _ => ShutdownAction.Preserve, // Suspend: the domain waits for save to collect it.
    };
}
