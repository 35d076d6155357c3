using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace XenSharp.Dom0.Net;

/// <summary>
/// A vif's transmit limit as xl's vifspec writes it (<c>rate=10Mb/s@20ms</c>): <see cref="BytesPerInterval"/>
/// bytes of credit that refill every <see cref="IntervalMicroseconds"/>; the backend's "rate" node holds
/// "bytes,usecs" as libxl writes it.
/// </summary>
public sealed partial record VifRate(ulong BytesPerInterval, ulong IntervalMicroseconds)
{
    public const ulong DefaultIntervalMicroseconds = 50_000;

    [GeneratedRegex(@"^\s*(\d+)\s*([GMK]?)([Bb])/s\s*(?:@\s*(\d+)\s*(s|ms|us)\s*)?$")]
    private static partial Regex Spec();

    /// <summary>Parses "RATE/s[@INTERVAL]": units B, KB, MB, GB (bytes) or b, Kb, Mb, Gb (bits); interval s, ms or us (default 50ms).</summary>
    public static VifRate Parse(string spec)
    {
        var m = Spec().Match(spec);
        if (!m.Success) throw new FormatException($"bad rate \"{spec}\": expected e.g. 10Mb/s@20ms");
        ulong n = ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        ulong mult = m.Groups[2].Value switch { "K" => 1000, "M" => 1_000_000, "G" => 1_000_000_000, _ => 1 };
        // libxl's units are decimal (10Mb/s is 10,000,000 bits per second).
        decimal bytesPerSec = (decimal)n * mult / (m.Groups[3].Value == "b" ? 8m : 1m);
        ulong us = DefaultIntervalMicroseconds;
        if (m.Groups[4].Success)
        {
            ulong v = ulong.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
            us = m.Groups[5].Value switch { "s" => v * 1_000_000, "ms" => v * 1000, _ => v };
        }
        if (us == 0 || bytesPerSec <= 0) throw new FormatException($"bad rate \"{spec}\": zero");
        ulong bytes = (ulong)Math.Max(1m, Math.Floor(bytesPerSec * us / 1_000_000m));
        return new VifRate(bytes, us);
    }

    /// <summary>The xenstore form "bytes,usecs".</summary>
    public override string ToString() => $"{BytesPerInterval},{IntervalMicroseconds}";
}

/// <summary>Token bucket: credit refills to <see cref="VifRate.BytesPerInterval"/> each interval.</summary>
public sealed class TokenBucket(VifRate rate)
{
    private long _credit = (long)rate.BytesPerInterval;
    private long _periodStart = Stopwatch.GetTimestamp();
    private readonly long _intervalTicks = (long)(rate.IntervalMicroseconds * (ulong)Stopwatch.Frequency / 1_000_000);

    public VifRate Rate { get; } = rate;

    private void Refill()
    {
        long now = Stopwatch.GetTimestamp();
        if (now - _periodStart >= _intervalTicks)
        {
            _periodStart = now - (now - _periodStart) % _intervalTicks;
            _credit = (long)Rate.BytesPerInterval;
        }
    }

    /// <summary>
    /// Takes <paramref name="bytes"/> of credit, or returns the milliseconds to wait. A packet larger than a full
    /// interval's credit passes when the bucket is full, so it can never stall the ring.
    /// </summary>
    public bool TryTake(int bytes, out int waitMs)
    {
        Refill();
        waitMs = 0;
        bool full = _credit == (long)Rate.BytesPerInterval;
        if (bytes <= _credit || full)
        {
            _credit -= Math.Min(bytes, _credit);
            return true;
        }
        long left = _intervalTicks - (Stopwatch.GetTimestamp() - _periodStart);
        waitMs = (int)Math.Max(1, left * 1000 / Stopwatch.Frequency);
        return false;
    }
}
