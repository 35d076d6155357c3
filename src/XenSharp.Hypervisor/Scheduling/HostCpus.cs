using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Hypervisor.Scheduling;

/// <summary>Hard affinity of host threads (vCPU pinning) and where a thread last ran.</summary>
public static partial class HostCpus
{
    public static int Count => Environment.ProcessorCount;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int sched_setaffinity(int pid, nuint size, ulong* mask);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int sched_getaffinity(int pid, nuint size, ulong* mask);

    private const int MaskWords = 16; // 1024 CPUs, the kernel's usual CONFIG_NR_CPUS ceiling.

    public static unsafe void SetAffinity(int tid, IReadOnlyCollection<int> cpus)
    {
        if (cpus.Count == 0) throw new ArgumentException("an affinity needs at least one CPU");
        var mask = stackalloc ulong[MaskWords];
        foreach (int c in cpus)
        {
            if (c < 0 || c >= MaskWords * 64) throw new ArgumentException($"CPU {c} is out of range");
            mask[c / 64] |= 1UL << (c % 64);
        }
        Posix.Check(sched_setaffinity(tid, (nuint)(MaskWords * 8), mask), $"sched_setaffinity(tid {tid})");
    }

    public static unsafe IReadOnlyList<int> GetAffinity(int tid)
    {
        var mask = stackalloc ulong[MaskWords];
        Posix.Check(sched_getaffinity(tid, (nuint)(MaskWords * 8), mask), $"sched_getaffinity(tid {tid})");
        var cpus = new List<int>();
        for (int i = 0; i < MaskWords * 64; i++)
            if ((mask[i / 64] & (1UL << (i % 64))) != 0) cpus.Add(i);
        return cpus;
    }

    /// <summary>The host CPU the thread last ran on (field 39 of /proc/self/task/TID/stat), or -1.</summary>
    public static int LastCpu(int tid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
            // The command name may contain spaces; fields are counted after its closing parenthesis.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[39 - 3]);
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }

    /// <summary>Formats a CPU set as Xen does: "all" or ranges such as "0-3,5".</summary>
    public static string Format(IReadOnlyCollection<int> cpus)
    {
        if (cpus.Count >= Count && Enumerable.Range(0, Count).All(cpus.Contains)) return "all";
        var sorted = cpus.OrderBy(c => c).ToArray();
        var parts = new List<string>();
        for (int i = 0; i < sorted.Length;)
        {
            int j = i;
            while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1) j++;
            parts.Add(i == j ? $"{sorted[i]}" : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }
        return string.Join(',', parts);
    }
}
