namespace XenSharp.Accel;

/// <summary>
/// Which CPUID bits are feature flags (something the CPU must be able to execute or provide) rather than descriptions
/// (vendor, family/model, cache and topology, sizes). Used to intersect a VMM's CPUID policy with what an accelerator
/// supports (<see cref="IAccelerator.FilterCpuid"/>).
/// </summary>
public static class CpuidFeatures
{
    /// <summary>Leaf 1 ECX bits the VMM owns whatever the back end: OSXSAVE (27, mirrors the guest's CR4) and hypervisor (31).</summary>
    private const uint Leaf1EcxVmmOwned = (1u << 27) | (1u << 31);

    /// <summary>The feature-flag bits of each register of (<paramref name="leaf"/>, <paramref name="subleaf"/>); zero where a register is descriptive.</summary>
    public static (uint Eax, uint Ebx, uint Ecx, uint Edx) FlagMask(uint leaf, uint subleaf) => (leaf, subleaf) switch
    {
        (1, _) => (0, 0, ~Leaf1EcxVmmOwned, ~0u),
        (7, 0) => (0, ~0u, ~0u, ~0u),
        (7, 1) => (~0u, 0, 0, 0),
        (0xd, 0) => (~0u, 0, 0, ~0u),   // XCR0 components
        (0xd, 1) => (~0u, 0, 0, 0),     // XSAVEOPT/XSAVEC/XSAVES...
        (0x80000001, _) => (0, 0, ~0u, ~0u),
        (0x80000007, _) => (0, 0, 0, ~0u),
        (0x80000008, _) => (0, ~0u, 0, 0),
        _ => (0, 0, 0, 0),
    };

    /// <summary>
    /// <paramref name="entry"/> with each feature flag that <paramref name="supported"/> lacks cleared (all flags when the
    /// back end does not list the leaf); descriptive bits pass unchanged.
    /// </summary>
    public static CpuidEntry Intersect(CpuidEntry entry, CpuidEntry? supported)
    {
        var (ma, mb, mc, md) = FlagMask(entry.Function, entry.Index);
        var s = supported ?? default;
        return entry with
        {
            Eax = entry.Eax & (~ma | s.Eax),
            Ebx = entry.Ebx & (~mb | s.Ebx),
            Ecx = entry.Ecx & (~mc | s.Ecx),
            Edx = entry.Edx & (~md | s.Edx),
        };
    }

    /// <summary>The entry of <paramref name="table"/> that answers CPUID(<paramref name="leaf"/>, <paramref name="subleaf"/>), as a CPU looks it up.</summary>
    public static CpuidEntry? Find(IReadOnlyList<CpuidEntry> table, uint leaf, uint subleaf)
    {
        foreach (var e in table)
            if (e.Function == leaf && (!e.IndexSignificant || e.Index == subleaf)) return e;
        return null;
    }
}
