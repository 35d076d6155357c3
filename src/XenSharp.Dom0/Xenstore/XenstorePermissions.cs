using System.Globalization;

namespace XenSharp.Dom0.Xenstore;

/// <summary>Access bits of one permission entry: 'n', 'r', 'w' or 'b' on the wire.</summary>
[Flags]
public enum XsAccess
{
    None = 0,
    Read = 1,
    Write = 2,
    Both = Read | Write,
    /// <summary>Only ever computed for a connection, never stored: the connection owns the node.</summary>
    Owner = 4,
}

/// <summary>One entry of a node's permission list. The first entry names the owner and the default access for everyone else.</summary>
public readonly record struct XsPermission(uint Domid, XsAccess Access)
{
    public override string ToString() => $"{AccessChar(Access)}{Domid}";

    private static char AccessChar(XsAccess a) => (a & XsAccess.Both) switch
    {
        XsAccess.Read => 'r',
        XsAccess.Write => 'w',
        XsAccess.Both => 'b',
        _ => 'n',
    };

    /// <summary>Parses "r5", "b0", ... as xenstore_strings_to_perms does; anything else is EINVAL.</summary>
    public static XsPermission Parse(string s)
    {
        if (s.Length < 2) throw new XenstoreException(XsErrno.EINVAL, $"bad permission '{s}'");
        XsAccess a = s[0] switch
        {
            'n' => XsAccess.None,
            'r' => XsAccess.Read,
            'w' => XsAccess.Write,
            'b' => XsAccess.Both,
            _ => throw new XenstoreException(XsErrno.EINVAL, $"bad permission '{s}'"),
        };
        if (!uint.TryParse(s.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out uint domid) || domid > 0xffff)
            throw new XenstoreException(XsErrno.EINVAL, $"bad permission domid '{s}'");
        return new XsPermission(domid, a);
    }

    public static XsPermission[] ParseList(IEnumerable<string> entries)
    {
        var list = entries.Select(Parse).ToArray();
        if (list.Length == 0) throw new XenstoreException(XsErrno.EINVAL, "empty permission list");
        return list;
    }
}

/// <summary>A node as stored: copy-on-write, so a transaction can hold the committed version while building its own.</summary>
internal sealed class XenstoreNode
{
    public byte[] Value = [];
    public XsPermission[] Perms = [new XsPermission(0, XsAccess.None)];
    /// <summary>Child names in creation order, as xenstored keeps them (DIRECTORY_PART offsets depend on it).</summary>
    public List<string> Children = [];
    public ulong Generation;

    public uint Owner => Perms[0].Domid;

    public XenstoreNode Clone() => new()
    {
        Value = Value,
        Perms = Perms,
        Children = [.. Children],
        Generation = Generation,
    };

    /// <summary>Bytes charged against the "node-size" quota: header, permissions, value and child list as xenstored lays a node out.</summary>
    public int AccountedSize
    {
        get
        {
            int childLen = 0;
            foreach (var c in Children) childLen += c.Length + 1;
            return 16 + 8 * Perms.Length + Value.Length + childLen;
        }
    }
}
