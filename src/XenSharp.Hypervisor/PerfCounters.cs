using XenSharp.Accel;

namespace XenSharp.Hypervisor;

/// <summary>One named event count of a domain (Xen keeps such software counters for xenperf).</summary>
public readonly record struct PerfCounter(string Name, long Value);

/// <summary>A platform that classifies its exits further (hypercalls by name, exceptions by vector).</summary>
public interface IPerfCounterSource
{
    IEnumerable<PerfCounter> PerfCounters();
}

/// <summary>Exits of one vCPU by reason, counted in the run loop.</summary>
public sealed class ExitCounters
{
    private readonly long[] _byReason = new long[Enum.GetValues<ExitReason>().Length];

    public void Count(ExitReason reason)
    {
        int i = (int)reason;
        if ((uint)i < (uint)_byReason.Length) Interlocked.Increment(ref _byReason[i]);
    }

    public long this[ExitReason reason] => Interlocked.Read(ref _byReason[(int)reason]);
}

public static class DomainPerfCounters
{
    /// <summary>
    /// Every counter of the domain, nonzero ones only: <c>exits</c> and <c>exits/&lt;reason&gt;</c> summed over its
    /// vCPUs, then whatever the platform classifies (e.g. <c>hypercall/memory_op</c>, <c>exception/13</c>).
    /// </summary>
    public static IReadOnlyList<PerfCounter> Of(Domain d)
    {
        var list = new List<PerfCounter>();
        var vcpus = d.Vcpus;
        list.Add(new PerfCounter("exits", vcpus.Sum(v => v.ExitCount)));
        foreach (var reason in Enum.GetValues<ExitReason>())
        {
            long n = vcpus.Sum(v => v.Exits[reason]);
            if (n != 0) list.Add(new PerfCounter($"exits/{reason.ToString().ToLowerInvariant()}", n));
        }
        if (d.HasPlatform && d.Platform is IPerfCounterSource src)
            list.AddRange(src.PerfCounters().Where(c => c.Value != 0));
        return list;
    }
}
