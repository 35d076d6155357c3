namespace XenSharp.Dom0.Xenstore;

/// <summary>Where operations read and write nodes: the committed store, or a transaction's private overlay.</summary>
internal interface INodeView
{
    XenstoreNode? Get(string name);
    void Put(string name, XenstoreNode node);
    void Delete(string name);
}

/// <summary>
/// A transaction as xenstored does it: the first access to a node records the node's generation (or its absence);
/// writes go to a private overlay. At commit, any accessed node whose generation moved means EAGAIN; otherwise
/// the overlay is applied and the queued watch events fire.
/// </summary>
internal sealed class XenstoreTransaction(XenstoreStore store, XenstoreConnection conn, uint id) : INodeView
{
    private const ulong NoGeneration = ulong.MaxValue;

    private readonly Dictionary<string, ulong> _accessed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, XenstoreNode?> _overlay = new(StringComparer.Ordinal);
    private readonly List<string> _writeOrder = [];

    public uint Id { get; } = id;
    public XenstoreConnection Connection { get; } = conn;
    /// <summary>Watch events to fire once committed: (path, subtree-match, permissions seen when it happened).</summary>
    public readonly List<PendingEvent> Events = [];
    /// <summary>Nodes created minus nodes deleted, for the connection's node quota while uncommitted.</summary>
    public int NodeDelta;

    internal readonly record struct PendingEvent(string Name, bool Subtree, XsPermission[]? Perms, XsPermission[]? OldPerms);

    private void Touch(string name)
    {
        if (_accessed.ContainsKey(name)) return;
        // Bounds what a guest's transaction makes us remember (xenstored's "transaction-nodes").
        if (!Connection.Privileged && XenstoreQuota.Exceeds(store.Domain(Connection.Domid).Quota.TransactionNodes, _accessed.Count + 1))
            throw new XenstoreException(XsErrno.ENOSPC, "transaction-nodes quota");
        _accessed[name] = store.Committed.Get(name)?.Generation ?? NoGeneration;
    }

    public XenstoreNode? Get(string name)
    {
        if (_overlay.TryGetValue(name, out var n)) return n;
        Touch(name);
        return store.Committed.Get(name);
    }

    public void Put(string name, XenstoreNode node)
    {
        Touch(name);
        node.Generation = store.NextGeneration();
        if (!_overlay.ContainsKey(name)) _writeOrder.Add(name);
        _overlay[name] = node;
    }

    public void Delete(string name)
    {
        Touch(name);
        if (!_overlay.ContainsKey(name)) _writeOrder.Add(name);
        _overlay[name] = null;
    }

    /// <summary>Under the store lock: EAGAIN when anything this transaction touched changed since; else applies it.</summary>
    public void Commit()
    {
        foreach (var (name, gen) in _accessed)
        {
            ulong now = store.Committed.Get(name)?.Generation ?? NoGeneration;
            if (now != gen) throw new XenstoreException(XsErrno.EAGAIN);
        }
        foreach (var name in _writeOrder)
        {
            var n = _overlay[name];
            if (n is null) store.Committed.Delete(name);
            else store.Committed.Put(name, n.Clone());
        }
    }
}
