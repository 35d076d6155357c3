using System.Globalization;
using System.Text;

namespace XenSharp.Toolstack.Config;

public enum DiskFormat { Raw, Qcow, Qcow2, Vhd, Qed, Empty }

public enum DiskAccess { ReadWrite, ReadOnly }

public enum DiskBackendType { Phy, Tap, Qdisk, Standalone }

public enum DiskSpecification { Xen, Virtio }

/// <summary>
/// One entry of <c>disk=[…]</c> (xl-disk-configuration(5)). Accepts both the positional form
/// <c>target,format,vdev,access</c> (with the legacy <c>phy:</c>/<c>file:</c>/<c>raw:</c>… prefixes and
/// <c>hdc:cdrom</c>) and the <c>key=value</c> form where <c>target=</c> must come last and takes the rest.
/// <see cref="VirtualDeviceNumber"/> is the xenstore device id from <see cref="Vdev"/>.
/// </summary>
public sealed record DiskSpec
{
    public required string Target { get; init; }
    public DiskFormat Format { get; init; } = DiskFormat.Raw;
    public required string Vdev { get; init; }
    public int VirtualDeviceNumber { get; init; }
    public DiskAccess Access { get; init; } = DiskAccess.ReadWrite;
    public bool IsCdrom { get; init; }
    /// <summary>Driver domain serving the disk (<c>backend=</c>).</summary>
    public string? Backend { get; init; }
    public DiskBackendType? BackendType { get; init; }
    public DiskSpecification? Specification { get; init; }
    /// <summary>Hotplug script; the legacy iscsi:/nbd:/enbd:/drbd: prefixes become <c>block-…</c>.</summary>
    public string? Script { get; init; }
    public bool? Discard { get; init; }
    public bool DirectIoSafe { get; init; }
    public bool? Trusted { get; init; }
    public bool? GrantUsage { get; init; }
    /// <summary>COLO and other rarely used <c>key=value</c> parameters, kept verbatim.</summary>
    public ValueList<KeyValuePair<string, string>> Other { get; init; } = ValueList<KeyValuePair<string, string>>.Empty;

    [System.Text.Json.Serialization.JsonIgnore] public bool ReadOnly => Access == DiskAccess.ReadOnly;

    private static readonly string[] OtherKeys = ["colo-host", "colo-port", "colo-export", "active-disk", "hidden-disk"];

    /// <summary>Canonical key=value spec; target last because it swallows the rest of the string.</summary>
    public override string ToString()
    {
        var parts = new List<string>
        {
            "format=" + FormatName(Format),
            "vdev=" + Vdev,
            "access=" + (ReadOnly ? "ro" : "rw"),
        };
        if (IsCdrom) parts.Add("devtype=cdrom");
        if (Backend is not null) parts.Add("backend=" + Backend);
        if (BackendType is { } bt) parts.Add("backendtype=" + bt.ToString().ToLowerInvariant());
        if (Specification is { } sp) parts.Add("specification=" + sp.ToString().ToLowerInvariant());
        if (Script is not null) parts.Add("script=" + Script);
        if (Discard is { } d) parts.Add(d ? "discard" : "no-discard");
        if (DirectIoSafe) parts.Add("direct-io-safe");
        if (Trusted is { } t) parts.Add(t ? "trusted" : "untrusted");
        if (GrantUsage is { } g) parts.Add("grant_usage=" + (g ? "1" : "0"));
        foreach (var kv in Other)
        {
            if (kv.Key == "colo") parts.Add(kv.Value == "1" ? "colo" : "no-colo");
            else parts.Add(kv.Key + "=" + kv.Value);
        }
        parts.Add("target=" + Target);
        return string.Join(", ", parts);
    }

    public static string FormatName(DiskFormat f) => f.ToString().ToLowerInvariant();

    public static DiskSpec Parse(string spec) =>
        TryParse(spec, out var d, out var errors) ? d! : throw new FormatException(string.Join("; ", errors));

    /// <summary>Parses one disk spec string; every problem found is returned in <paramref name="errors"/>.</summary>
    public static bool TryParse(string spec, out DiskSpec? disk, out List<string> errors)
    {
        var p = new Parser();
        p.Run(spec);
        errors = p.Errors;
        disk = null;
        if (errors.Count > 0) return false;

        var target = p.Target ?? "";
        var isCdrom = p.Cdrom ?? false;
        if (p.Vdev is null)
        {
            errors.Add("missing vdev: the guest device name is required, e.g. \"/img.raw,raw,xvda,rw\" or \"vdev=xvda, target=/img.raw\"");
            return false;
        }
        if (!VirtualDevice.TryGetNumber(p.Vdev, out var number, out var vdevError))
        {
            errors.Add(vdevError);
            return false;
        }
        // An empty target is an empty (cdrom) drive whatever format slot it came with.
        var format = target.Length == 0 ? DiskFormat.Empty : p.Format ?? DiskFormat.Raw;
        if (target.Length == 0 && !isCdrom)
        {
            errors.Add("empty target: only a cdrom may have no target (add devtype=cdrom)");
            return false;
        }
        if (format == DiskFormat.Empty && target.Length != 0)
        {
            errors.Add("format=empty needs an empty target");
            return false;
        }
        disk = new DiskSpec
        {
            Target = target,
            Format = format,
            Vdev = p.Vdev,
            VirtualDeviceNumber = number,
            Access = p.Access ?? DiskAccess.ReadWrite,
            IsCdrom = isCdrom,
            Backend = p.Backend,
            BackendType = p.BackendType,
            Specification = p.Specification,
            Script = p.Script,
            Discard = p.Discard,
            DirectIoSafe = p.DirectIoSafe,
            Trusted = p.Trusted,
            GrantUsage = p.GrantUsage,
            Other = p.Other.ToValueList(),
        };
        return true;
    }

    /// <summary>Mirrors the rule order of libxlu_disk_l.l, one comma-separated token at a time.</summary>
    private sealed class Parser
    {
        public readonly List<string> Errors = [];
        public string? Target, Vdev, Backend, Script;
        public DiskFormat? Format;
        public DiskAccess? Access;
        public bool? Cdrom, Discard, Trusted, GrantUsage;
        public bool DirectIoSafe;
        public DiskBackendType? BackendType;
        public DiskSpecification? Specification;
        public readonly List<KeyValuePair<string, string>> Other = [];
        private bool _hadPrefix, _accessSet;

        private static readonly (string Prefix, string? Format, string? Script)[] Prefixes =
        [
            ("raw:", "raw", null), ("qcow:", "qcow", null), ("qcow2:", "qcow2", null), ("vhd:", "vhd", null),
            ("iscsi:", null, "block-iscsi"), ("nbd:", null, "block-nbd"), ("enbd:", null, "block-enbd"), ("drbd:", null, "block-drbd"),
            ("tapdisk:", null, null), ("tap:", null, null), ("tap2:", null, null), ("aio:", null, null),
            ("ioemu:", null, null), ("file:", null, null), ("phy:", null, null),
        ];

        public void Run(string spec)
        {
            var s = spec.AsSpan();
            while (!s.IsEmpty && Errors.Count == 0)
            {
                var ws = 0;
                while (ws < s.Length && s[ws] is ' ' or '\t' or '\n') ws++;
                if (ws == s.Length) break; // trailing blanks
                s = s[ws..];

                if (s.StartsWith("target="))
                {
                    var t = s["target=".Length..];
                    if (t.EndsWith(",")) t = t[..^1];
                    Save("target", ref Target, t.ToString());
                    return;
                }

                if (TryPrefix(ref s)) continue;

                var comma = s.IndexOf(',');
                var token = (comma < 0 ? s : s[..comma]).ToString();
                s = comma < 0 ? [] : s[(comma + 1)..];
                var eq = token.IndexOf('=');
                if (eq < 0) Flag(token);
                else KeyValue(token[..eq], token[(eq + 1)..]);
            }
        }

        private bool TryPrefix(ref ReadOnlySpan<char> s)
        {
            foreach (var (prefix, format, script) in Prefixes)
            {
                if (!s.StartsWith(prefix)) continue;
                _hadPrefix = true;
                if (format is not null) SetFormat(format);
                if (script is not null) Save("script", ref Script, script);
                s = s[prefix.Length..];
                return true;
            }
            // "word:" followed by nothing or a non-alphanumeric is an unknown legacy prefix;
            // "hdc:cdrom" (alphanumeric after the colon) is not and falls through.
            var i = 0;
            if (i < s.Length && s[i] is >= 'a' and <= 'z')
            {
                while (i < s.Length && (s[i] is >= 'a' and <= 'z' || char.IsAsciiDigit(s[i]))) i++;
                if (i < s.Length && s[i] == ':' && (i + 1 == s.Length || !(s[i + 1] is >= 'a' and <= 'z' || char.IsAsciiDigit(s[i + 1]))))
                {
                    Errors.Add($"unknown disk prefix '{s[..(i + 1)].ToString()}' (known: phy:, file:, raw:, qcow:, qcow2:, vhd:, iscsi:, nbd:, drbd:, tap:, aio:)");
                    return true;
                }
            }
            return false;
        }

        private void Flag(string token)
        {
            switch (token)
            {
                case "cdrom": Cdrom = true; return;
                case "direct-io-safe": DirectIoSafe = true; return;
                case "discard": Discard = true; return;
                case "no-discard": Discard = false; return;
                case "trusted": Trusted = true; return;
                case "untrusted": Trusted = false; return;
                case "colo": Other.Add(new("colo", "1")); return;
                case "no-colo": Other.Add(new("colo", "0")); return;
            }
            Positional(token);
        }

        private void Positional(string token)
        {
            if (Target is null)
                Target = token;
            else if (!_hadPrefix && Format is null)
            {
                if (Target.Length == 0 && VdevAndDevtype(token)) Format = DiskFormat.Empty;
                else SetFormat(token);
            }
            else if (Vdev is null)
            {
                if (!VdevAndDevtype(token)) Vdev = token;
            }
            else if (!_accessSet)
            {
                _accessSet = true;
                SetAccess(token);
            }
            else
                Errors.Add($"too many positional parameters at '{token}': expected target,format,vdev,access");
        }

        private bool VdevAndDevtype(string token)
        {
            var colon = token.LastIndexOf(':');
            if (colon < 0) return false;
            Save("vdev", ref Vdev, token[..colon]);
            switch (token[(colon + 1)..])
            {
                case "cdrom": Cdrom = true; break;
                case "disk": Cdrom = false; break;
                default: Errors.Add($"unknown device type '{token[(colon + 1)..]}' after vdev (expected cdrom or disk)"); break;
            }
            return true;
        }

        private void KeyValue(string key, string value)
        {
            switch (key)
            {
                case "format": SetFormat(value); break;
                case "access": SetAccess(value); break;
                case "vdev": Save("vdev", ref Vdev, value); break;
                case "backend": Save("backend", ref Backend, value); break;
                case "script": Save("script", ref Script, value); break;
                case "devtype":
                    if (value == "cdrom") Cdrom = true;
                    else if (value == "disk") Cdrom = false;
                    else Errors.Add($"unknown devtype '{value}' (expected cdrom or disk)");
                    break;
                case "backendtype":
                    DiskBackendType? bt = value switch
                    {
                        "phy" => DiskBackendType.Phy,
                        "tap" => DiskBackendType.Tap,
                        "qdisk" => DiskBackendType.Qdisk,
                        "standalone" => DiskBackendType.Standalone,
                        _ => null,
                    };
                    if (bt is null) Errors.Add($"unknown backendtype '{value}' (expected phy, tap, qdisk or standalone)");
                    else BackendType = bt;
                    break;
                case "specification":
                    if (value is "xen" or "virtio") Specification = value == "xen" ? DiskSpecification.Xen : DiskSpecification.Virtio;
                    else Errors.Add($"unknown specification '{value}' (expected xen or virtio)");
                    break;
                case "grant_usage":
                    if (value is "0" or "1") GrantUsage = value == "1";
                    else Errors.Add($"grant_usage must be 0 or 1, not '{value}'");
                    break;
                case "colo-port":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port == 0)
                        Errors.Add($"colo-port must be a port number, not '{value}'");
                    else Other.Add(new(key, value));
                    break;
                default:
                    if (OtherKeys.Contains(key)) Other.Add(new(key, value));
                    else Errors.Add($"unknown disk parameter '{key}' (known: target, format, vdev, access, devtype, backend, backendtype, script, specification, discard, direct-io-safe…)");
                    break;
            }
        }

        private void SetFormat(string value)
        {
            DiskFormat? f = value switch
            {
                "" or "raw" => DiskFormat.Raw,
                "qcow" => DiskFormat.Qcow,
                "qcow2" => DiskFormat.Qcow2,
                "vhd" => DiskFormat.Vhd,
                "qed" => DiskFormat.Qed,
                "empty" => DiskFormat.Empty,
                _ => null,
            };
            if (f is null)
            {
                var hint = VirtualDevice.TryGetNumber(value, out _, out _)
                    ? $" ('{value}' looks like a vdev: the positional order is target,format,vdev,access)"
                    : "";
                Errors.Add($"unknown disk format '{value}' (expected raw, qcow, qcow2, vhd, qed or empty){hint}");
            }
            else if (Format is not null && Format != f)
                Errors.Add($"format respecified as '{value}'");
            else
                Format = f;
        }

        private void SetAccess(string value)
        {
            DiskAccess? a = value switch
            {
                "r" or "ro" => DiskAccess.ReadOnly,
                "w" or "rw" or "" => DiskAccess.ReadWrite,
                _ => null,
            };
            if (a is null) Errors.Add($"unknown access mode '{value}' (expected r, ro, w or rw)");
            else Access = a;
        }

        private void Save(string what, ref string? field, string value)
        {
            // libxlu tolerates overwriting an empty value but not a real one.
            if (!string.IsNullOrEmpty(field) && field != value) Errors.Add($"{what} respecified as '{value}' (was '{field}')");
            else field = value;
        }
    }
}

/// <summary>
/// Guest disk names to Xen virtual device numbers, per xen-vbd-interface(7):
/// xvdX (major 202, or the extended 1&lt;&lt;28 encoding past 16 disks/15 partitions),
/// hdX (majors 3/22, hda–hdd), sdX (major 8, sda–sdp), and the dNpM form.
/// Drive letters count bijectively in base 26: xvda=0 … xvdz=25, xvdaa=26.
/// </summary>
public static class VirtualDevice
{
    public static int GetNumber(string vdev) =>
        TryGetNumber(vdev, out var n, out var error) ? n : throw new FormatException(error);

    public static bool TryGetNumber(string vdev, out int number, out string error)
    {
        number = -1;
        error = "";
        if (TryDp(vdev, out var disk, out var part) || TryMatch(vdev, "xvd", (1 << 20) - 1, 255, out disk, out part))
        {
            number = disk <= 15 && part <= 15
                ? (202 << 8) | (disk << 4) | part
                : (1 << 28) | (disk << 8) | part;
            return true;
        }
        if (TryMatch(vdev, "hd", 3, 63, out disk, out part))
        {
            number = ((disk < 2 ? 3 : 22) << 8) | ((disk & 1) << 6) | part;
            return true;
        }
        if (TryMatch(vdev, "sd", 15, 15, out disk, out part))
        {
            number = (8 << 8) | (disk << 4) | part;
            return true;
        }
        error = $"invalid vdev '{vdev}': expected xvd<letters>[partition 1-255], hd[a-d][1-63], sd[a-p][1-15] or d<N>p<M>";
        return false;
    }

    private static bool TryMatch(string vdev, string prefix, int maxDisk, int maxPart, out int disk, out int part)
    {
        disk = -1;
        part = 0;
        if (!vdev.StartsWith(prefix, StringComparison.Ordinal)) return false;
        var i = prefix.Length;
        while (i < vdev.Length && vdev[i] is >= 'a' and <= 'z')
        {
            disk = (disk + 1) * 26 + (vdev[i] - 'a');
            if (disk > maxDisk) return false;
            i++;
        }
        if (disk < 0) return false; // no drive letter at all
        if (i == vdev.Length) return true;
        if (vdev[i] == '0') return false; // no leading zeros in partition numbers
        for (var j = i; j < vdev.Length; j++)
            if (!char.IsAsciiDigit(vdev[j])) return false;
        return int.TryParse(vdev.AsSpan(i), NumberStyles.None, CultureInfo.InvariantCulture, out part) && part <= maxPart;
    }

    private static bool TryDp(string vdev, out int disk, out int part)
    {
        disk = part = 0;
        if (vdev.Length < 4 || vdev[0] != 'd') return false;
        var p = vdev.IndexOf('p');
        return p > 1
            && int.TryParse(vdev.AsSpan(1, p - 1), NumberStyles.None, CultureInfo.InvariantCulture, out disk)
            && int.TryParse(vdev.AsSpan(p + 1), NumberStyles.None, CultureInfo.InvariantCulture, out part)
            && disk < (1 << 20) && part < 256;
    }

    /// <summary>Inverse for xvd names (used in messages and listings).</summary>
    public static string XvdName(int disk)
    {
        var sb = new StringBuilder();
        for (var d = disk + 1; d > 0; d = (d - 1) / 26) sb.Insert(0, (char)('a' + (d - 1) % 26));
        return "xvd" + sb;
    }
}
