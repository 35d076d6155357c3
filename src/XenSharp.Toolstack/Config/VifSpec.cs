using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace XenSharp.Toolstack.Config;

public enum VifType { Vif, Ioemu }

/// <summary>
/// A vif rate limit, "RATE[@INTERVAL]" (xl-network-configuration(5)): RATE is N[GMK](B|b)/s
/// (decimal multipliers, b = bits), INTERVAL is N[s|ms|us] and defaults to 50ms.
/// The backend credits <see cref="BytesPerInterval"/> every <see cref="IntervalMicroseconds"/>.
/// </summary>
public sealed partial record VifRate(string Text, ulong BytesPerSecond, uint IntervalMicroseconds)
{
    public ulong BytesPerInterval => (ulong)((UInt128)BytesPerSecond * IntervalMicroseconds / 1_000_000);

    public override string ToString() => Text;

    [GeneratedRegex("^([0-9]+)([GMK]?)([Bb])/s$")]
    private static partial Regex RateRegex();

    [GeneratedRegex("^([0-9]+)(s|ms|us|m|u)?$")]
    private static partial Regex IntervalRegex();

    public static bool TryParse(string text, out VifRate? rate, out string error)
    {
        rate = null;
        var at = text.IndexOf('@');
        var ratePart = at < 0 ? text : text[..at];
        if (ratePart.Length == 0)
        {
            error = $"invalid rate '{text}': no rate given before '@'";
            return false;
        }
        var m = RateRegex().Match(ratePart);
        if (!m.Success)
        {
            error = $"invalid rate '{text}': expected e.g. 10Mb/s, 100MB/s or 1GB/s@20ms";
            return false;
        }
        if (!ulong.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n == 0 || n > uint.MaxValue)
        {
            error = $"invalid rate '{text}': the number must be between 1 and {uint.MaxValue}";
            return false;
        }
        n *= m.Groups[2].Value switch { "G" => 1_000_000_000UL, "M" => 1_000_000UL, "K" => 1_000UL, _ => 1UL };
        if (m.Groups[3].Value == "b") n /= 8;

        ulong interval = 50_000;
        if (at >= 0)
        {
            var im = IntervalRegex().Match(text[(at + 1)..]);
            if (!im.Success || !ulong.TryParse(im.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out interval) || interval == 0)
            {
                error = $"invalid replenishment interval in rate '{text}': expected e.g. @20ms, @500us or @1s";
                return false;
            }
            interval *= im.Groups[2].Value switch { "" or "s" => 1_000_000UL, "m" or "ms" => 1_000UL, _ => 1UL };
            if (interval > uint.MaxValue)
            {
                error = $"replenishment interval in rate '{text}' is too long";
                return false;
            }
        }
        rate = new VifRate(text, n, (uint)interval);
        error = "";
        return true;
    }
}

/// <summary>
/// One entry of <c>vif=[…]</c>: comma-separated <c>key=value</c> pairs (xl-network-configuration(5)).
/// Unset fields take the toolstack's defaults (random 00:16:3e MAC, bridge xenbr0, script vif-bridge).
/// </summary>
public sealed partial record VifSpec
{
    /// <summary>Canonical lower-case "aa:bb:cc:dd:ee:ff".</summary>
    public string? Mac { get; init; }
    public string? Bridge { get; init; }
    /// <summary>Space separated list of addresses as xl passes them to the hotplug script.</summary>
    public string? Ip { get; init; }
    public VifRate? Rate { get; init; }
    public string? Model { get; init; }
    public string? VifName { get; init; }
    public string? Script { get; init; }
    public VifType? Type { get; init; }
    public string? Backend { get; init; }
    public int? Mtu { get; init; }
    public int? DevId { get; init; }
    public string? GatewayDev { get; init; }
    public string? Vlan { get; init; }
    public bool? Trusted { get; init; }
    /// <summary>COLO and forwarddev parameters, kept verbatim in order.</summary>
    public ValueList<KeyValuePair<string, string>> Other { get; init; } = ValueList<KeyValuePair<string, string>>.Empty;

    public override string ToString()
    {
        var parts = new List<string>();
        void Add(string k, string? v) { if (v is not null) parts.Add(k + "=" + v); }
        Add("mac", Mac);
        Add("bridge", Bridge);
        Add("ip", Ip);
        Add("rate", Rate?.Text);
        Add("model", Model);
        Add("vifname", VifName);
        Add("script", Script);
        Add("type", Type?.ToString().ToLowerInvariant());
        Add("backend", Backend);
        Add("mtu", Mtu?.ToString(CultureInfo.InvariantCulture));
        Add("devid", DevId?.ToString(CultureInfo.InvariantCulture));
        Add("gatewaydev", GatewayDev);
        Add("vlan", Vlan);
        if (Trusted is { } t) parts.Add(t ? "trusted" : "untrusted");
        foreach (var kv in Other) Add(kv.Key, kv.Value);
        return string.Join(",", parts);
    }

    [GeneratedRegex("^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$")]
    private static partial Regex MacRegex();

    [GeneratedRegex("^colo_[a-z0-9_]+$")]
    private static partial Regex ColoKey();

    public static VifSpec Parse(string spec) =>
        TryParse(spec, out var v, out var errors, out _) ? v! : throw new FormatException(string.Join("; ", errors));

    /// <summary>Parses one vif spec; errors and warnings (deprecated/unsupported options) are returned.</summary>
    public static bool TryParse(string spec, out VifSpec? vif, out List<string> errors, out List<string> warnings)
    {
        errors = [];
        warnings = [];
        var v = new VifSpec();
        var other = new List<KeyValuePair<string, string>>();
        // xl splits with strtok(",") (empty items vanish) and strips leading spaces of each item.
        foreach (var raw in spec.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var token = raw.TrimStart(' ');
            if (token.Length == 0) continue;
            if (token is "trusted" or "untrusted")
            {
                v = v with { Trusted = token == "trusted" };
                continue;
            }
            var eq = token.IndexOf('=');
            if (eq < 0)
            {
                errors.Add($"'{token}' is not a key=value pair (expected e.g. mac=00:16:3e:xx:xx:xx,bridge=xenbr0)");
                continue;
            }
            var key = token[..eq];
            var value = token[(eq + 1)..];
            switch (key)
            {
                case "mac":
                    if (!MacRegex().IsMatch(value))
                        errors.Add($"invalid mac '{value}': expected six hex octets separated by ':', e.g. 00:16:3e:01:02:03");
                    else
                    {
                        var octets = value.Split(':').Select(o => Convert.ToByte(o, 16)).ToArray();
                        if ((octets[0] & 1) != 0)
                            errors.Add($"invalid mac '{value}': multicast address (low bit of the first octet set)");
                        else
                            v = v with { Mac = string.Join(":", octets.Select(o => o.ToString("x2", CultureInfo.InvariantCulture))) };
                    }
                    break;
                case "bridge": v = v with { Bridge = value }; break;
                case "ip":
                    foreach (var addr in value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        if (!IsIpOrPrefix(addr))
                            errors.Add($"invalid ip '{addr}': expected an IPv4/IPv6 address, optionally with /prefix");
                    v = v with { Ip = value };
                    break;
                case "rate":
                    if (VifRate.TryParse(value, out var rate, out var rerr)) v = v with { Rate = rate };
                    else errors.Add(rerr);
                    break;
                case "model": v = v with { Model = value }; break;
                case "vifname": v = v with { VifName = value }; break;
                case "script": v = v with { Script = value }; break;
                case "backend": v = v with { Backend = value }; break;
                case "gatewaydev": v = v with { GatewayDev = value }; break;
                case "netdev":
                    warnings.Add("vif parameter 'netdev' is deprecated; use gatewaydev");
                    v = v with { GatewayDev = value };
                    break;
                case "vlan": v = v with { Vlan = value }; break;
                case "type":
                    if (value == "vif") v = v with { Type = VifType.Vif };
                    else if (value == "ioemu") v = v with { Type = VifType.Ioemu };
                    else errors.Add($"invalid vif type '{value}' (expected vif or ioemu)");
                    break;
                case "mtu":
                    if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var mtu) && mtu is >= 68 and <= 65535)
                        v = v with { Mtu = mtu };
                    else errors.Add($"invalid mtu '{value}': expected an integer from 68 to 65535");
                    break;
                case "devid":
                    if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var devid))
                        v = v with { DevId = devid };
                    else errors.Add($"invalid devid '{value}': expected a non-negative integer");
                    break;
                case "accel":
                    warnings.Add("vif parameter 'accel' is not supported and is ignored");
                    break;
                default:
                    if (key == "forwarddev" || ColoKey().IsMatch(key)) other.Add(new(key, value));
                    else errors.Add($"unknown vif parameter '{key}' (known: mac, bridge, ip, rate, model, vifname, script, type, backend, mtu, devid, gatewaydev, vlan, trusted)");
                    break;
            }
        }
        vif = errors.Count == 0 ? v with { Other = other.ToValueList() } : null;
        return errors.Count == 0;
    }

    private static bool IsIpOrPrefix(string s)
    {
        var slash = s.IndexOf('/');
        var addrText = slash < 0 ? s : s[..slash];
        if (!IPAddress.TryParse(addrText, out var addr)) return false;
        // IPAddress.TryParse accepts "1" or "1.2"; require the dotted quad for IPv4.
        if (addr.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && addrText.Count(c => c == '.') != 3) return false;
        if (slash < 0) return true;
        var max = addr.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128;
        return int.TryParse(s.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var len) && len <= max;
    }
}
