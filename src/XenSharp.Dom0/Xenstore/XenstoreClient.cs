using System.Globalization;
using System.Text;
using System.Threading.Channels;

namespace XenSharp.Dom0.Xenstore;

/// <summary>
/// In-process xenstore client for dom0 code (the toolstack): speaks the wire protocol to the store through its own
/// connection, so it gets exactly the semantics guests and tools see. Thread-safe; watch callbacks run one at a time
/// on a background task, never under the store lock.
/// </summary>
public sealed class XenstoreClient : IDisposable
{
    private readonly XenstoreConnection _conn;
    private readonly object _drainLock = new(), _feedLock = new();
    private readonly Dictionary<uint, TaskCompletionSource<(XsMessageType, byte[])>> _waiting = [];
    private readonly Dictionary<string, Action<string>> _watches = new(StringComparer.Ordinal);
    private readonly Channel<(string Path, string Token)> _events = Channel.CreateUnbounded<(string, string)>(new() { SingleReader = true });
    private readonly Task _dispatcher;
    private int _nextReq;
    private int _nextToken;

    /// <param name="store">The store to talk to.</param>
    /// <param name="domid">The identity; 0 (the default) is privileged dom0.</param>
    public XenstoreClient(XenstoreStore store, uint domid = 0)
    {
        _conn = store.Connect(domid, $"in-process client dom{domid}");
        _conn.OutputAvailable += _ => ThreadPool.UnsafeQueueUserWorkItem(_ => Drain(), null);
        _dispatcher = Task.Run(DispatchAsync);
    }

    public XenstoreConnection Connection => _conn;

    private void Drain()
    {
        lock (_drainLock)
        {
            while (_conn.TryDequeue(out var m))
            {
                var h = XsHeader.Parse(m);
                var payload = m.AsSpan(XsHeader.Size).ToArray();
                if (h.Type == XsMessageType.WatchEvent)
                {
                    var parts = Encoding.UTF8.GetString(payload).Split('\0');
                    if (parts.Length >= 2) _events.Writer.TryWrite((parts[0], parts[1]));
                }
                else if (_waiting.Remove(h.ReqId, out var tcs))
                    tcs.TrySetResult((h.Type, payload));
            }
        }
    }

    private async Task DispatchAsync()
    {
        await foreach (var (path, token) in _events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            Action<string>? h;
            lock (_watches) h = _watches.GetValueOrDefault(token);
            try { h?.Invoke(path); }
            catch (Exception e) { _conn.Store.Log?.Invoke($"xenstore: watch callback for {path} threw: {e}"); }
        }
    }

    /// <summary>One request/reply exchange; an error reply becomes <see cref="XenstoreException"/>.</summary>
    internal byte[] Request(XsMessageType type, uint txId, byte[] payload)
    {
        uint req = (uint)Interlocked.Increment(ref _nextReq);
        var tcs = new TaskCompletionSource<(XsMessageType, byte[])>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_drainLock) _waiting[req] = tcs;
        lock (_feedLock) _conn.Feed(XsWire.Build(type, req, txId, payload));
        Drain(); // processing is synchronous: the reply is already queued
        var (t, reply) = tcs.Task.GetAwaiter().GetResult();
        if (t == XsMessageType.Error)
        {
            string name = Encoding.ASCII.GetString(reply).TrimEnd('\0');
            throw new XenstoreException(Enum.TryParse<XsErrno>(name, out var e) ? e : XsErrno.EIO);
        }
        return reply;
    }

    private static string Str(byte[] b) => Encoding.UTF8.GetString(b).TrimEnd('\0');

    private static string[] List(byte[] b) => b.Length == 0 ? [] : Encoding.UTF8.GetString(b, 0, b.Length - 1).Split('\0');

    public byte[] ReadBytes(string path, uint tx = 0) => Request(XsMessageType.Read, tx, XsWire.Strings(path));
    public string Read(string path, uint tx = 0) => Encoding.UTF8.GetString(ReadBytes(path, tx));

    /// <summary>The value, or null when the node does not exist.</summary>
    public string? TryRead(string path, uint tx = 0)
    {
        try { return Read(path, tx); }
        catch (XenstoreException e) when (e.Error == XsErrno.ENOENT) { return null; }
    }

    public void Write(string path, ReadOnlySpan<byte> value, uint tx = 0)
    {
        var p = XsWire.Strings(path);
        Request(XsMessageType.Write, tx, [.. p, .. value]);
    }

    public void Write(string path, string value, uint tx = 0) => Write(path, Encoding.UTF8.GetBytes(value), tx);
    public void Mkdir(string path, uint tx = 0) => Request(XsMessageType.Mkdir, tx, XsWire.Strings(path));
    public void Rm(string path, uint tx = 0) => Request(XsMessageType.Rm, tx, XsWire.Strings(path));
    public string[] Directory(string path, uint tx = 0) => List(Request(XsMessageType.Directory, tx, XsWire.Strings(path)));

    public XsPermission[] GetPerms(string path, uint tx = 0) =>
        XsPermission.ParseList(List(Request(XsMessageType.GetPerms, tx, XsWire.Strings(path))));

    public void SetPerms(string path, IEnumerable<XsPermission> perms, uint tx = 0) =>
        Request(XsMessageType.SetPerms, tx, XsWire.Strings([path, .. perms.Select(p => p.ToString())]));

    public void SetPerms(string path, params XsPermission[] perms) => SetPerms(path, perms, 0);

    /// <summary>Watches <paramref name="path"/> (a node or @introduceDomain/@releaseDomain); <paramref name="onEvent"/> gets the event path, first once straight away. Dispose to unwatch.</summary>
    public IDisposable Watch(string path, Action<string> onEvent)
    {
        string token = "xsc" + Interlocked.Increment(ref _nextToken).ToString(CultureInfo.InvariantCulture);
        lock (_watches) _watches[token] = onEvent;
        try { Request(XsMessageType.Watch, 0, XsWire.Strings(path, token)); }
        catch
        {
            lock (_watches) _watches.Remove(token);
            throw;
        }
        return new Unwatcher(this, path, token);
    }

    private sealed class Unwatcher(XenstoreClient c, string path, string token) : IDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            lock (c._watches) c._watches.Remove(token);
            try { c.Request(XsMessageType.Unwatch, 0, XsWire.Strings(path, token)); }
            catch (XenstoreException) { }
        }
    }

    public uint TransactionStart() =>
        uint.Parse(Str(Request(XsMessageType.TransactionStart, 0, [0])), CultureInfo.InvariantCulture);

    /// <summary>Commits (or aborts) <paramref name="tx"/>; false when it conflicted (EAGAIN) and must be redone.</summary>
    public bool TransactionEnd(uint tx, bool commit = true)
    {
        try
        {
            Request(XsMessageType.TransactionEnd, tx, XsWire.Strings(commit ? "T" : "F"));
            return true;
        }
        catch (XenstoreException e) when (e.Error == XsErrno.EAGAIN) { return false; }
    }

    /// <summary>Runs <paramref name="body"/> in a transaction, redoing it while the commit conflicts; an exception aborts.</summary>
    public T Transaction<T>(Func<uint, T> body)
    {
        while (true)
        {
            uint tx = TransactionStart();
            T result;
            try { result = body(tx); }
            catch
            {
                try { TransactionEnd(tx, commit: false); } catch (XenstoreException) { }
                throw;
            }
            if (TransactionEnd(tx)) return result;
        }
    }

    public void Transaction(Action<uint> body) => Transaction<bool>(tx => { body(tx); return true; });

    public string GetDomainPath(uint domid) => Str(Request(XsMessageType.GetDomainPath, 0, XsWire.Strings(domid.ToString(CultureInfo.InvariantCulture))));

    public void Dispose()
    {
        _conn.Close();
        _events.Writer.TryComplete();
        lock (_drainLock)
        {
            foreach (var t in _waiting.Values) t.TrySetException(new ObjectDisposedException(nameof(XenstoreClient)));
            _waiting.Clear();
        }
    }
}
