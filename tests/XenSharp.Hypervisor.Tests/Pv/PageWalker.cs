using XenSharp.Accel;

namespace XenSharp.Hypervisor.Tests.Pv;

/// <summary>A 4-level x86-64 page-table walk over guest memory, independent of the builder's code.</summary>
internal static class PageWalker
{
    public sealed record Translation(ulong Pfn, bool Writable, ulong L1Entry, ulong[] UpperEntries);

    public static Translation? Walk(GuestMemory mem, ulong cr3, ulong va)
    {
        ulong table = cr3 & X86.PteAddressMask;
        var uppers = new ulong[3];
        bool writable = true;
        for (int level = 3; level >= 0; level--)
        {
            int index = (int)((va >> (12 + 9 * level)) & 511);
            ulong entry = mem.ReadUInt64(table + (ulong)index * 8);
            if ((entry & X86.PtePresent) == 0) return null;
            if ((entry & X86.PtePse) != 0 && level > 0) throw new InvalidOperationException("unexpected large page");
            writable &= (entry & X86.PteRw) != 0;
            if (level == 0) return new Translation((entry & X86.PteAddressMask) >> 12, writable, entry, uppers);
            uppers[3 - level] = entry;
            table = entry & X86.PteAddressMask;
        }
        return null;
    }
}
