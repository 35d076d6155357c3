namespace XenSharp.Dom0.Block.Qcow2;

internal enum Qcow2ClusterKind { Unallocated, Zero, Normal, Compressed }

/// <summary>
/// A decoded L2 entry. Standard: bit 0 reads-as-zero (v3), bits 9-55 the cluster-aligned host offset, bit 63
/// COPIED (refcount exactly one: writable in place). Compressed (bit 62): host byte offset in the low
/// 62-(cluster_bits-8) bits, then the count of 512-byte sectors beyond the first.
/// </summary>
internal readonly record struct Qcow2Entry(Qcow2ClusterKind Kind, long Host, int CompressedSectors, bool Copied)
{
    public const ulong CopiedFlag = 1UL << 63, CompressedFlag = 1UL << 62, ZeroFlag = 1;
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    private const ulong L1Reserved = 0x7F00_0000_0000_01FFUL, L2Reserved = 0x3F00_0000_0000_01FEUL;

    /// <summary>Holds a host cluster whose refcount the entry owns (released when the entry is replaced).</summary>
    public bool HoldsClusters => Kind is Qcow2ClusterKind.Compressed || Host != 0;

    /// <summary>Host bytes a compressed cluster may span: from its sector to the end of its last sector.</summary>
    public long CompressedStart => Host & ~511L;
    public int CompressedSpan => (CompressedSectors + 1) * 512;

    public static Qcow2Entry DecodeL2(ulong e, int clusterBits)
    {
        if ((e & CompressedFlag) != 0)
        {
            int x = 62 - (clusterBits - 8);
            long host = (long)(e & ((1UL << x) - 1));
            int sectors = (int)((e >> x) & ((1UL << (clusterBits - 8)) - 1));
            if (host == 0 || (e & CopiedFlag) != 0) throw new Qcow2CorruptException($"bad compressed L2 entry 0x{e:x16}");
            return new(Qcow2ClusterKind.Compressed, host, sectors, false);
        }
        long off = CheckedOffset(e, L2Reserved, clusterBits, "L2");
        bool copied = (e & CopiedFlag) != 0;
        if ((e & ZeroFlag) != 0) return new(Qcow2ClusterKind.Zero, off, 0, copied);
        return new(off == 0 ? Qcow2ClusterKind.Unallocated : Qcow2ClusterKind.Normal, off, 0, copied);
    }

    /// <summary>The L2 table offset of an L1 entry (0: none).</summary>
    public static long L1Table(ulong e, int clusterBits) => CheckedOffset(e, L1Reserved, clusterBits, "L1");

    private static long CheckedOffset(ulong e, ulong reserved, int clusterBits, string table)
    {
        long off = (long)(e & OffsetMask);
        if ((e & reserved) != 0 || (off & ((1L << clusterBits) - 1)) != 0)
            throw new Qcow2CorruptException($"bad {table} entry 0x{e:x16} (reserved bits set or offset not cluster-aligned)");
        return off;
    }
}
