using System.Diagnostics;

namespace XenSharp.Dom0.Net;

/// <summary>A port of a <see cref="VirtualSwitch"/>: a vif, or an uplink such as a TAP device.</summary>
public abstract class SwitchPort
{
    protected SwitchPort(string name, uint? domainId)
    {
        Name = name;
        DomainId = domainId;
    }

    public string Name { get; }
    /// <summary>The guest behind the port, or null for an uplink (never isolated).</summary>
    public uint? DomainId { get; }
    public VirtualSwitch? Switch { get; internal set; }

    /// <summary>Hands a frame to the port (must not block; the port queues or drops). The array is shared: don't modify it.</summary>
    public abstract void Deliver(byte[] frame);
}

/// <summary>
/// Dom0's software Ethernet switch: learns source MACs per port (entries age out), forwards known unicast to one
/// port and floods broadcast, multicast and unknown unicast to every other port. With <see cref="IsolateDomains"/>
/// guests of different domains only reach uplinks, never each other.
/// </summary>
public sealed class VirtualSwitch(string name)
{
    private readonly object _lock = new();
    private readonly List<SwitchPort> _ports = [];
    private readonly Dictionary<ulong, (SwitchPort Port, long Seen)> _macs = [];

    public string Name { get; } = name;
    public TimeSpan AgeingTime { get; set; } = TimeSpan.FromSeconds(300);
    public bool IsolateDomains { get; set; }
    /// <summary>The clock in milliseconds (tests replace it).</summary>
    public Func<long> Clock { get; set; } = () => Stopwatch.GetTimestamp() * 1000 / Stopwatch.Frequency;
    public long Flooded, Forwarded, Dropped;

    public IReadOnlyList<SwitchPort> Ports { get { lock (_lock) return _ports.ToArray(); } }

    public void Attach(SwitchPort p)
    {
        lock (_lock)
        {
            if (p.Switch is not null) throw new InvalidOperationException($"{p.Name} is already on switch {p.Switch.Name}");
            _ports.Add(p);
            p.Switch = this;
        }
    }

    public void Detach(SwitchPort p)
    {
        lock (_lock)
        {
            if (!_ports.Remove(p)) return;
            p.Switch = null;
            foreach (var k in _macs.Where(e => e.Value.Port == p).Select(e => e.Key).ToList()) _macs.Remove(k);
        }
    }

    public static ulong MacKey(ReadOnlySpan<byte> mac) =>
        ((ulong)mac[0] << 40) | ((ulong)mac[1] << 32) | ((ulong)mac[2] << 24) | ((ulong)mac[3] << 16) | ((ulong)mac[4] << 8) | mac[5];

    /// <summary>The port that <paramref name="mac"/> was last seen on, if the entry has not aged out.</summary>
    public SwitchPort? Lookup(ReadOnlySpan<byte> mac)
    {
        lock (_lock) return LookupLocked(MacKey(mac));
    }

    private SwitchPort? LookupLocked(ulong key)
    {
        if (!_macs.TryGetValue(key, out var e)) return null;
        if (Clock() - e.Seen > (long)AgeingTime.TotalMilliseconds)
        {
            _macs.Remove(key);
            return null;
        }
        return e.Port;
    }

    private bool MayReach(SwitchPort from, SwitchPort to) =>
        to != from && (!IsolateDomains || from.DomainId is null || to.DomainId is null || from.DomainId == to.DomainId);

    /// <summary>Switches one Ethernet frame that arrived on <paramref name="from"/>.</summary>
    public void Forward(SwitchPort from, byte[] frame)
    {
        if (frame.Length < 14) { Interlocked.Increment(ref Dropped); return; }
        var dst = frame.AsSpan(0, 6);
        var src = frame.AsSpan(6, 6);
        List<SwitchPort> targets = [];
        lock (_lock)
        {
            if (from.Switch != this) return;
            if ((src[0] & 1) == 0) _macs[MacKey(src)] = (from, Clock());
            SwitchPort? to = (dst[0] & 1) == 0 ? LookupLocked(MacKey(dst)) : null;
            if (to is not null)
            {
                if (MayReach(from, to)) targets.Add(to);
            }
            else
            {
                foreach (var p in _ports) if (MayReach(from, p)) targets.Add(p);
            }
            if (targets.Count == 0) Interlocked.Increment(ref Dropped);
            else if (to is not null) Interlocked.Increment(ref Forwarded);
            else Interlocked.Increment(ref Flooded);
        }
        foreach (var t in targets) t.Deliver(frame);
    }
}
