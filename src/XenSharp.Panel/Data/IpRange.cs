using System.Net;
using System.Net.Sockets;

namespace XenSharp.Panel.Data;

/// <summary>IPv4 pool arithmetic: validating a CIDR and a range inside it, and walking the range.</summary>
public static class IpRange
{
    public static bool TryParseCidr(string cidr, out uint network, out int prefix)
    {
        network = 0; prefix = 0;
        var parts = cidr.Split('/');
        if (parts.Length != 2 || !TryV4(parts[0], out var n) || !int.TryParse(parts[1], out prefix) || prefix is < 8 or > 32) return false;
        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        network = n & mask;
        return network == n;
    }

    public static bool TryV4(string s, out uint value)
    {
        value = 0;
        if (!IPAddress.TryParse(s, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || s.Count(ch => ch == '.') != 3) return false;
        var b = ip.GetAddressBytes();
        value = (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
        return true;
    }

    public static string Format(uint v) => $"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}";

    /// <summary>An error message, or null when the range lies inside the CIDR and start ≤ end.</summary>
    public static string? Validate(string cidr, string start, string end)
    {
        if (!TryParseCidr(cidr, out var net, out var prefix)) return "cidr must be an IPv4 network like 192.0.2.0/24 (prefix 8-32, host bits zero)";
        if (!TryV4(start, out var s) || !TryV4(end, out var e)) return "range start and end must be IPv4 addresses";
        var mask = prefix == 32 ? uint.MaxValue : uint.MaxValue << (32 - prefix);
        if ((s & mask) != net || (e & mask) != net) return "the range must lie inside the CIDR";
        if (s > e) return "range start must not be after range end";
        if (e - s > 65535) return "a range may hold at most 65536 addresses";
        return null;
    }

    public static IEnumerable<string> Enumerate(string start, string end)
    {
        if (!TryV4(start, out var s) || !TryV4(end, out var e)) yield break;
        for (var v = (ulong)s; v <= e; v++) yield return Format((uint)v);
    }
}
