using XenSharp.Hypervisor;
using XenSharp.Toolstack.Config;

namespace XenSharp.Toolstack;

/// <summary>
/// A validated xl.cfg with everything resolved that the builders need (absolute paths, defaults, the Xen
/// uuid). It is kept for the domain's lifetime so that a restart rebuilds the same domain.
/// </summary>
public sealed record DomainPlan(DomainConfig Config, Hypervisor.DomainType Type, ulong MemoryMiB, ulong MaxMemoryMiB, string Kernel, string? Ramdisk, Guid Uuid, string ConfigPath)
{
    public string Name => Config.Name;
    public int Vcpus => Config.Vcpus;
    public int MaxVcpus => Config.EffectiveMaxVcpus;
    public string? Cmdline => Config.KernelCommandLine;

    /// <summary>The effective configuration (file plus command-line overrides), as xl.cfg text.</summary>
    public string ConfigText => Config.ToXlCfg();

    public ActionOnShutdown ActionFor(ShutdownReason reason) => reason switch
    {
        ShutdownReason.Poweroff => Config.OnPoweroff,
        ShutdownReason.Reboot => Config.OnReboot,
        ShutdownReason.Crash => Config.OnCrash,
        ShutdownReason.Watchdog => Config.OnWatchdog,
        ShutdownReason.SoftReset => Config.OnSoftReset,
        _ => ActionOnShutdown.Preserve, // Suspend: the domain waits for save to collect it.
    };
}
