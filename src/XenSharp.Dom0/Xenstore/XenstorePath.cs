using System.Globalization;

namespace XenSharp.Dom0.Xenstore;

/// <summary>Path rules of xenstored's canonicalize(): allowed characters, relative paths, no "//" or trailing '/'.</summary>
public static class XenstorePath
{
    public static string DomainPath(uint domid) => $"/local/domain/{domid}";

    public static bool ValidChars(ReadOnlySpan<char> s)
    {
        foreach (char c in s)
        {
            bool ok = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-' or '/' or '_' or '@';
            if (!ok) return false;
        }
        return true;
    }

    /// <summary>
    /// Turns a client's path into an absolute one. <paramref name="pathMax"/> is the domain's "path-max" quota
    /// (0 = unlimited), charged like xenstored on the part after "/local/domain/&lt;id&gt;/".
    /// </summary>
    public static string Canonicalize(string path, uint domid, bool allowSpecial, int pathMax)
    {
        if (path.Length == 0 || !ValidChars(path) || (path[0] == '@' && !allowSpecial))
            throw new XenstoreException(XsErrno.EINVAL, $"invalid path '{path}'");
        string name = path[0] is '/' or '@' ? path : DomainPath(domid) + "/" + path;
        if ((name.EndsWith('/') && name != "/") || name.Contains("//", StringComparison.Ordinal))
            throw new XenstoreException(XsErrno.EINVAL, $"invalid path '{path}'");
        if (name.Length > XsWire.AbsPathMax)
            throw new XenstoreException(XsErrno.EINVAL, "path too long");
        if (pathMax > 0 && name.Length - LocalPrefixLength(name) >= pathMax)
            throw new XenstoreException(XsErrno.EINVAL, "path exceeds path-max quota");
        return name;
    }

    /// <summary>Length of a leading "/local/domain/&lt;id&gt;/" (0 when absent), which the path quota does not count.</summary>
    private static int LocalPrefixLength(string name)
    {
        const string p = "/local/domain/";
        if (!name.StartsWith(p, StringComparison.Ordinal)) return 0;
        int i = p.Length, start = i;
        while (i < name.Length && i - start < 5 && char.IsAsciiDigit(name[i])) i++;
        if (i == start || i >= name.Length || name[i] != '/') return 0;
        return i + 1;
    }

    public static string Parent(string name)
    {
        int slash = name.LastIndexOf('/');
        return slash <= 0 ? "/" : name[..slash];
    }

    public static string BaseName(string name) => name[(name.LastIndexOf('/') + 1)..];

    public static string Child(string parent, string child) => parent == "/" ? "/" + child : parent + "/" + child;

    /// <summary>xenstored's is_child(): equal, or below <paramref name="parent"/>, within <paramref name="depth"/> levels (-1 = any).</summary>
    public static bool IsChild(string child, string parent, int depth)
    {
        int len = parent.Length;
        int subLevels = len == 1 ? 1 : 0;
        if (!child.StartsWith(parent, StringComparison.Ordinal)) return false;
        if (child.Length > len && child[len] != '/' && len > 1) return false;
        if (depth < 0 || child.Length == len) return true;
        while (subLevels <= depth)
        {
            if (len == child.Length) return true;
            if (child[len] == '/') subLevels++;
            len++;
        }
        return false;
    }

    /// <summary>A domid as xenstored's parse_domid(): decimal, 0..65535, else EINVAL.</summary>
    public static uint ParseDomid(string s)
    {
        if (!uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out uint d) || d > 65535)
            throw new XenstoreException(XsErrno.EINVAL, $"bad domid '{s}'");
        return d;
    }
}
