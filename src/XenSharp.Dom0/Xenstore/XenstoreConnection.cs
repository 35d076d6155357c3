using System.Collections.Concurrent;

namespace XenSharp.Dom0.Xenstore;

internal sealed class XsWatch(string node, string token, int depth, int prefixLength)
{
    /// <summary>Canonical (absolute or @special) path.</summary>
    public string Node { get; } = node;
    public string Token { get; } = token;
    /// <summary>-1: no depth limit.</summary>
    public int Depth { get; } = depth;
    /// <summary>Characters to strip from event paths: "/local/domain/&lt;id&gt;/" for a watch registered with a relative path.</summary>
    public int PrefixLength { get; } = prefixLength;
}

/// <summary>
/// One xenstore client: a domain's ring or a socket client, or an in-process dom0 user. Takes raw bytes in
/// (<see cref="Feed"/>), queues reply and watch-event messages out; transport-independent so it can be tested alone.
/// </summary>
public sealed class XenstoreConnection
{
    private readonly byte[] _header = new byte[XsHeader.Size];
    private int _headerUsed;
    private XsHeader _pending;
    private byte[]? _payload;
    private int _payloadUsed;
    private readonly ConcurrentQueue<byte[]> _output = new();
    private int _outputCount;
    private int _droppedEvents;

    internal readonly List<XsWatch> Watches = [];
    internal readonly Dictionary<uint, XenstoreTransaction> Transactions = [];
    internal uint NextTransactionId = 1;

    /// <summary>Watch events queued for an unprivileged client beyond this are dropped: a guest that never reads its ring must not grow dom0's heap without bound.</summary>
    public const int MaxQueuedForGuest = 1024;

    internal XenstoreConnection(XenstoreStore store, uint domid, bool privileged, string description)
    {
        Store = store;
        Domid = domid;
        Privileged = privileged;
        Description = description;
    }

    public XenstoreStore Store { get; }
    /// <summary>The client's domain: relative paths resolve under /local/domain/&lt;Domid&gt;, and new nodes are owned by it.</summary>
    public uint Domid { get; }
    /// <summary>Dom0 and the socket: every permission check passes and privileged operations are allowed.</summary>
    public bool Privileged { get; }
    public string Description { get; }
    /// <summary>SET_TARGET: this connection acts with the rights of that domain too (device models).</summary>
    internal uint? Target { get; set; }

    /// <summary>Set once the client broke the protocol (payload over 4096): no more input is processed.</summary>
    public bool IsBroken { get; private set; }
    /// <summary>XENSTORE_ERROR_* describing why the connection broke.</summary>
    public uint BrokenReason { get; private set; }
    public bool IsClosed { get; internal set; }

    /// <summary>Raised, possibly under the store lock, whenever output was queued. Handlers must not block or call back into the store.</summary>
    public event Action<XenstoreConnection>? OutputAvailable;

    public int QueuedOutputCount => Volatile.Read(ref _outputCount);
    public int DroppedWatchEvents => Volatile.Read(ref _droppedEvents);

    /// <summary>Consumes request bytes: complete messages are processed at once. Returns false when the connection is (now) broken.</summary>
    public bool Feed(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && !IsBroken && !IsClosed)
        {
            if (_payload is null)
            {
                int n = Math.Min(XsHeader.Size - _headerUsed, data.Length);
                data[..n].CopyTo(_header.AsSpan(_headerUsed));
                _headerUsed += n;
                data = data[n..];
                if (_headerUsed < XsHeader.Size) break;
                _pending = XsHeader.Parse(_header);
                if (_pending.Length > XsWire.PayloadMax)
                {
                    MarkBroken(XsWire.ErrorProto, $"payload of {_pending.Length} bytes");
                    return false;
                }
                _payload = new byte[_pending.Length];
                _payloadUsed = 0;
            }
            int m = Math.Min(_payload.Length - _payloadUsed, data.Length);
            data[..m].CopyTo(_payload.AsSpan(_payloadUsed));
            _payloadUsed += m;
            data = data[m..];
            if (_payloadUsed == _payload.Length)
            {
                var header = _pending;
                var payload = _payload;
                _payload = null;
                _headerUsed = 0;
                Store.Process(this, header, payload);
            }
        }
        return !IsBroken;
    }

    /// <summary>How many bytes the next <see cref="Feed"/> can take without crossing a message boundary (header, then payload).</summary>
    public int BytesWanted => _payload is null ? XsHeader.Size - _headerUsed : _payload.Length - _payloadUsed;

    /// <summary>True between messages: the next byte fed starts a new header.</summary>
    public bool AtMessageBoundary => _payload is null && _headerUsed == 0;

    public bool TryDequeue(out byte[] message)
    {
        if (_output.TryDequeue(out message!))
        {
            Interlocked.Decrement(ref _outputCount);
            return true;
        }
        return false;
    }

    internal void MarkBroken(uint reason, string why)
    {
        IsBroken = true;
        BrokenReason = reason;
        Store.Log?.Invoke($"xenstore: connection {Description} broken: {why}");
    }

    internal void Enqueue(byte[] message)
    {
        if (IsClosed) return;
        _output.Enqueue(message);
        Interlocked.Increment(ref _outputCount);
        OutputAvailable?.Invoke(this);
    }

    internal void EnqueueWatchEvent(string path, string token)
    {
        if (IsClosed) return;
        if (!Privileged && QueuedOutputCount >= MaxQueuedForGuest)
        {
            Interlocked.Increment(ref _droppedEvents);
            return;
        }
        Enqueue(XsWire.Build(XsMessageType.WatchEvent, 0, 0, XsWire.Strings(path, token)));
    }

    /// <summary>Drops this client: its watches and open transactions go with it.</summary>
    public void Close() => Store.CloseConnection(this);

    public override string ToString() => Description;
}
