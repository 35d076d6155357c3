namespace XenSharp.Hypervisor;

/// <summary>
/// A domain's primary console as a byte stream, whatever device carries it (the HVM UART or the PV console
/// ring). Output keeps a bounded history so that a client attaching late sees recent text; any number of
/// readers may subscribe. Input is a bounded queue the device drains when the guest reads.
/// </summary>
public sealed class DomainConsole
{
    private const int HistoryBytes = 64 * 1024;
    private const int InputBytes = 4096;

    private readonly object _lock = new();
    private readonly byte[] _history = new byte[HistoryBytes];
    private long _written;
    private readonly Queue<byte> _input = new();
    private readonly List<Action<ReadOnlyMemory<byte>>> _readers = new();

    /// <summary>Total bytes the guest has written since the domain was built.</summary>
    public long BytesWritten { get { lock (_lock) return _written; } }

    /// <summary>Raised (outside the lock) when input arrives, so the device can tell the guest.</summary>
    public event Action? InputAvailable;

    /// <summary>Called by the console device with bytes the guest wrote.</summary>
    public void WriteOutput(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        Action<ReadOnlyMemory<byte>>[] readers;
        var copy = data.ToArray();
        lock (_lock)
        {
            foreach (byte b in data) _history[_written++ % HistoryBytes] = b;
            readers = _readers.ToArray();
        }
        foreach (var r in readers) r(copy);
    }

    /// <summary>The most recent output (up to 64 KiB), oldest first.</summary>
    public byte[] History()
    {
        lock (_lock)
        {
            long n = Math.Min(_written, HistoryBytes);
            var result = new byte[n];
            for (long i = 0; i < n; i++) result[i] = _history[(_written - n + i) % HistoryBytes];
            return result;
        }
    }

    /// <summary>Subscribes to output; the history is delivered first, atomically with the subscription. Dispose to stop.</summary>
    public IDisposable Subscribe(Action<ReadOnlyMemory<byte>> reader, bool replayHistory = true)
    {
        lock (_lock)
        {
            if (replayHistory)
            {
                var h = History();
                if (h.Length > 0) reader(h);
            }
            _readers.Add(reader);
        }
        return new Subscription(this, reader);
    }

    /// <summary>Queues keyboard input for the guest. Bytes beyond the queue's capacity are dropped, as a full UART FIFO would.</summary>
    public int WriteInput(ReadOnlySpan<byte> data)
    {
        int accepted = 0;
        lock (_lock)
        {
            foreach (byte b in data)
            {
                if (_input.Count >= InputBytes) break;
                _input.Enqueue(b);
                accepted++;
            }
        }
        if (accepted > 0) InputAvailable?.Invoke();
        return accepted;
    }

    public bool TryReadInput(out byte b)
    {
        lock (_lock) return _input.TryDequeue(out b);
    }

    public int PendingInput { get { lock (_lock) return _input.Count; } }

    private sealed class Subscription(DomainConsole console, Action<ReadOnlyMemory<byte>> reader) : IDisposable
    {
        public void Dispose()
        {
            lock (console._lock) console._readers.Remove(reader);
        }
    }
}
