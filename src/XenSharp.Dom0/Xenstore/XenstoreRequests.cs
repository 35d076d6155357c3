using System.Globalization;
using System.Text;

namespace XenSharp.Dom0.Xenstore;

public sealed partial class XenstoreStore
{
    /// <summary>A request's payload split as xenstored's get_strings(): NUL-terminated strings; an unterminated tail is not one.</summary>
    private static List<string> Strings(ReadOnlySpan<byte> payload, int max = int.MaxValue)
    {
        var list = new List<string>();
        while (list.Count < max)
        {
            int z = payload.IndexOf((byte)0);
            if (z < 0) break;
            list.Add(Encoding.UTF8.GetString(payload[..z]));
            payload = payload[(z + 1)..];
        }
        return list;
    }

    /// <summary>onearg(): exactly one string, its NUL the last byte.</summary>
    private static string OneArg(ReadOnlySpan<byte> payload)
    {
        if (payload.IsEmpty || payload.IndexOf((byte)0) != payload.Length - 1)
            throw new XenstoreException(XsErrno.EINVAL, "expected one NUL-terminated argument");
        return Encoding.UTF8.GetString(payload[..^1]);
    }

    private static byte[] Ok => "OK\0"u8.ToArray();

    private static bool IsPrivilegedOnly(XsMessageType t) => t is XsMessageType.Control or XsMessageType.Introduce
        or XsMessageType.Release or XsMessageType.IsDomainIntroduced or XsMessageType.Resume or XsMessageType.SetTarget
        or XsMessageType.SetFeature or XsMessageType.GetQuota or XsMessageType.SetQuota;

    /// <summary>process_message(): one complete request from <paramref name="conn"/>; the reply (and any watch events) are queued on the connections.</summary>
    internal void Process(XenstoreConnection conn, XsHeader h, byte[] payload)
    {
        byte[] reply;
        lock (Sync)
        {
            if (conn.IsClosed) return;
            var followUps = new List<(string, string)>();
            XsMessageType replyType = h.Type;
            try
            {
                reply = Dispatch(conn, h, payload, followUps);
                if (reply.Length > XsWire.PayloadMax) throw new XenstoreException(XsErrno.E2BIG);
            }
            catch (XenstoreException e)
            {
                replyType = XsMessageType.Error;
                reply = Encoding.ASCII.GetBytes(e.Error + "\0");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log?.Invoke($"xenstore: {h.Type} from {conn} failed: {e}");
                replyType = XsMessageType.Error;
                reply = "EIO\0"u8.ToArray();
            }
            conn.Enqueue(XsWire.Build(replyType, h.ReqId, h.TxId, reply));
            // The initial watch event goes after the WATCH ack, as xenstored sends it.
            foreach (var (path, token) in followUps) conn.EnqueueWatchEvent(path, token);
        }
    }

    private byte[] Dispatch(XenstoreConnection conn, XsHeader h, byte[] payload, List<(string, string)> followUps)
    {
        if (!Enum.IsDefined(h.Type) || h.Type is XsMessageType.WatchEvent or XsMessageType.Error or XsMessageType.Invalid)
            throw new XenstoreException(XsErrno.ENOSYS);
        if (IsPrivilegedOnly(h.Type) && !conn.Privileged)
            throw new XenstoreException(XsErrno.EACCES);
        XenstoreTransaction? tx = null;
        if (h.Type is not (XsMessageType.Watch or XsMessageType.Unwatch) && h.TxId != 0)
            tx = conn.Transactions.GetValueOrDefault(h.TxId) ?? throw new XenstoreException(XsErrno.ENOENT, "no such transaction");
        INodeView view = tx ?? Committed;
        ReadOnlySpan<byte> p = payload;

        switch (h.Type)
        {
            case XsMessageType.Read:
                return GetChecked(conn, view, Canonicalize(conn, OneArg(p), false), XsAccess.Read).Value;

            case XsMessageType.Directory:
                return JoinNul(GetChecked(conn, view, Canonicalize(conn, OneArg(p), false), XsAccess.Read).Children);

            case XsMessageType.DirectoryPart:
                return DirectoryPart(conn, view, p);

            case XsMessageType.Write:
            {
                int z = p.IndexOf((byte)0);
                if (z < 0) throw new XenstoreException(XsErrno.EINVAL);
                string name = Canonicalize(conn, Encoding.UTF8.GetString(p[..z]), false);
                byte[] value = p[(z + 1)..].ToArray();
                XenstoreNode node;
                if (TryGetForWrite(conn, view, name) is { } existing)
                {
                    node = existing.Clone();
                    node.Value = value;
                    CheckNodeSize(conn, node);
                    view.Put(name, node);
                }
                else node = CreateNode(conn, view, name, value, tx);
                Fire(conn, tx, name, true, node.Perms, null);
                return Ok;
            }

            case XsMessageType.Mkdir:
            {
                string name = Canonicalize(conn, OneArg(p), false);
                if (TryGetForWrite(conn, view, name) is null)
                {
                    var node = CreateNode(conn, view, name, [], tx);
                    Fire(conn, tx, name, true, node.Perms, null);
                }
                return Ok;
            }

            case XsMessageType.Rm:
            {
                string name = Canonicalize(conn, OneArg(p), false);
                if (TryGetForWrite(conn, view, name) is null)
                {
                    // Removing what is not there is fine while its parent exists.
                    if (view.Get(XenstorePath.Parent(name)) is not null) return Ok;
                    throw new XenstoreException(XsErrno.ENOENT);
                }
                if (name == "/") throw new XenstoreException(XsErrno.EINVAL, "cannot remove /");
                RemoveSubtree(conn, tx, view, name);
                return Ok;
            }

            case XsMessageType.GetPerms:
            {
                var node = GetChecked(conn, view, Canonicalize(conn, OneArg(p), true), XsAccess.Read);
                return JoinNul(node.Perms.Select(x => x.ToString()));
            }

            case XsMessageType.SetPerms:
                return SetPerms(conn, tx, view, p);

            case XsMessageType.Watch:
            {
                var args = Strings(p, 3);
                int depth = -1;
                if (args.Count == 3 && (FeaturesOf(conn) & XsWire.FeatureWatchDepth) != 0)
                {
                    if (!int.TryParse(args[2], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out depth) || depth < 0)
                        throw new XenstoreException(XsErrno.EINVAL);
                }
                else if (args.Count != 2) throw new XenstoreException(XsErrno.EINVAL);
                bool relative = !args[0].StartsWith('/') && !args[0].StartsWith('@');
                string name = Canonicalize(conn, args[0], true);
                if (conn.Watches.Any(w => w.Node == name && w.Token == args[1])) throw new XenstoreException(XsErrno.EEXIST);
                if (!conn.Privileged && XenstoreQuota.Exceeds(Domain(conn.Domid).Quota.Watches, conn.Watches.Count + 1))
                    throw new XenstoreException(XsErrno.ENOSPC, "watches quota");
                var w = new XsWatch(name, args[1], depth, relative ? XenstorePath.DomainPath(conn.Domid).Length + 1 : 0);
                conn.Watches.Add(w);
                followUps.Add((name[w.PrefixLength..], w.Token));
                return Ok;
            }

            case XsMessageType.Unwatch:
            {
                var args = Strings(p, 2);
                if (args.Count != 2) throw new XenstoreException(XsErrno.EINVAL);
                string name = Canonicalize(conn, args[0], true);
                int i = conn.Watches.FindIndex(w => w.Node == name && w.Token == args[1]);
                if (i < 0) throw new XenstoreException(XsErrno.ENOENT);
                conn.Watches.RemoveAt(i);
                return Ok;
            }

            case XsMessageType.TransactionStart:
            {
                if (tx is not null) throw new XenstoreException(XsErrno.EBUSY, "nested transaction");
                if (!conn.Privileged && XenstoreQuota.Exceeds(Domain(conn.Domid).Quota.Transactions, conn.Transactions.Count + 1))
                    throw new XenstoreException(XsErrno.ENOSPC, "transactions quota");
                uint id;
                do { id = conn.NextTransactionId++; } while (id == 0 || conn.Transactions.ContainsKey(id));
                conn.Transactions[id] = new XenstoreTransaction(this, conn, id);
                return Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture) + "\0");
            }

            case XsMessageType.TransactionEnd:
            {
                string arg;
                try { arg = OneArg(p); } catch (XenstoreException) { arg = ""; }
                if (arg is not ("T" or "F")) throw new XenstoreException(XsErrno.EINVAL);
                if (tx is null) throw new XenstoreException(XsErrno.ENOENT);
                conn.Transactions.Remove(tx.Id);
                if (arg == "T") Commit(tx);
                return Ok;
            }

            case XsMessageType.Introduce:
            {
                var args = Strings(p, 3);
                if (args.Count < 3) throw new XenstoreException(XsErrno.EINVAL);
                uint domid = XenstorePath.ParseDomid(args[0]);
                long.TryParse(args[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long gfn);
                int.TryParse(args[2], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int port);
                if (port <= 0 || domid == 0 || domid >= XsWire.DomidSelf) throw new XenstoreException(XsErrno.EINVAL);
                var d = Domain(domid);
                if (d.Introduced) return Ok; // Re-introduction (resume) of a live domain: nothing to redo.
                var ring = RingResolver?.Invoke(domid, (ulong)gfn, (uint)port);
                if (ring is null)
                {
                    d.Introduced = true;
                    d.EventChannel = (uint)port;
                    d.RingGfn = (ulong)gfn;
                    FireSpecial(IntroduceDomainPath, domid);
                }
                else
                {
                    // Kick the new ring after this reply is queued, outside the lock.
                    IntroduceDomain(domid, ring, (uint)port, (ulong)gfn);
                }
                return Ok;
            }

            case XsMessageType.Release:
                ReleaseDomain(ConnectedDomain(OneArg(p)).Domid);
                return Ok;

            case XsMessageType.Resume:
                ConnectedDomain(OneArg(p));
                return Ok;

            case XsMessageType.GetDomainPath:
                return Encoding.ASCII.GetBytes(XenstorePath.DomainPath(XenstorePath.ParseDomid(OneArg(p))) + "\0");

            case XsMessageType.IsDomainIntroduced:
            {
                uint domid = XenstorePath.ParseDomid(OneArg(p));
                bool yes = domid == XsWire.DomidSelf || domid == 0 || (_domains.TryGetValue(domid, out var d) && d.Introduced);
                return yes ? "T\0"u8.ToArray() : "F\0"u8.ToArray();
            }

            case XsMessageType.SetTarget:
            {
                var args = Strings(p, 2);
                if (args.Count < 2) throw new XenstoreException(XsErrno.EINVAL);
                uint domid = XenstorePath.ParseDomid(args[0]), target = XenstorePath.ParseDomid(args[1]);
                var d = FindConnected(domid);
                FindConnected(target);
                d.Connection!.Target = target;
                return Ok;
            }

            case XsMessageType.ResetWatches:
                conn.Watches.Clear();
                conn.Transactions.Clear();
                return Ok;

            case XsMessageType.GetFeature:
            {
                var args = Strings(p, 2);
                uint f;
                if (args.Count == 0) f = FeaturesOf(conn);
                else
                {
                    if (!conn.Privileged) throw new XenstoreException(XsErrno.EACCES);
                    if (args.Count > 1) throw new XenstoreException(XsErrno.EINVAL);
                    f = Domain(XenstorePath.ParseDomid(args[0])).Features;
                }
                return Encoding.ASCII.GetBytes(f.ToString(CultureInfo.InvariantCulture) + "\0");
            }

            case XsMessageType.SetFeature:
            {
                var args = Strings(p, 3);
                if (args.Count != 2) throw new XenstoreException(XsErrno.EINVAL);
                var d = Domain(XenstorePath.ParseDomid(args[0]));
                uint.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint f);
                if (d.Introduced) throw new XenstoreException(XsErrno.EBUSY);
                if ((f & ~XsWire.SupportedFeatures) != 0) throw new XenstoreException(XsErrno.EINVAL);
                d.Features = f;
                return Ok;
            }

            case XsMessageType.GetQuota:
            {
                var args = Strings(p, 3);
                switch (args.Count)
                {
                    case 0: return Encoding.ASCII.GetBytes(string.Join(' ', XenstoreQuota.Names) + "\0");
                    case 1: return Num(DefaultQuota.Get(args[0]));
                    case 2: return Num(KnownDomain(args[0]).Quota.Get(args[1]));
                    default: throw new XenstoreException(XsErrno.EINVAL);
                }
            }

            case XsMessageType.SetQuota:
            {
                var args = Strings(p, 4);
                if (args.Count is not (2 or 3)) throw new XenstoreException(XsErrno.EINVAL);
                var q = args.Count == 2 ? DefaultQuota : KnownDomain(args[0]).Quota;
                if (!int.TryParse(args[^1], NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v == 0)
                    throw new XenstoreException(XsErrno.EINVAL);
                q.Set(args[^2], v);
                return Ok;
            }

            case XsMessageType.Control:
                return Control(Strings(p));

            default:
                throw new XenstoreException(XsErrno.ENOSYS);
        }
    }

    private static byte[] Num(int v) => Encoding.ASCII.GetBytes(v.ToString(CultureInfo.InvariantCulture) + "\0");

    private static byte[] JoinNul(IEnumerable<string> items)
    {
        var sb = new StringBuilder();
        foreach (var s in items) sb.Append(s).Append('\0');
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private uint FeaturesOf(XenstoreConnection conn) =>
        conn.Privileged ? XsWire.SupportedFeatures : Domain(conn.Domid).Features;

    /// <summary>get_node(.., XS_PERM_WRITE): the node, or null when absent and the caller may create it; EACCES/EINVAL otherwise.</summary>
    private XenstoreNode? TryGetForWrite(XenstoreConnection conn, INodeView view, string name)
    {
        try { return GetChecked(conn, view, name, XsAccess.Write); }
        catch (XenstoreException e) when (e.Error == XsErrno.ENOENT) { return null; }
    }

    private XenstoreDomain KnownDomain(string domid) =>
        _domains.GetValueOrDefault(XenstorePath.ParseDomid(domid)) ?? throw new XenstoreException(XsErrno.ENOENT);

    private XenstoreDomain FindConnected(uint domid)
    {
        if (!_domains.TryGetValue(domid, out var d) || !d.Introduced) throw new XenstoreException(XsErrno.ENOENT);
        if (d.Connection is null) throw new XenstoreException(XsErrno.EINVAL);
        return d;
    }

    /// <summary>onearg_domain(): RELEASE/RESUME target, never dom0.</summary>
    private XenstoreDomain ConnectedDomain(string arg)
    {
        uint domid = XenstorePath.ParseDomid(arg);
        if (domid == 0) throw new XenstoreException(XsErrno.EINVAL);
        if (!_domains.TryGetValue(domid, out var d) || !d.Introduced) throw new XenstoreException(XsErrno.ENOENT);
        return d;
    }

    /// <summary>send_directory_part(): "&lt;generation&gt;\0" then as many whole child names from byte offset as fit; an extra NUL marks the end.</summary>
    private byte[] DirectoryPart(XenstoreConnection conn, INodeView view, ReadOnlySpan<byte> p)
    {
        int nuls = p.Count((byte)0);
        if (nuls != 2 || p[^1] != 0) throw new XenstoreException(XsErrno.EINVAL);
        var args = Strings(p);
        var node = GetChecked(conn, view, Canonicalize(conn, args[0], false), XsAccess.Read);
        int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out int off);
        byte[] children = JoinNul(node.Children);
        byte[] gen = Encoding.ASCII.GetBytes(node.Generation.ToString(CultureInfo.InvariantCulture) + "\0");
        if (off < 0 || off >= children.Length) return [.. gen, 0];
        int maxLen = XsWire.PayloadMax - gen.Length - 1, len = 0;
        while (true)
        {
            int e = Array.IndexOf(children, (byte)0, off + len) - (off + len);
            if (len + e >= maxLen) break;
            len += e + 1;
            if (off + len == children.Length) break;
        }
        var result = new List<byte>(gen);
        result.AddRange(children.AsSpan(off, len).ToArray());
        if (off + len == children.Length) result.Add(0);
        return [.. result];
    }

    private byte[] SetPerms(XenstoreConnection conn, XenstoreTransaction? tx, INodeView view, ReadOnlySpan<byte> p)
    {
        var args = Strings(p);
        if (args.Count < 2) throw new XenstoreException(XsErrno.EINVAL);
        int n = args.Count - 1;
        if (!conn.Privileged && XenstoreQuota.Exceeds(Domain(conn.Domid).Quota.NodePermissions, n))
            throw new XenstoreException(XsErrno.ENOSPC, "node-permissions quota");
        var perms = XsPermission.ParseList(args.Skip(1));
        string name = Canonicalize(conn, args[0], true);
        var node = GetChecked(conn, view, name, XsAccess.Write | XsAccess.Owner);
        if (!conn.Privileged && perms[0].Domid != node.Owner) throw new XenstoreException(XsErrno.EPERM);
        var old = node.Perms;
        var c = node.Clone();
        c.Perms = perms;
        view.Put(name, c);
        Fire(conn, tx, name, true, c.Perms, old);
        return Ok;
    }

    private void Commit(XenstoreTransaction tx)
    {
        var conn = tx.Connection;
        if (!conn.Privileged && tx.NodeDelta > 0)
        {
            var d = Domain(conn.Domid);
            if (XenstoreQuota.Exceeds(d.Quota.Nodes, d.NodeCount + tx.NodeDelta)) throw new XenstoreException(XsErrno.ENOSPC);
        }
        tx.Commit();
        foreach (var e in tx.Events) Fire(conn, null, e.Name, e.Subtree, e.Perms, e.OldPerms);
    }

    private byte[] Control(List<string> args)
    {
        if (args.Count == 0) throw new XenstoreException(XsErrno.EINVAL);
        switch (args[0])
        {
            case "help":
                return Encoding.ASCII.GetBytes("check\nhelp\nlog\nprint\nquota\n\0");
            case "check":
            case "log":
                return Ok;
            case "print":
                Log?.Invoke("xenstore: " + string.Join(' ', args.Skip(1)));
                return Ok;
            case "quota":
            {
                if (args.Count == 1)
                    return Encoding.ASCII.GetBytes(string.Concat(XenstoreQuota.Names.Select(n => $"{n,-20}: {DefaultQuota.Get(n)}\n")) + "\0");
                if (args.Count == 4 && args[1] == "set" && int.TryParse(args[3], NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                {
                    DefaultQuota.Set(args[2], v);
                    return Ok;
                }
                var d = KnownDomain(args[1]);
                return Encoding.ASCII.GetBytes($"Domain {d.Domid}:\n  nodes: {d.NodeCount}\n  watches: {d.Connection?.Watches.Count ?? 0}\n  transactions: {d.Connection?.Transactions.Count ?? 0}\n\0");
            }
            default:
                throw new XenstoreException(XsErrno.EINVAL);
        }
    }
}
