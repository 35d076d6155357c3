using System.Text.Json;
using System.Text.Json.Serialization;

namespace XenSharp.Toolstack.Config;

public enum DomainType { Pv, Pvh, Hvm }

/// <summary>What to do when a domain powers off, reboots, crashes, trips the watchdog or soft-resets.</summary>
public enum ActionOnShutdown { Destroy, Restart, RenameRestart, Preserve, CoredumpDestroy, CoredumpRestart, SoftReset }

public static class ActionOnShutdownNames
{
    public static string ToXl(this ActionOnShutdown a) => a switch
    {
        ActionOnShutdown.Destroy => "destroy",
        ActionOnShutdown.Restart => "restart",
        ActionOnShutdown.RenameRestart => "rename-restart",
        ActionOnShutdown.Preserve => "preserve",
        ActionOnShutdown.CoredumpDestroy => "coredump-destroy",
        ActionOnShutdown.CoredumpRestart => "coredump-restart",
        ActionOnShutdown.SoftReset => "soft-reset",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    public static bool TryParse(string s, out ActionOnShutdown action)
    {
        foreach (var a in Enum.GetValues<ActionOnShutdown>())
        {
            if (a.ToXl() == s)
            {
                action = a;
                return true;
            }
        }
        action = default;
        return false;
    }
}

/// <summary>Top-level VNC options (vnc, vnclisten, vncpasswd, vncdisplay, vncunused).</summary>
public sealed record VncSettings
{
    public bool? Enabled { get; init; }
    public string? Listen { get; init; }
    public string? Password { get; init; }
    public int? Display { get; init; }
    public bool? FindUnused { get; init; }
}

/// <summary>A known-but-unmodelled or unknown key, kept with its value in xl.cfg syntax.</summary>
public sealed record XlRawSetting(string Key, string XlText);

/// <summary>
/// A validated xl.cfg domain configuration. Immutable; build one with <see cref="Parse"/>,
/// <see cref="TryParse"/> or <see cref="Load"/>; print with <see cref="ToXlCfg"/> (round-trips),
/// serialise with <see cref="ToJson"/>.
/// </summary>
public sealed record DomainConfig
{
    public required string Name { get; init; }
    /// <summary>From <c>type=</c> or legacy <c>builder=</c>; xl defaults to PV on x86.</summary>
    public DomainType Type { get; init; } = DomainType.Pv;
    public Guid? Uuid { get; init; }
    public string? Pool { get; init; }
    public string? Seclabel { get; init; }

    /// <summary>Initial memory target in MiB; null = toolstack default.</summary>
    public long? MemoryMiB { get; init; }
    /// <summary>Maximum memory (balloon ceiling) in MiB; null = same as memory.</summary>
    public long? MaxMemMiB { get; init; }
    public int Vcpus { get; init; } = 1;
    /// <summary>null = same as <see cref="Vcpus"/>.</summary>
    public int? MaxVcpus { get; init; }
    /// <summary>Hard affinity (<c>cpus=</c>).</summary>
    public VcpuAffinity? Cpus { get; init; }
    /// <summary>Soft affinity (<c>cpus_soft=</c>).</summary>
    public VcpuAffinity? CpusSoft { get; init; }
    /// <summary>Credit scheduler weight, 1–65535 (Xen default 256).</summary>
    public int? CpuWeight { get; init; }
    /// <summary>Credit scheduler cap in percent of one pcpu; 0 = no cap.</summary>
    public int? Cap { get; init; }

    public string? Kernel { get; init; }
    public string? Ramdisk { get; init; }
    public string? Cmdline { get; init; }
    public string? Root { get; init; }
    public string? Extra { get; init; }
    /// <summary>Bootloader (e.g. pygrub) — parsed but not supported by XenSharp.</summary>
    public string? Bootloader { get; init; }

    public ActionOnShutdown OnPoweroff { get; init; } = ActionOnShutdown.Destroy;
    public ActionOnShutdown OnReboot { get; init; } = ActionOnShutdown.Restart;
    public ActionOnShutdown OnWatchdog { get; init; } = ActionOnShutdown.Destroy;
    public ActionOnShutdown OnCrash { get; init; } = ActionOnShutdown.Destroy;
    public ActionOnShutdown OnSoftReset { get; init; } = ActionOnShutdown.SoftReset;

    public bool? Localtime { get; init; }
    public ValueList<string>? Serial { get; init; }
    public VncSettings? Vnc { get; init; }
    /// <summary>Raw <c>vfb=[…]</c> specs (key=value lists), kept for the display backend.</summary>
    public ValueList<string>? Vfb { get; init; }

    public ValueList<DiskSpec> Disks { get; init; } = ValueList<DiskSpec>.Empty;
    public ValueList<VifSpec> Vifs { get; init; } = ValueList<VifSpec>.Empty;

    /// <summary>Every other key (known to xl but not modelled here, or unknown) in file order.</summary>
    public ValueList<XlRawSetting> OtherSettings { get; init; } = ValueList<XlRawSetting>.Empty;

    [JsonIgnore] public long? EffectiveMaxMemMiB => MaxMemMiB ?? MemoryMiB;
    [JsonIgnore] public int EffectiveMaxVcpus => MaxVcpus ?? Vcpus;

    /// <summary>
    /// The guest kernel command line as xl builds it: <c>cmdline</c> if set (root/extra are then
    /// ignored), otherwise "root=ROOT EXTRA", "root=ROOT" or "EXTRA".
    /// </summary>
    [JsonIgnore]
    public string? KernelCommandLine =>
        Cmdline ?? (Root, Extra) switch
        {
            (not null, not null) => $"root={Root} {Extra}",
            (not null, null) => $"root={Root}",
            (null, not null) => Extra,
            _ => null,
        };

    // ---- parsing ----

    /// <summary>Parses and validates; throws <see cref="ConfigException"/> listing every error.</summary>
    public static DomainConfig Parse(string text, string sourceName = "xl.cfg", IEnumerable<string>? overrides = null)
    {
        var result = TryParse(text, sourceName, overrides);
        return result.Config ?? throw new ConfigException(result.Diagnostics);
    }

    /// <summary>Parses and validates without throwing; diagnostics carry line numbers and keys.</summary>
    public static DomainConfigParseResult TryParse(string text, string sourceName = "xl.cfg", IEnumerable<string>? overrides = null) =>
        FromSyntax(XlConfigFile.Parse(text, sourceName, overrides));

    /// <summary>Reads a config file; <paramref name="overrides"/> are the <c>key=value</c> extras of <c>xl create</c>.</summary>
    public static DomainConfig Load(string path, IEnumerable<string>? overrides = null) =>
        Parse(File.ReadAllText(path), path, overrides);

    /// <summary>Builds the typed model from an already parsed file (syntax errors are carried over).</summary>
    public static DomainConfigParseResult FromSyntax(XlConfigFile file) => DomainConfigBuilder.Build(file);

    // ---- output ----

    /// <summary>Prints xl.cfg text that parses back to an equal <see cref="DomainConfig"/>.</summary>
    public string ToXlCfg() => XlCfgPrinter.Print(this);

    public static JsonSerializerOptions JsonOptions { get; } = CreateJsonOptions();

    private static JsonSerializerOptions CreateJsonOptions()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static DomainConfig FromJson(string json) =>
        JsonSerializer.Deserialize<DomainConfig>(json, JsonOptions) ?? throw new JsonException("null domain config");
}
