using System.Globalization;

namespace XenSharp.Toolstack.Config;

/// <summary>
/// One comma-separated element of Xen's cpu list syntax: a cpu or range ("3", "0-3"), a NUMA node
/// or node range ("nodes:0-1", "node:1"), or "all"; a leading '^' removes instead of adds.
/// </summary>
public sealed record CpuAffinityTerm(bool Exclude, bool Nodes, bool All, int First, int Last)
{
    public override string ToString()
    {
        var body = All ? "all" : First == Last ? First.ToString(CultureInfo.InvariantCulture) : $"{First}-{Last}";
        return (Exclude ? "^" : "") + (Nodes ? "nodes:" : "") + body;
    }
}

/// <summary>
/// A pcpu set in xl's syntax, e.g. "all", "0-3,5,^1", "nodes:0". Terms are applied left to right
/// (so "0-3,^1" = {0,2,3} but "^1,0-3" = {0,1,2,3}), exactly like xl. Node terms need the host's
/// topology, so the set is kept symbolic and resolved with <see cref="Resolve"/>.
/// </summary>
public sealed record CpuAffinity(ValueList<CpuAffinityTerm> Terms)
{
    /// <summary>Upper bound on cpu/node ids we accept; keeps a typo like "0-99999999" from expanding forever.</summary>
    public const int MaxId = 65535;

    public static CpuAffinity AllCpus { get; } = new(ValueList.Of(new CpuAffinityTerm(false, false, true, 0, 0)));

    [System.Text.Json.Serialization.JsonIgnore] public bool UsesNodes => Terms.Any(t => t.Nodes && !t.All);

    public override string ToString() => string.Join(",", Terms);

    /// <summary>Parses xl's cpu list syntax; throws <see cref="FormatException"/> with a helpful message.</summary>
    public static CpuAffinity Parse(string text) =>
        TryParse(text, out var result, out var error) ? result : throw new FormatException(error);

    public static bool TryParse(string text, out CpuAffinity result, out string error)
    {
        result = AllCpus;
        var terms = new List<CpuAffinityTerm>();
        // xl tokenises with strtok(",") so empty elements ("0,,1", trailing ",") are skipped.
        foreach (var raw in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var s = raw.AsSpan();
            var exclude = s.StartsWith("^");
            if (exclude) s = s[1..];
            var nodes = false;
            if (s.StartsWith("nodes:")) { nodes = true; s = s["nodes:".Length..]; }
            else if (s.StartsWith("node:")) { nodes = true; s = s["node:".Length..]; }

            if (s.SequenceEqual("all"))
            {
                if (exclude)
                {
                    error = $"'{raw}': \"^\" can't be combined with \"all\"";
                    return false;
                }
                terms.Add(new CpuAffinityTerm(false, nodes, true, 0, 0));
                continue;
            }

            var dash = s.IndexOf('-');
            var firstText = dash < 0 ? s : s[..dash];
            var lastText = dash < 0 ? s : s[(dash + 1)..];
            if (!TryId(firstText, out var first) || !TryId(lastText, out var last))
            {
                error = $"'{raw}' is not a valid {(nodes ? "node" : "cpu")} or range: expected N, N-M, ^N, nodes:N or all";
                return false;
            }
            if (last < first)
            {
                error = $"'{raw}': range end {last} is below its start {first}";
                return false;
            }
            terms.Add(new CpuAffinityTerm(exclude, nodes, false, first, last));
        }
        if (terms.Count == 0)
        {
            error = "empty cpu list: expected e.g. \"all\", \"0-3,^1\" or \"nodes:0\"";
            return false;
        }
        result = new CpuAffinity(terms.ToValueList());
        error = "";
        return true;
    }

    private static bool TryId(ReadOnlySpan<char> s, out int id)
    {
        id = 0;
        if (s.IsEmpty) return false;
        foreach (var c in s)
            if (!char.IsAsciiDigit(c)) return false;
        return int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out id) && id <= MaxId;
    }

    /// <summary>
    /// Expands to concrete pcpu numbers for a host with <paramref name="hostCpuCount"/> cpus.
    /// <paramref name="nodeCpus"/> maps a NUMA node to its cpus (required when <see cref="UsesNodes"/>).
    /// Cpus beyond the host are dropped, as libxl's bitmap would.
    /// </summary>
    public SortedSet<int> Resolve(int hostCpuCount, Func<int, IEnumerable<int>>? nodeCpus = null)
    {
        var set = new SortedSet<int>();
        foreach (var t in Terms)
        {
            if (t.All)
            {
                set.UnionWith(Enumerable.Range(0, hostCpuCount));
                continue;
            }
            for (var id = t.First; id <= t.Last; id++)
            {
                IEnumerable<int> cpus = t.Nodes
                    ? (nodeCpus ?? throw new InvalidOperationException($"'{this}' names NUMA nodes; a node-to-cpu map is needed"))(id)
                    : [id];
                foreach (var cpu in cpus)
                {
                    if (cpu >= hostCpuCount) continue;
                    if (t.Exclude) set.Remove(cpu);
                    else set.Add(cpu);
                }
            }
        }
        return set;
    }
}

/// <summary>
/// The <c>cpus=</c> / <c>cpus_soft=</c> setting. The string form applies one set to every vCPU;
/// the list form (<c>cpus=["2","3-5"]</c>) gives vCPU i the i-th set, and vCPUs past the end of the
/// list keep the default (any cpu).
/// </summary>
public sealed record VcpuAffinity(bool IsPerVcpu, ValueList<CpuAffinity> Sets)
{
    public static VcpuAffinity ForAll(CpuAffinity set) => new(false, ValueList.Of(set));

    public static VcpuAffinity PerVcpu(IEnumerable<CpuAffinity> sets) => new(true, sets.ToValueList());

    /// <summary>The set for a given vCPU, or null when that vCPU is unconstrained.</summary>
    public CpuAffinity? ForVcpu(int vcpu) =>
        IsPerVcpu ? (vcpu < Sets.Count ? Sets[vcpu] : null) : Sets[0];
}
