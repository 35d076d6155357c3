using System.Diagnostics;
using System.Text;

namespace XenSharp.Hypervisor.Pv.Services;

/// <summary>
/// CONSOLEIO_write output of one domain into the hypervisor log (xl dmesg), line by line, prefixed with the
/// domain, and rate limited (a token bucket of bytes) so that a guest cannot flood the log.
/// </summary>
public sealed class ConsoleLog(HypervisorLog log, uint domid)
{
    public const int BurstBytes = 16 * 1024;
    public const int BytesPerSecond = 4 * 1024;
    private const int MaxLine = 256;

    private readonly object _lock = new();
    private readonly StringBuilder _line = new();
    private double _tokens = BurstBytes;
    private long _lastRefill = Stopwatch.GetTimestamp();
    private long _lastNotice = long.MinValue;

    public long DroppedBytes { get; private set; }

    public void Write(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            _tokens = Math.Min(BurstBytes, _tokens + (now - _lastRefill) * (double)BytesPerSecond / Stopwatch.Frequency);
            _lastRefill = now;
            foreach (byte b in data)
            {
                if (_tokens < 1)
                {
                    DroppedBytes++;
                    // Say so at most every 10 s.
                    if (_lastNotice == long.MinValue || now - _lastNotice > 10 * Stopwatch.Frequency)
                    {
                        _lastNotice = now;
                        log.Write($"(d{domid}) [console_io output rate limited: dropping]");
                    }
                    continue;
                }
                _tokens--;
                if (b == (byte)'\n' || _line.Length >= MaxLine) Flush();
                if (b == (byte)'\n' || b == (byte)'\r') continue;
                _line.Append(b is >= 0x20 and < 0x7f or (byte)'\t' ? (char)b : '?');
            }
        }
    }

    private void Flush()
    {
        log.Write($"(d{domid}) {_line}");
        _line.Clear();
    }
}
