using System.Text;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

/// <summary>A client speaking raw wire messages to a connection, with no transport.</summary>
internal sealed class Wire
{
    private uint _req = 100;
    public XenstoreConnection Conn { get; }
    public List<(string Path, string Token)> Events { get; } = [];

    public Wire(XenstoreConnection conn) => Conn = conn;

    public static Wire Dom0(XenstoreStore s) => new(s.Connect(0));

    /// <summary>A domU's connection: introduced by dom0 (no ring), requests fed straight in.</summary>
    public static Wire DomU(XenstoreStore s, uint domid)
    {
        if (!s.IsDomainIntroduced(domid))
            Assert.Equal("OK\0", Dom0(s).Req(XsMessageType.Introduce, 0, domid.ToString(), "0", "1"));
        return new Wire(s.Connect(domid));
    }

    public (XsHeader Header, byte[] Payload) SendRaw(byte[] message)
    {
        Conn.Feed(message);
        (XsHeader, byte[])? reply = null;
        while (TryNext(out var h, out var p))
        {
            if (h.Type == XsMessageType.WatchEvent) AddEvent(p);
            else reply ??= (h, p);
        }
        return reply ?? throw new InvalidOperationException("no reply");
    }

    private void AddEvent(byte[] p)
    {
        var parts = Encoding.UTF8.GetString(p).Split('\0');
        Events.Add((parts[0], parts[1]));
    }

    public void DrainEvents()
    {
        while (TryNext(out var h, out var p))
            if (h.Type == XsMessageType.WatchEvent) AddEvent(p);
    }

    private bool TryNext(out XsHeader h, out byte[] p)
    {
        if (!Conn.TryDequeue(out var m)) { h = default; p = []; return false; }
        h = XsHeader.Parse(m);
        p = m[XsHeader.Size..];
        Assert.Equal((int)h.Length, p.Length);
        return true;
    }

    public (XsHeader Header, byte[] Payload) Send(XsMessageType type, byte[] payload, uint tx = 0) =>
        SendRaw(XsWire.Build(type, ++_req, tx, payload));

    /// <summary>The reply payload as text (NULs kept), or the errno name for an error reply.</summary>
    public string Req(XsMessageType type, uint tx, params string[] args)
    {
        var (h, p) = Send(type, XsWire.Strings(args), tx);
        string s = Encoding.UTF8.GetString(p);
        return h.Type == XsMessageType.Error ? s.TrimEnd('\0') : s;
    }

    public string Read(string path, uint tx = 0) => Req(XsMessageType.Read, tx, path);
    public string Write(string path, string value, uint tx = 0)
    {
        var (h, p) = Send(XsMessageType.Write, [.. XsWire.Strings(path), .. Encoding.UTF8.GetBytes(value)], tx);
        return Encoding.UTF8.GetString(p).TrimEnd('\0');
    }
    public string Mkdir(string path, uint tx = 0) => Req(XsMessageType.Mkdir, tx, path).TrimEnd('\0');
    public string Rm(string path, uint tx = 0) => Req(XsMessageType.Rm, tx, path).TrimEnd('\0');
    public string Dir(string path, uint tx = 0) => Req(XsMessageType.Directory, tx, path);
    public string GetPerms(string path) => Req(XsMessageType.GetPerms, 0, path);
    public string SetPerms(string path, params string[] perms) => Req(XsMessageType.SetPerms, 0, [path, .. perms]).TrimEnd('\0');
    public string Watch(string path, string token) => Req(XsMessageType.Watch, 0, path, token).TrimEnd('\0');
    public string Unwatch(string path, string token) => Req(XsMessageType.Unwatch, 0, path, token).TrimEnd('\0');
    public uint Start() => uint.Parse(Req(XsMessageType.TransactionStart, 0, "").TrimEnd('\0'));
    public string End(uint tx, bool commit = true) => Req(XsMessageType.TransactionEnd, tx, commit ? "T" : "F").TrimEnd('\0');
}
