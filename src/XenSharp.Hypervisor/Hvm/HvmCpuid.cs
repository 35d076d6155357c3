using System.Runtime.Intrinsics.X86;
using XenSharp.Accel;

namespace XenSharp.Hypervisor.Hvm;

/// <summary>
/// The CPUID an HVM guest sees: the host's leaves (basic up to 0xd, extended up to 0x80000008) with the hypervisor bit
/// set and OSXSAVE clear (vCPUs start with CR4.OSXSAVE clear), feature flags intersected with what the accelerator can
/// execute (<see cref="IAccelerator.FilterCpuid"/>).
/// </summary>
public static class HvmCpuid
{
    public static IReadOnlyList<CpuidEntry> Table(IAccelerator accelerator)
    {
        var list = new List<CpuidEntry>();
        if (!X86Base.IsSupported) return list;
        uint max = Math.Min(Host(0, 0).Eax, 0xdu);
        for (uint l = 0; l <= max; l++)
        {
            bool indexed = l is 4 or 7 or 0xb or 0xd;
            for (uint s = 0; s < (indexed ? 4u : 1u); s++)
            {
                var e = Host(l, s) with { IndexSignificant = indexed };
                if (l == 0) e = e with { Eax = max };
                if (l == 1) e = e with { Ecx = (e.Ecx & ~(1u << 27)) | (1u << 31) };
                list.Add(accelerator.FilterCpuid(e));
            }
        }
        uint maxExt = Math.Min(Host(0x80000000, 0).Eax, 0x80000008u);
        for (uint l = 0x80000000; l <= maxExt; l++) list.Add(accelerator.FilterCpuid(Host(l, 0)));
        return list;
    }

    private static CpuidEntry Host(uint leaf, uint subleaf)
    {
        var (a, b, c, d) = X86Base.CpuId((int)leaf, (int)subleaf);
        return new CpuidEntry(leaf, subleaf, (uint)a, (uint)b, (uint)c, (uint)d);
    }
}
