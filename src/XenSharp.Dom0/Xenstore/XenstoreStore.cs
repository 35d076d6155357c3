using System.Globalization;
using System.Text;

namespace XenSharp.Dom0.Xenstore;

/// <summary>
/// The xenstore database and the request semantics of C xenstored (tools/xenstored): nodes, permissions, watches,
/// transactions, domains and quotas. One lock serialises every request, as the single-threaded xenstored does.
/// </summary>
public sealed partial class XenstoreStore
{
    internal readonly object Sync = new();
    private readonly CommittedView _committed;
    private ulong _generation;
    private readonly List<XenstoreConnection> _connections = [];
    private readonly Dictionary<uint, XenstoreDomain> _domains = [];

    public const string IntroduceDomainPath = "@introduceDomain";
    public const string ReleaseDomainPath = "@releaseDomain";

    public XenstoreStore(XenstoreQuota? defaultQuota = null)
    {
        DefaultQuota = defaultQuota ?? new XenstoreQuota();
        _committed = new CommittedView(this);
        // As setup_structure(): "/" and the special watch nodes exist, owned by dom0 with no access for others.
        foreach (var n in new[] { "/", IntroduceDomainPath, ReleaseDomainPath })
            _committed.Put(n, new XenstoreNode { Perms = [new XsPermission(0, XsAccess.None)] });
        _domains[0] = new XenstoreDomain(0, DefaultQuota) { Introduced = true };
        foreach (var n in new[] { "/local/domain", "/tool/xenstored" })
            CreateNode(null, _committed, n, []);
    }

    /// <summary>Quotas new domains start with (SET_QUOTA without a domid changes them).</summary>
    public XenstoreQuota DefaultQuota { get; }

    /// <summary>Diagnostics sink (CONTROL print, broken connections).</summary>
    public Action<string>? Log { get; set; }

    /// <summary>
    /// Resolves a wire INTRODUCE (domid, gfn, evtchn) to the domain's ring page and store event channel. Null, or
    /// returning null, means the domain is recorded as introduced without a ring (the toolstack then calls
    /// <see cref="IntroduceDomain"/> itself).
    /// </summary>
    public Func<uint, ulong, uint, XenstoreRing?>? RingResolver { get; set; }

    internal INodeView Committed => _committed;
    internal ulong NextGeneration() => ++_generation;

    // ---- connections and domains ----

    /// <summary>A client that is not a guest ring: the unix socket or in-process dom0 code. Privileged when <paramref name="domid"/> is 0.</summary>
    public XenstoreConnection Connect(uint domid = 0, string? description = null)
    {
        lock (Sync)
        {
            var c = new XenstoreConnection(this, domid, domid == 0, description ?? $"local dom{domid}");
            _connections.Add(c);
            return c;
        }
    }

    /// <summary>
    /// What the toolstack does after building a domain (libxl's xs_introduce_domain): attaches the guest's store ring
    /// and fires @introduceDomain. <paramref name="ring"/> is driven by <see cref="XenstoreRing.GuestNotified"/>.
    /// </summary>
    public XenstoreConnection IntroduceDomain(uint domid, XenstoreRing ring, uint eventChannel = 0, ulong gfn = 0)
    {
        XenstoreConnection conn;
        lock (Sync)
        {
            if (domid == 0 || domid >= XsWire.DomidSelf) throw new XenstoreException(XsErrno.EINVAL, $"cannot introduce domain {domid}");
            var d = Domain(domid);
            if (d.Introduced) throw new XenstoreException(XsErrno.EEXIST, $"domain {domid} already introduced");
            conn = new XenstoreConnection(this, domid, false, $"dom{domid} ring");
            _connections.Add(conn);
            d.Introduced = true;
            d.Connection = conn;
            d.Ring = ring;
            d.EventChannel = eventChannel;
            d.RingGfn = gfn;
            ring.Attach(conn, d.Features);
            FireSpecial(IntroduceDomainPath, domid);
        }
        // Requests the guest queued before we attached. Under the store lock (a wire INTRODUCE) the ring's own
        // lock must not be taken after ours, so the first kick goes to the thread pool.
        if (Monitor.IsEntered(Sync)) ThreadPool.UnsafeQueueUserWorkItem(_ => ring.GuestNotified(), null);
        else ring.GuestNotified();
        return conn;
    }

    /// <summary>Disconnects a domain (RELEASE, or the domain died): drops its watches and transactions, removes the nodes it owns, fires @releaseDomain.</summary>
    public void ReleaseDomain(uint domid)
    {
        lock (Sync)
        {
            if (domid == 0) throw new XenstoreException(XsErrno.EINVAL);
            if (!_domains.TryGetValue(domid, out var d) || !d.Introduced) throw new XenstoreException(XsErrno.ENOENT);
            if (d.Connection is { } c)
            {
                c.Watches.Clear();
                CloseConnectionLocked(c);
            }
            d.Ring?.Detach();
            RemoveDomainFromTree(domid);
            _domains.Remove(domid);
            FireSpecial(ReleaseDomainPath, domid);
        }
    }

    public bool IsDomainIntroduced(uint domid)
    {
        lock (Sync) return domid == 0 || (_domains.TryGetValue(domid, out var d) && d.Introduced);
    }

    public XenstoreDomain? FindDomain(uint domid)
    {
        lock (Sync) return _domains.GetValueOrDefault(domid);
    }

    internal XenstoreDomain Domain(uint domid)
    {
        if (!_domains.TryGetValue(domid, out var d))
            _domains[domid] = d = new XenstoreDomain(domid, DefaultQuota.Clone());
        return d;
    }

    internal void CloseConnection(XenstoreConnection c)
    {
        lock (Sync) CloseConnectionLocked(c);
    }

    private void CloseConnectionLocked(XenstoreConnection c)
    {
        c.IsClosed = true;
        c.Watches.Clear();
        c.Transactions.Clear();
        _connections.Remove(c);
        if (_domains.TryGetValue(c.Domid, out var d) && d.Connection == c) d.Connection = null;
    }

    /// <summary>Nodes owned by the departing domain go (with their subtrees); its entries vanish from other nodes' lists.</summary>
    private void RemoveDomainFromTree(uint domid)
    {
        var owned = new List<string>();
        var changed = new List<(string, XenstoreNode)>();
        void Walk(string name)
        {
            var n = _committed.Get(name);
            if (n is null) return;
            if (n.Owner == domid && name != "/") { owned.Add(name); return; }
            if (n.Perms.Skip(1).Any(p => p.Domid == domid))
            {
                var c = n.Clone();
                c.Perms = [c.Perms[0], .. c.Perms.Skip(1).Where(p => p.Domid != domid)];
                changed.Add((name, c));
            }
            foreach (var child in n.Children) Walk(XenstorePath.Child(name, child));
        }
        Walk("/");
        Walk(IntroduceDomainPath);
        Walk(ReleaseDomainPath);
        foreach (var (name, n) in changed) _committed.Put(name, n);
        foreach (var name in owned)
            if (_committed.Get(name) is not null) RemoveSubtree(null, null, _committed, name);
    }

    // ---- permissions ----

    /// <summary>perm_for_conn(): owner (or its target, or DOMID_ANY) and privileged get everything, else the first matching entry, else the default.</summary>
    internal static XsAccess PermFor(XenstoreConnection? conn, XsPermission[] perms)
    {
        const XsAccess all = XsAccess.Both | XsAccess.Owner;
        if (conn is null || conn.Privileged || Matches(conn, perms[0])) return all;
        for (int i = 1; i < perms.Length; i++)
            if (Matches(conn, perms[i])) return perms[i].Access & XsAccess.Both;
        return perms[0].Access & XsAccess.Both;
    }

    private static bool Matches(XenstoreConnection conn, XsPermission p) =>
        p.Domid == conn.Domid || (conn.Target is uint t && p.Domid == t) || p.Domid == XsWire.DomidAny;

    /// <summary>get_node_chk_perm(): the node if accessible; else ENOENT/EACCES, with ENOENT only told to those who may see the parent.</summary>
    private XenstoreNode GetChecked(XenstoreConnection? conn, INodeView view, string name, XsAccess perm)
    {
        var node = view.Get(name);
        if (node is not null && (PermFor(conn, node.Perms) & perm) == perm) return node;
        var err = node is null ? XsErrno.ENOENT : XsErrno.EACCES;
        throw new XenstoreException(ErrnoFromParents(conn, view, name, err, perm));
    }

    private static XsErrno ErrnoFromParents(XenstoreConnection? conn, INodeView view, string name, XsErrno err, XsAccess perm)
    {
        XenstoreNode? parent = null;
        string p = name;
        while (parent is null && p != "/")
        {
            p = XenstorePath.Parent(p);
            parent = view.Get(p);
        }
        if (parent is null) return XsErrno.EACCES;
        return (PermFor(conn, parent.Perms) & perm) != 0 ? err : XsErrno.EACCES;
    }

    private int PathMaxFor(XenstoreConnection conn) => conn.Privileged ? 0 : Domain(conn.Domid).Quota.PathMax;

    internal string Canonicalize(XenstoreConnection conn, string path, bool allowSpecial) =>
        XenstorePath.Canonicalize(path, conn.Domid, allowSpecial, PathMaxFor(conn));

    // ---- node operations (callers hold Sync) ----

    private void CheckNodeSize(XenstoreConnection? conn, XenstoreNode node)
    {
        if (conn is { Privileged: false } && XenstoreQuota.Exceeds(Domain(conn.Domid).Quota.NodeSize, node.AccountedSize))
            throw new XenstoreException(XsErrno.ENOSPC, "node-size quota");
    }

    /// <summary>construct_node()+create_node(): missing ancestors too; new nodes inherit the parent's list, owned by an unprivileged creator.</summary>
    private XenstoreNode CreateNode(XenstoreConnection? conn, INodeView view, string name, byte[] value, XenstoreTransaction? tx = null)
    {
        var missing = new List<string>();
        string p = name;
        XenstoreNode? parent;
        while (true)
        {
            missing.Add(p);
            p = XenstorePath.Parent(p);
            parent = view.Get(p);
            if (parent is not null) break;
            if (p == "/") throw new XenstoreException(XsErrno.EIO, "no root node");
        }
        if (conn is { Privileged: false })
        {
            var d = Domain(conn.Domid);
            if (XenstoreQuota.Exceeds(d.Quota.Nodes, d.NodeCount + (tx?.NodeDelta ?? 0) + missing.Count))
                throw new XenstoreException(XsErrno.ENOSPC, "nodes quota");
        }
        string parentName = p;
        XenstoreNode node = parent;
        for (int i = missing.Count - 1; i >= 0; i--)
        {
            var pc = view.Get(parentName)!.Clone();
            pc.Children.Add(XenstorePath.BaseName(missing[i]));
            CheckNodeSize(conn, pc);
            view.Put(parentName, pc);
            var perms = (XsPermission[])pc.Perms.Clone();
            if (conn is { Privileged: false }) perms[0] = perms[0] with { Domid = conn.Domid };
            node = new XenstoreNode { Perms = perms, Value = i == 0 ? value : [] };
            CheckNodeSize(conn, node);
            view.Put(missing[i], node);
            if (tx is not null) tx.NodeDelta++;
            parentName = missing[i];
        }
        return node;
    }

    /// <summary>rm_node(): watches on each removed node fire exactly, the removed root fires for watches at or above it.</summary>
    private void RemoveSubtree(XenstoreConnection? conn, XenstoreTransaction? tx, INodeView view, string name)
    {
        var order = new List<(string Name, XenstoreNode Node)>();
        void Collect(string n)
        {
            var node = view.Get(n);
            if (node is null) return;
            foreach (var c in node.Children) Collect(XenstorePath.Child(n, c));
            order.Add((n, node));
        }
        Collect(name);
        foreach (var (n, node) in order)
        {
            Fire(conn, tx, n, n == name, node.Perms, null);
            view.Delete(n);
            if (tx is not null) tx.NodeDelta--;
        }
        string parentName = XenstorePath.Parent(name);
        if (view.Get(parentName) is { } parent)
        {
            var pc = parent.Clone();
            pc.Children.Remove(XenstorePath.BaseName(name));
            view.Put(parentName, pc);
        }
    }

    // ---- watches ----

    /// <summary>fire_watches(): in a transaction the event waits for commit; else every permitted matching watch gets it.</summary>
    private void Fire(XenstoreConnection? conn, XenstoreTransaction? tx, string name, bool subtree, XsPermission[]? perms, XsPermission[]? oldPerms)
    {
        if (tx is not null)
        {
            tx.Events.Add(new(name, subtree, perms, oldPerms));
            return;
        }
        foreach (var c in _connections)
        {
            if (c.Watches.Count == 0 || !WatchPermitted(c, name, perms, oldPerms)) continue;
            foreach (var w in c.Watches)
            {
                bool send = subtree ? XenstorePath.IsChild(name, w.Node, w.Depth) : name == w.Node;
                if (send) c.EnqueueWatchEvent(name[Math.Min(w.PrefixLength, name.Length)..], w.Token);
            }
        }
    }

    /// <summary>watch_permitted(): the watcher may read the node (before or after a permission change) or its parent.</summary>
    private bool WatchPermitted(XenstoreConnection c, string name, XsPermission[]? perms, XsPermission[]? oldPerms)
    {
        if (c.Privileged) return true;
        if (oldPerms is not null && (PermFor(c, oldPerms) & XsAccess.Read) != 0) return true;
        perms ??= _committed.Get(name)?.Perms;
        if (perms is null) return false;
        if ((PermFor(c, perms) & XsAccess.Read) != 0) return true;
        var parent = _committed.Get(XenstorePath.Parent(name));
        return parent is not null && (PermFor(c, parent.Perms) & XsAccess.Read) != 0;
    }

    /// <summary>fire_special_watches(): "@x" to watches without depth, "@x/&lt;domid&gt;" to depth watches and to watches on that exact path.</summary>
    private void FireSpecial(string special, uint domid)
    {
        var node = _committed.Get(special);
        if (node is null) return;
        string withDom = $"{special}/{domid}";
        foreach (var c in _connections)
        {
            if (!c.Privileged && (PermFor(c, node.Perms) & XsAccess.Read) == 0) continue;
            foreach (var w in c.Watches)
            {
                if (w.Node == special && w.Depth < 0) c.EnqueueWatchEvent(special, w.Token);
                else if (w.Node == withDom || (w.Node == special && w.Depth > 0)) c.EnqueueWatchEvent(withDom, w.Token);
            }
        }
    }

    private sealed class CommittedView(XenstoreStore store) : INodeView
    {
        private readonly Dictionary<string, XenstoreNode> _nodes = new(StringComparer.Ordinal);

        public XenstoreNode? Get(string name) => _nodes.GetValueOrDefault(name);

        public void Put(string name, XenstoreNode node)
        {
            node.Generation = store.NextGeneration();
            if (_nodes.TryGetValue(name, out var old))
            {
                if (old.Owner != node.Owner)
                {
                    Account(old.Owner, -1);
                    Account(node.Owner, +1);
                }
            }
            else Account(node.Owner, +1);
            _nodes[name] = node;
        }

        public void Delete(string name)
        {
            if (_nodes.Remove(name, out var old)) Account(old.Owner, -1);
        }

        private void Account(uint owner, int delta)
        {
            if (owner == 0) return;
            store.Domain(owner).NodeCount += delta;
        }

        public int Count => _nodes.Count;
    }

    /// <summary>Number of nodes in the committed store (including "/" and the two special nodes).</summary>
    public int NodeCount
    {
        get { lock (Sync) return _committed.Count; }
    }
}
