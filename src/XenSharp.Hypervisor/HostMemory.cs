namespace XenSharp.Hypervisor;

/// <summary>
/// The host's memory as domains see it: a pool from which each domain reserves its maximum, so that
/// creating a domain never overcommits the host. Mirrors what <c>xl info</c> reports as total/free memory.
/// </summary>
public sealed class HostMemory
{
    private readonly object _lock = new();
    private readonly Dictionary<uint, ulong> _reserved = new();

    /// <summary>Bytes domains may use in all: host RAM less the reservation kept for the host itself.</summary>
    public ulong TotalBytes { get; }
    public ulong HostReservationBytes { get; }

    public HostMemory(ulong physicalBytes, ulong hostReservationBytes)
    {
        if (hostReservationBytes >= physicalBytes)
            throw new ArgumentException($"host reservation of {hostReservationBytes >> 20} MiB leaves nothing of {physicalBytes >> 20} MiB for domains");
        TotalBytes = physicalBytes - hostReservationBytes;
        HostReservationBytes = hostReservationBytes;
    }

    /// <summary>Physical RAM from /proc/meminfo (MemTotal).</summary>
    public static ulong ReadPhysicalBytes()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                return ulong.Parse(line.AsSpan(9).Trim().TrimEnd("kB").Trim()) * 1024;
        throw new InvalidOperationException("/proc/meminfo has no MemTotal line");
    }

    public ulong FreeBytes
    {
        get { lock (_lock) return TotalBytes - _reserved.Values.Aggregate(0UL, (a, b) => a + b); }
    }

    public ulong ReservedBy(uint domid)
    {
        lock (_lock) return _reserved.GetValueOrDefault(domid);
    }

    /// <summary>Sets the reservation of <paramref name="domid"/> to <paramref name="bytes"/>, or throws without changing anything.</summary>
    public void Reserve(uint domid, string name, ulong bytes)
    {
        lock (_lock)
        {
            ulong current = _reserved.GetValueOrDefault(domid);
            ulong free = TotalBytes - _reserved.Values.Aggregate(0UL, (a, b) => a + b) + current;
            if (bytes > free)
                throw new HostMemoryExhaustedException(
                    $"domain '{name}' needs {Mib(bytes)} MiB but only {Mib(free)} MiB of host memory is free " +
                    $"({Mib(TotalBytes)} MiB for domains, {Mib(HostReservationBytes)} MiB kept for the host): " +
                    "lower memory/maxmem or destroy another domain");
            _reserved[domid] = bytes;
        }
    }

    public void Release(uint domid)
    {
        lock (_lock) _reserved.Remove(domid);
    }

    private static ulong Mib(ulong b) => b >> 20;
}

public sealed class HostMemoryExhaustedException(string message) : Exception(message);
