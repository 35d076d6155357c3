using System.Globalization;

namespace XenSharp.Toolstack.Config;

/// <summary>Turns parsed settings into a validated <see cref="DomainConfig"/>, collecting every diagnostic.</summary>
internal sealed class DomainConfigBuilder
{
    private readonly XlConfigFile _file;
    private readonly List<XlDiagnostic> _diags;

    private DomainConfigBuilder(XlConfigFile file)
    {
        _file = file;
        _diags = [.. file.Diagnostics];
    }

    public static DomainConfigParseResult Build(XlConfigFile file)
    {
        var b = new DomainConfigBuilder(file);
        var config = b.BuildConfig();
        var diags = b._diags.OrderBy(d => d.Source == "command line" ? 1 : 0).ThenBy(d => d.Line).ToList();
        return new DomainConfigParseResult(diags.Any(d => d.Severity == DiagnosticSeverity.Error) ? null : config, diags);
    }

    private const long MaxMemoryMiB = 1L << 30; // 1 PiB: anything above is surely a unit mistake
    private const int MaxVcpuCount = 4096;

    private DomainConfig BuildConfig()
    {
        // Keys first, so unknown-key warnings appear even if later validation fails.
        var other = new List<XlRawSetting>();
        foreach (var s in _file.Settings)
        {
            if (XlCfgKnownKeys.Modelled.Contains(s.Key)) continue;
            other.Add(new XlRawSetting(s.Key, s.Value.ToXlText()));
            if (XlCfgKnownKeys.IsKnown(s.Key))
                Note(s, "accepted but not acted on by XenSharp yet");
            else
                Warn(s, $"unknown key '{s.Key}' (not an xl.cfg option; check the spelling); kept but ignored");
        }

        var name = GetString("name");
        if (name is null)
            _diags.Add(new(DiagnosticSeverity.Error, SourceName, 0, "name", null, "missing: every domain needs name = \"...\""));
        else
            ValidateName(name);

        var type = GetDomainType();
        var uuid = GetUuid();
        var memory = GetLong("memory", 1, MaxMemoryMiB, "an integer number of MiB", "greater than 0");
        var maxmem = GetLong("maxmem", 1, MaxMemoryMiB, "an integer number of MiB", "greater than 0");
        if (memory is not null && maxmem is not null && maxmem < memory)
            Error(_file["maxmem"]!, $"maxmem ({maxmem} MiB) must be at least memory ({memory} MiB)");

        var vcpus = GetLong("vcpus", 1, MaxVcpuCount, "an integer number of vCPUs", "at least 1");
        var maxvcpus = GetLong("maxvcpus", 1, MaxVcpuCount, "an integer number of vCPUs", "at least 1");
        if (vcpus is not null && maxvcpus is not null && vcpus > maxvcpus)
            Error(_file["maxvcpus"]!, $"maxvcpus ({maxvcpus}) must be at least vcpus ({vcpus})");
        var effMaxVcpus = (int)(maxvcpus ?? vcpus ?? 1);

        var weight = GetLong("cpu_weight", 1, 65535, "an integer scheduler weight", "between 1 and 65535");
        var capMax = 100L * effMaxVcpus;
        var cap = GetLong("cap", 0, capMax, "an integer percentage of one physical cpu",
            $"between 0 (no cap) and {capMax} (100 x {effMaxVcpus} vCPUs)");

        var cmdline = GetString("cmdline");
        var root = GetString("root");
        var extra = GetString("extra");
        if (cmdline is not null && (root is not null || extra is not null))
            Warn(_file["cmdline"]!, "root= and extra= are ignored in favour of cmdline=");

        var kernel = GetString("kernel");
        var bootloader = GetString("bootloader");
        if (bootloader is not null)
            Warn(_file["bootloader"]!, $"bootloader '{bootloader}' is not supported by XenSharp; boot with kernel= (pv/pvh) or firmware (hvm)");
        if (type == DomainType.Pv && kernel is null && bootloader is null && name is not null)
            _diags.Add(new(DiagnosticSeverity.Error, SourceName, 0, "kernel", null, "missing: a pv domain needs kernel = \"...\" (or a bootloader)"));

        var vnc = GetVnc();
        return new DomainConfig
        {
            Name = name ?? "",
            Type = type,
            Uuid = uuid,
            Pool = GetString("pool"),
            Seclabel = GetString("seclabel"),
            MemoryMiB = memory,
            MaxMemMiB = maxmem,
            Vcpus = (int)(vcpus ?? 1),
            MaxVcpus = (int?)maxvcpus,
            Cpus = GetAffinity("cpus", effMaxVcpus),
            CpusSoft = GetAffinity("cpus_soft", effMaxVcpus),
            CpuWeight = (int?)weight,
            Cap = (int?)cap,
            Kernel = kernel,
            Ramdisk = GetString("ramdisk"),
            Cmdline = cmdline,
            Root = root,
            Extra = extra,
            Bootloader = bootloader,
            OnPoweroff = GetAction("on_poweroff", ActionOnShutdown.Destroy, type),
            OnReboot = GetAction("on_reboot", ActionOnShutdown.Restart, type),
            OnWatchdog = GetAction("on_watchdog", ActionOnShutdown.Destroy, type),
            OnCrash = GetAction("on_crash", ActionOnShutdown.Destroy, type),
            OnSoftReset = GetAction("on_soft_reset", ActionOnShutdown.SoftReset, type),
            Localtime = GetBool("localtime"),
            Serial = GetStringOrList("serial"),
            Vnc = vnc,
            Vfb = GetStringList("vfb", "vfb spec", null),
            Disks = GetDisks(),
            Vifs = GetVifs(),
            OtherSettings = other.ToValueList(),
        };
    }

    private string SourceName => _file.Settings.FirstOrDefault(s => s.Source != "command line")?.Source ?? "xl.cfg";

    // ---- diagnostics ----

    private void Error(XlSetting s, string message, int? line = null) =>
        _diags.Add(new(DiagnosticSeverity.Error, s.Source, line ?? s.Line, s.Key, s.Value.ToXlText(), message));

    private void ErrorItem(XlSetting s, XlValue item, string message) =>
        _diags.Add(new(DiagnosticSeverity.Error, s.Source, item.Line, s.Key, item.ToXlText(), message));

    private void Warn(XlSetting s, string message) =>
        _diags.Add(new(DiagnosticSeverity.Warning, s.Source, s.Line, s.Key, null, message));

    private void Note(XlSetting s, string message) =>
        _diags.Add(new(DiagnosticSeverity.Note, s.Source, s.Line, s.Key, null, message));

    // ---- scalar getters ----

    private XlAtom? GetAtom(string key, out XlSetting? setting)
    {
        setting = _file[key];
        if (setting is null) return null;
        if (setting.Value is XlAtom a) return a;
        Error(setting, "expected a single value, not a list");
        return null;
    }

    private string? GetString(string key) => GetAtom(key, out _)?.Text;

    private long? GetLong(string key, long min, long max, string expected, string rangeText)
    {
        var atom = GetAtom(key, out var s);
        if (atom is null) return null;
        if (s!.Appended)
        {
            Error(s, "can't use += with a number");
            return null;
        }
        if (!TryParseCLong(atom.Text, out var v))
        {
            // libxlu uses strtol(…, 0): "08" fails because a leading 0 means octal.
            var octalHint = atom.Text.Length > 1 && atom.Text[0] == '0' && atom.Text.All(char.IsAsciiDigit)
                ? " (a leading 0 means octal, as in C; drop it)" : "";
            Error(s, $"expected {expected}{octalHint}");
            return null;
        }
        if (atom.Text.Length > 1 && atom.Text[0] == '0' && char.IsAsciiDigit(atom.Text[1]))
            Warn(s, $"'{atom.Text}' has a leading 0 and is read as octal ({v}), as xl does");
        if (v < min || v > max)
        {
            Error(s, $"{v} is out of range: must be {rangeText}");
            return null;
        }
        return v;
    }

    /// <summary>strtol(…, 0) as libxlu uses: optional sign, 0x hex, leading-0 octal, decimal.</summary>
    internal static bool TryParseCLong(string text, out long value)
    {
        value = 0;
        var s = text.AsSpan().TrimStart(" \t\n\v\f\r");
        var neg = false;
        if (!s.IsEmpty && s[0] is '+' or '-')
        {
            neg = s[0] == '-';
            s = s[1..];
        }
        var style = NumberStyles.None;
        if (s.Length > 2 && s[0] == '0' && s[1] is 'x' or 'X')
        {
            s = s[2..];
            style = NumberStyles.AllowHexSpecifier;
            if (!ulong.TryParse(s, style, CultureInfo.InvariantCulture, out var hex) || hex > long.MaxValue) return false;
            value = neg ? -(long)hex : (long)hex;
            return true;
        }
        if (s.Length > 1 && s[0] == '0')
        {
            long oct = 0;
            foreach (var c in s[1..])
            {
                if (c is < '0' or > '7') return false;
                oct = checked(oct * 8 + (c - '0'));
                if (oct > long.MaxValue / 8) return false;
            }
            value = neg ? -oct : oct;
            return true;
        }
        if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var dec)) return false;
        value = neg ? -dec : dec;
        return true;
    }

    private bool? GetBool(string key)
    {
        // libxlu's defbool is a number: 0 is false, anything else true.
        var atom = GetAtom(key, out var s);
        if (atom is null) return null;
        if (!TryParseCLong(atom.Text, out var v) || s!.Appended)
        {
            Error(s!, "expected 0 or 1");
            return null;
        }
        return v != 0;
    }

    // ---- specific keys ----

    private void ValidateName(string name)
    {
        var s = _file["name"]!;
        if (name.Length == 0) Error(s, "the domain name must not be empty");
        else if (name.Length > 64) Error(s, "the domain name is longer than 64 characters");
        else if (name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            Error(s, "invalid domain name: use only letters, digits, '-', '_' and '.'");
        else if (name.All(char.IsAsciiDigit)) Error(s, "invalid domain name: an all-digit name would be taken for a domain id");
        else if (name[0] == '-') Error(s, "invalid domain name: must not start with '-'");
        else if (name == "Domain-0") Error(s, "the name Domain-0 is reserved for the control domain");
    }

    private DomainType GetDomainType()
    {
        DomainType? type = null;
        var t = GetAtom("type", out var ts);
        if (t is not null)
        {
            type = t.Text switch { "pv" => DomainType.Pv, "pvh" => DomainType.Pvh, "hvm" => DomainType.Hvm, _ => null };
            if (type is null) Error(ts!, "unknown domain type: expected \"pv\", \"pvh\" or \"hvm\"");
        }
        var b = GetAtom("builder", out var bs);
        if (b is not null)
        {
            DomainType? bt = b.Text switch { "hvm" => DomainType.Hvm, "generic" => DomainType.Pv, _ => null };
            if (bt is null) Error(bs!, "unknown builder: expected \"hvm\" or \"generic\" (builder is deprecated, use type=)");
            else if (t is not null && type is not null && type != bt)
                Error(bs!, $"contradicts type = \"{t.Text}\"");
            else
            {
                Note(bs!, "builder= is deprecated; use type=");
                type ??= bt;
            }
        }
        return type ?? DomainType.Pv;
    }

    private Guid? GetUuid()
    {
        var atom = GetAtom("uuid", out var s);
        if (atom is null) return null;
        if (Guid.TryParseExact(atom.Text, "D", out var g)) return g;
        Error(s!, "expected a UUID like 01234567-89ab-cdef-0123-456789abcdef");
        return null;
    }

    private ActionOnShutdown GetAction(string key, ActionOnShutdown dflt, DomainType type)
    {
        var atom = GetAtom(key, out var s);
        if (atom is null) return dflt;
        if (!ActionOnShutdownNames.TryParse(atom.Text, out var a))
        {
            Error(s!, "unknown action: expected destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart or soft-reset");
            return dflt;
        }
        // soft-reset is on_soft_reset's default for every type (a PV guest just never asks for it),
        // but making a PV guest soft-reset on poweroff/reboot/crash can't work.
        if (a == ActionOnShutdown.SoftReset && type == DomainType.Pv && key != "on_soft_reset")
        {
            Error(s!, "soft-reset is not supported for pv guests");
            return dflt;
        }
        return a;
    }

    private VcpuAffinity? GetAffinity(string key, int maxVcpus)
    {
        var s = _file[key];
        if (s is null) return null;
        if (s.Value is XlAtom atom)
        {
            if (CpuAffinity.TryParse(atom.Text, out var set, out var err)) return VcpuAffinity.ForAll(set);
            Error(s, "bad cpu list: " + err);
            return null;
        }
        var list = (XlList)s.Value;
        var sets = new List<CpuAffinity>();
        var ok = true;
        foreach (var item in list.Items)
        {
            if (item is not XlAtom a)
            {
                ErrorItem(s, item, "expected a cpu list string for each vCPU, not a nested list");
                ok = false;
            }
            else if (CpuAffinity.TryParse(a.Text, out var set, out var err))
                sets.Add(set);
            else
            {
                ErrorItem(s, item, $"bad cpu list for vCPU {sets.Count}: {err}");
                ok = false;
            }
        }
        if (!ok) return null;
        if (sets.Count == 0)
        {
            Error(s, "empty per-vCPU list: give one cpu list per vCPU, e.g. [\"2\", \"3-5\"]");
            return null;
        }
        if (sets.Count > maxVcpus)
            Warn(s, $"{sets.Count} entries but only {maxVcpus} vCPUs: the extra entries are ignored");
        return VcpuAffinity.PerVcpu(sets);
    }

    private ValueList<string>? GetStringOrList(string key)
    {
        var s = _file[key];
        if (s is null) return null;
        if (s.Value is XlAtom a) return ValueList.Of(a.Text);
        return GetStringList(key, "string", null);
    }

    /// <summary>A list of strings; each item also goes through <paramref name="check"/> (null = accept).</summary>
    private ValueList<string>? GetStringList(string key, string what, Func<string, string?>? check)
    {
        var s = _file[key];
        if (s is null) return null;
        if (s.Value is not XlList list)
        {
            Error(s, $"expected a list of {what}s, e.g. {key} = [ \"...\" ]");
            return null;
        }
        var result = new List<string>();
        foreach (var item in list.Items)
        {
            if (item is not XlAtom a)
            {
                ErrorItem(s, item, $"expected a {what} string, not a nested list");
                continue;
            }
            if (check?.Invoke(a.Text) is { } err) ErrorItem(s, item, err);
            result.Add(a.Text);
        }
        return result.ToValueList();
    }

    private VncSettings? GetVnc()
    {
        if (new[] { "vnc", "vnclisten", "vncpasswd", "vncdisplay", "vncunused" }.All(k => _file[k] is null)) return null;
        return new VncSettings
        {
            Enabled = GetBool("vnc"),
            Listen = GetString("vnclisten"),
            Password = GetString("vncpasswd"),
            Display = (int?)GetLong("vncdisplay", 0, 65535 - 5900, "an integer VNC display number", "between 0 and 59635"),
            FindUnused = GetBool("vncunused"),
        };
    }

    private ValueList<DiskSpec> GetDisks()
    {
        var s = _file["disk"];
        if (s is null) return ValueList<DiskSpec>.Empty;
        if (s.Value is not XlList list)
        {
            Error(s, "expected a list of disk specs, e.g. disk = [ \"/img.raw,raw,xvda,rw\" ]");
            return ValueList<DiskSpec>.Empty;
        }
        var disks = new List<DiskSpec>();
        var seen = new Dictionary<int, string>();
        foreach (var item in list.Items)
        {
            if (item is not XlAtom a)
            {
                ErrorItem(s, item, "expected a disk spec string, not a nested list");
                continue;
            }
            if (!DiskSpec.TryParse(a.Text, out var disk, out var errors))
            {
                foreach (var e in errors) ErrorItem(s, item, "bad disk spec: " + e);
                continue;
            }
            if (seen.TryGetValue(disk!.VirtualDeviceNumber, out var prev))
            {
                ErrorItem(s, item, $"duplicate vdev '{disk.Vdev}' (device {disk.VirtualDeviceNumber} is already used by '{prev}')");
                continue;
            }
            seen[disk.VirtualDeviceNumber] = disk.Vdev;
            disks.Add(disk);
        }
        return disks.ToValueList();
    }

    private ValueList<VifSpec> GetVifs()
    {
        var s = _file["vif"];
        if (s is null) return ValueList<VifSpec>.Empty;
        if (s.Value is not XlList list)
        {
            Error(s, "expected a list of vif specs, e.g. vif = [ \"bridge=xenbr0\" ]");
            return ValueList<VifSpec>.Empty;
        }
        var vifs = new List<VifSpec>();
        foreach (var item in list.Items)
        {
            if (item is not XlAtom a)
            {
                ErrorItem(s, item, "expected a vif spec string, not a nested list");
                continue;
            }
            var ok = VifSpec.TryParse(a.Text, out var vif, out var errors, out var warnings);
            foreach (var w in warnings)
                _diags.Add(new(DiagnosticSeverity.Warning, s.Source, item.Line, s.Key, item.ToXlText(), w));
            if (!ok)
            {
                foreach (var e in errors) ErrorItem(s, item, "bad vif spec: " + e);
                continue;
            }
            vifs.Add(vif!);
        }
        return vifs.ToValueList();
    }
}
