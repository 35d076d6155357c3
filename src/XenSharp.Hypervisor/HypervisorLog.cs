namespace XenSharp.Hypervisor;

/// <summary>
/// The hypervisor's message buffer (what <c>xl dmesg</c> prints): a bounded ring of timestamped lines,
/// copied to an optional sink (the daemon's log).
/// </summary>
public sealed class HypervisorLog
{
    private readonly object _lock = new();
    private readonly Queue<string> _lines = new();
    private readonly int _capacity;
    private readonly DateTime _start = DateTime.UtcNow;

    public HypervisorLog(int capacity = 4096) => _capacity = capacity;

    /// <summary>Receives every line as it is logged.</summary>
    public event Action<string>? LineLogged;

    public void Write(string message)
    {
        var t = DateTime.UtcNow - _start;
        string line = $"({t.TotalSeconds,10:F6}) {message}";
        lock (_lock)
        {
            _lines.Enqueue(line);
            while (_lines.Count > _capacity) _lines.Dequeue();
        }
        LineLogged?.Invoke(line);
    }

    public IReadOnlyList<string> Snapshot()
    {
        lock (_lock) return _lines.ToArray();
    }

    public void Clear()
    {
        lock (_lock) _lines.Clear();
    }
}
