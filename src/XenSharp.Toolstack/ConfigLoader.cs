using XenSharp.Toolstack.Config;
using HvDomainType = XenSharp.Hypervisor.DomainType;

namespace XenSharp.Toolstack;

/// <summary>Turns xl.cfg text (plus xl's key=value overrides) into a <see cref="DomainPlan"/>, or errors that name the line and key.</summary>
public static class ConfigLoader
{
    /// <summary>xl's default when a config gives no memory (MiB).</summary>
    public const ulong DefaultMemoryMiB = 128;

    public static (DomainPlan Plan, IReadOnlyList<string> Warnings) Load(string text, string configPath, IReadOnlyList<string> overrides, string workingDirectory)
    {
        var parsed = DomainConfig.TryParse(text, string.IsNullOrEmpty(configPath) ? "xl.cfg" : configPath, overrides);
        if (!parsed.Success) throw new ConfigException(parsed.Diagnostics);
        var cfg = parsed.Config!;
        var warnings = parsed.Warnings.Select(w => w.ToString()).ToList();

        if (cfg.Bootloader is not null && cfg.Kernel is null)
            throw new ToolstackException($"{configPath}: bootloader=\"{cfg.Bootloader}\" is not supported by XenSharp: give kernel= (and ramdisk=) instead");
        if (cfg.Kernel is null)
            throw new ToolstackException($"{configPath}: no kernel= given: XenSharp boots {TypeName(cfg.Type)} domains from a kernel image (firmware boot from a disk is not supported yet)");
        if (cfg.Type == DomainType.Hvm && (cfg.Disks.Count > 0 || cfg.Vifs.Count > 0))
            warnings.Add($"{configPath}: disk= and vif= are validated but not attached to HVM domains yet: the minimal HVM platform has no emulated disk or NIC");
        if (cfg.Disks.Count > 0)
            cfg = cfg with { Disks = cfg.Disks.Select(d => d.Target.Length == 0 ? d : d with { Target = Resolve(d.Target, workingDirectory) }).ToValueList() };

        ulong memory = cfg.MemoryMiB is { } m ? (ulong)m : DefaultMemoryMiB;
        ulong maxmem = cfg.MaxMemMiB is { } mm ? (ulong)mm : memory;
        var type = cfg.Type switch
        {
            DomainType.Pv => HvDomainType.Pv,
            DomainType.Pvh => HvDomainType.Pvh,
            _ => HvDomainType.Hvm,
        };
        var plan = new DomainPlan(cfg, type, memory, maxmem,
            Resolve(cfg.Kernel, workingDirectory), cfg.Ramdisk is null ? null : Resolve(cfg.Ramdisk, workingDirectory),
            cfg.Uuid ?? Guid.NewGuid(), configPath);
        return (plan, warnings);
    }

    private static string Resolve(string path, string workingDirectory) =>
        Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(workingDirectory, path));

    private static string TypeName(DomainType t) => t.ToString().ToLowerInvariant();
}
