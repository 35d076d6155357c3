namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// Validation of guest segment descriptors (GDT/LDT entries) for a 64-bit PV guest whose kernel runs in ring 3:
/// not-present entries pass; code/data entries pass with their DPL raised to 3; system entries are refused except
/// the all-zero-type second half of a 16-byte descriptor and call gates, whose DPL and target RPL are forced to 3.
/// </summary>
public static class Descriptors
{
    private const ulong PresentBit = 1UL << 47, SBit = 1UL << 44, DplMask = 3UL << 45;

    public static bool Check(ulong desc, out ulong fixedDesc)
    {
        fixedDesc = desc;
        if ((desc & PresentBit) == 0) return true;
        int type = (int)((desc >> 40) & 0xf);
        if ((desc & SBit) != 0)
        {
            fixedDesc = desc | DplMask;
            return true;
        }
        switch (type)
        {
            case 0:
                return true;
            case 0xc: // 64-bit call gate: target must be a guest selector (not Xen's reserved ones); DPL and RPL forced to 3
                ushort sel = (ushort)((desc >> 16) & 0xffff);
                if ((sel >> 3) >= PvLayout.FirstReservedGdtEntry && (sel & 4) == 0 && sel != PvLayout.Ring3Cs64 && sel != PvLayout.Ring3Cs32) return false;
                fixedDesc = (desc | DplMask) | (3UL << 16);
                return true;
            default:
                return false;
        }
    }
}
