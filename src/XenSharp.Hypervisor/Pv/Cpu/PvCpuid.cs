using System.Runtime.Intrinsics.X86;
using XenSharp.Accel;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// The CPUID a PV guest sees (through Xen's forced-emulation prefix, and set as the accelerator's plain CPUID table):
/// the host's leaves with what Xen hides from PV guests removed, the hypervisor bit set, and Xen's leaves at 0x40000000.
/// XSAVE/AVX and FSGSBASE are hidden as well (the vCPU runs with CR4.OSXSAVE and CR4.FSGSBASE clear). Feature flags are
/// then intersected with what the accelerator can execute (<see cref="IAccelerator.FilterCpuid"/>): the software CPU has
/// no SSE3 and up, for instance, and the guest must not be told otherwise.
/// </summary>
public static class PvCpuid
{
    public const uint XenBase = 0x40000000;

    public static (uint Eax, uint Ebx, uint Ecx, uint Edx) Query(IAccelerator accelerator, uint leaf, uint subleaf)
    {
        var (a, b, c, d) = Policy(leaf, subleaf);
        if (leaf >= XenBase && leaf < XenBase + 0x10000) return (a, b, c, d);
        var e = accelerator.FilterCpuid(new CpuidEntry(leaf, subleaf, a, b, c, d, IsIndexed(leaf)));
        return (e.Eax, e.Ebx, e.Ecx, e.Edx);
    }

    private static bool IsIndexed(uint leaf) => leaf is 4 or 7 or 0xb or 0xd;

    private static (uint Eax, uint Ebx, uint Ecx, uint Edx) Policy(uint leaf, uint subleaf)
    {
        if (leaf >= XenBase && leaf < XenBase + 0x10000) return Xen(leaf - XenBase, subleaf);
        var (a, b, c, d) = Host(leaf, subleaf);
        uint maxBasic = Host(0, 0).Eax;
        if (leaf < 0x80000000 && leaf > Math.Min(maxBasic, 0xdu)) return (0, 0, 0, 0);
        switch (leaf)
        {
            case 0:
                return ((uint)Math.Min(a, 0xd), b, c, d);
            case 1:
                // edx: hide PSE(3), MTRR(12), PGE(13), PSE36(17), DS(21), ACPI(22), HTT(28)? keep; ecx: hide MONITOR(3), VMX(5), SMX(6),
                // EST(7), TM2(8), PCID(17), X2APIC(21), TSC_DEADLINE(24), XSAVE(26), OSXSAVE(27), AVX(28), F16C(29), RDRAND(30: the
                // software CPU has none); set hypervisor(31).
                d &= ~((1u << 3) | (1u << 12) | (1u << 13) | (1u << 17) | (1u << 21) | (1u << 22) | (1u << 29));
                c &= ~((1u << 3) | (1u << 5) | (1u << 6) | (1u << 7) | (1u << 8) | (1u << 12) | (1u << 17) | (1u << 21) | (1u << 24) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 29) | (1u << 30));
                c |= 1u << 31;
                return (a, b, c, d);
            case 5: case 6:
                return (0, 0, 0, 0);
            case 7:
                if (subleaf != 0) return (0, 0, 0, 0);
                // keep BMI1(3), BMI2(8), ERMS(9), ADX(19), CLFLUSHOPT(23), SHA(29) in ebx; nothing in ecx/edx but MD_CLEAR-type bits are harmless to drop.
                b &= (1u << 3) | (1u << 8) | (1u << 9) | (1u << 19) | (1u << 23) | (1u << 29);
                return (0, b, 0, 0);
            case 0xa: case 0xb: case 0xd:
                return (0, 0, 0, 0);
            case 0x80000001:
                // hide 1 GiB pages (26), SVM (ecx 2), keep syscall/NX/LM/rdtscp.
                d &= ~(1u << 26);
                c &= ~((1u << 2) | (1u << 3));
                return (a, b, c, d);
            default:
                return (a, b, c, d);
        }
    }

    private static (uint, uint, uint, uint) Xen(uint leaf, uint subleaf) => leaf switch
    {
        0 => (XenBase + 5, 0x566e6558, 0x65584d4d, 0x4d4d566e), // "XenVMMXenVMM"
        1 => ((uint)(XenVersion.Major << 16 | XenVersion.Minor), 0, 0, 0),
        2 => (1, 0x40000000, 1 /* MMU_PT_UPDATE_PRESERVE_AD */, 0),
        3 => subleaf == 0 ? (0u, 0u, 0u, 0u) : (0u, 0u, 0u, 0u),
        4 => (0, 0, 0, 0),
        5 => (0, 48, 0, 0),
        _ => (0, 0, 0, 0),
    };

    private static (uint Eax, uint Ebx, uint Ecx, uint Edx) Host(uint leaf, uint subleaf)
    {
        if (!X86Base.IsSupported) return (0, 0, 0, 0);
        var (a, b, c, d) = X86Base.CpuId((int)leaf, (int)subleaf);
        return ((uint)a, (uint)b, (uint)c, (uint)d);
    }

    /// <summary>The table given to the accelerator for plain CPUID instructions.</summary>
    public static IReadOnlyList<CpuidEntry> Table(IAccelerator accelerator)
    {
        var list = new List<CpuidEntry>();
        uint max = Query(accelerator, 0, 0).Eax;
        for (uint l = 0; l <= max; l++)
        {
            bool indexed = IsIndexed(l);
            for (uint s = 0; s < (indexed ? 4u : 1u); s++)
            {
                var (a, b, c, d) = Query(accelerator, l, s);
                list.Add(new CpuidEntry(l, s, a, b, c, d, indexed));
            }
        }
        for (uint l = XenBase; l <= XenBase + 5; l++) { var (a, b, c, d) = Query(accelerator, l, 0); list.Add(new CpuidEntry(l, 0, a, b, c, d)); }
        uint maxExt = Host(0x80000000, 0).Eax;
        for (uint l = 0x80000000; l <= Math.Min(maxExt, 0x80000008u); l++) { var (a, b, c, d) = Query(accelerator, l, 0); list.Add(new CpuidEntry(l, 0, a, b, c, d)); }
        return list;
    }
}
