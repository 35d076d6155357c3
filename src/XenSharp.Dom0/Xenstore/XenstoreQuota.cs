namespace XenSharp.Dom0.Xenstore;

/// <summary>
/// Per-domain limits, with C xenstored's defaults and names (GET_QUOTA/SET_QUOTA). 0 disables a limit.
/// A check fails when the new value reaches the limit (xenstored compares with &gt;=). Privileged domains are exempt.
/// </summary>
public sealed class XenstoreQuota
{
    public static readonly string[] Names = ["nodes", "watches", "outstanding", "transactions", "transaction-nodes", "node-permissions", "path-max", "node-size"];

    /// <summary>Nodes owned by the domain (ENOSPC).</summary>
    public int Nodes { get; set; } = 1000;
    /// <summary>Watches registered (ENOSPC).</summary>
    public int Watches { get; set; } = 128;
    /// <summary>Replies queued and not yet taken by the guest before we stop reading its requests.</summary>
    public int Outstanding { get; set; } = 20;
    /// <summary>Open transactions (ENOSPC).</summary>
    public int Transactions { get; set; } = 10;
    /// <summary>Distinct nodes one transaction may touch (ENOSPC).</summary>
    public int TransactionNodes { get; set; } = 1024;
    /// <summary>Entries in one permission list (SET_PERMS: ENOSPC).</summary>
    public int NodePermissions { get; set; } = 5;
    /// <summary>Path length below /local/domain/&lt;id&gt;/ (EINVAL).</summary>
    public int PathMax { get; set; } = XsWire.RelPathMax;
    /// <summary>Bytes of one node: header, permissions, value, child names (ENOSPC).</summary>
    public int NodeSize { get; set; } = 2048;

    public XenstoreQuota Clone() => (XenstoreQuota)MemberwiseClone();

    public int Get(string name) => name switch
    {
        "nodes" => Nodes,
        "watches" => Watches,
        "outstanding" => Outstanding,
        "transactions" => Transactions,
        "transaction-nodes" => TransactionNodes,
        "node-permissions" => NodePermissions,
        "path-max" => PathMax,
        "node-size" => NodeSize,
        _ => throw new XenstoreException(XsErrno.EINVAL, $"unknown quota '{name}'"),
    };

    public void Set(string name, int value)
    {
        switch (name)
        {
            case "nodes": Nodes = value; break;
            case "watches": Watches = value; break;
            case "outstanding": Outstanding = value; break;
            case "transactions": Transactions = value; break;
            case "transaction-nodes": TransactionNodes = value; break;
            case "node-permissions": NodePermissions = value; break;
            case "path-max": PathMax = value; break;
            case "node-size": NodeSize = value; break;
            default: throw new XenstoreException(XsErrno.EINVAL, $"unknown quota '{name}'");
        }
    }

    internal static bool Exceeds(int quota, long value) => quota > 0 && value >= quota;
}

/// <summary>A domain xenstored knows of: introduced (with its ring connection), or only referred to by quotas/features.</summary>
public sealed class XenstoreDomain
{
    internal XenstoreDomain(uint domid, XenstoreQuota quota)
    {
        Domid = domid;
        Quota = quota;
    }

    public uint Domid { get; }
    public bool Introduced { get; internal set; }
    /// <summary>server_features as written to the ring page at introduction; SET_FEATURE may lower it before.</summary>
    public uint Features { get; internal set; } = XsWire.SupportedFeatures;
    public XenstoreQuota Quota { get; }
    public XenstoreConnection? Connection { get; internal set; }
    public XenstoreRing? Ring { get; internal set; }
    public uint EventChannel { get; internal set; }
    public ulong RingGfn { get; internal set; }
    internal int NodeCount;
}
