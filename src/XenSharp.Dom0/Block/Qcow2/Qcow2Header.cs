using System.Buffers.Binary;
using System.Text;

namespace XenSharp.Dom0.Block.Qcow2;

/// <summary>
/// The qcow2 header (QEMU's docs/interop/qcow2.txt), versions 2 and 3, validated at open so that later I/O can
/// trust the table locations: everything refused here is refused with a message naming the field or feature bit.
/// </summary>
internal sealed class Qcow2Header
{
    public const uint Magic = 0x514649FB; // "QFI\xfb"
    private const int V2Length = 72, V3Length = 104;
    /// <summary>QEMU's own limits (32 MiB of L1 table, 8 MiB of refcount table): beyond them an image is absurd.</summary>
    public const long MaxL1Bytes = 32 << 20, MaxRefcountTableBytes = 8 << 20;
    public const int MaxBackingNameLength = 1023;
    /// <summary>Offset of refcount_table_offset (u64) followed by refcount_table_clusters (u32): rewritten together.</summary>
    public const int RefcountTableField = 48;
    private const int AutoclearField = 88;
    private const uint ExtEnd = 0, ExtBackingFormat = 0xE2792ACA;

    private static readonly string[] s_incompatible =
    [
        "dirty: refcounts may be stale (lazy refcounts); repair with qemu-img check -r all",
        "corrupt: QEMU found the image corrupt; repair with qemu-img check -r all",
        "external data file",
        "compression type other than zlib",
        "extended L2 entries (subclusters)",
    ];

    public int Version { get; private init; }
    public int ClusterBits { get; private init; }
    public long ClusterSize => 1L << ClusterBits;
    public long Size { get; private init; }
    public long L1Offset { get; private init; }
    public int L1Size { get; private init; }
    public long RefcountTableOffset { get; private init; }
    public int RefcountTableClusters { get; private init; }
    public int RefcountOrder { get; private init; }
    public ulong Autoclear { get; private init; }
    public string? BackingFile { get; private init; }
    public string? BackingFormat { get; private init; }
    public int Snapshots { get; private init; }

    public static long Align(long v, long cluster) => (v + cluster - 1) & ~(cluster - 1);

    /// <summary>Reads and validates the header of <paramref name="file"/>; throws <see cref="DiskImageException"/>.</summary>
    public static Qcow2Header Read(Qcow2File file)
    {
        string p = file.Path;
        if (file.Length < V2Length) throw Bad(p, $"{file.Length} bytes is too short for a qcow2 header");
        var h = file.Read(0, V3Length);
        if (BinaryPrimitives.ReadUInt32BigEndian(h) != Magic) throw Bad(p, "no qcow2 magic (QFI\\xfb): not a qcow2 image");
        uint version = U32(h, 4);
        if (version is not (2 or 3)) throw Bad(p, $"qcow2 version {version} is not supported (2 and 3 are)");
        uint clusterBits = U32(h, 20);
        if (clusterBits is < 9 or > 21) throw Bad(p, $"cluster_bits {clusterBits} is outside 9..21");
        long cs = 1L << (int)clusterBits;
        if (U32(h, 32) != 0) throw Bad(p, $"encrypted images (crypt_method {U32(h, 32)}) are not supported");

        ulong incompatible = 0, autoclear = 0;
        uint refcountOrder = 4, headerLength = V2Length;
        if (version == 3)
        {
            incompatible = U64(h, 72);
            autoclear = U64(h, AutoclearField);
            refcountOrder = U32(h, 96);
            headerLength = U32(h, 100);
            for (int bit = 0; bit < 64; bit++)
                if ((incompatible & (1UL << bit)) != 0)
                    throw Bad(p, $"incompatible feature bit {bit} ({(bit < s_incompatible.Length ? s_incompatible[bit] : "unknown")}) is not supported");
            if (refcountOrder > 6) throw Bad(p, $"refcount_order {refcountOrder} is above 6");
            if (headerLength < V3Length || headerLength % 8 != 0 || headerLength > cs)
                throw Bad(p, $"header_length {headerLength} is invalid");
        }

        var cluster0 = file.Read(0, (int)Math.Min(cs, file.Length));
        var size = U64(h, 24);
        uint l1Size = U32(h, 36);
        long l1Off = (long)Math.Min(U64(h, 40), long.MaxValue);
        long rtOff = (long)Math.Min(U64(h, 48), long.MaxValue);
        uint rtClusters = U32(h, 56);
        long l2Coverage = cs * (cs / 8);

        if (size > long.MaxValue / 2) throw Bad(p, $"virtual size {size} is absurd");
        if ((long)l1Size * 8 > MaxL1Bytes) throw Bad(p, $"L1 table of {l1Size} entries is larger than {MaxL1Bytes >> 20} MiB");
        if ((long)l1Size < ((long)size + l2Coverage - 1) / l2Coverage)
            throw Bad(p, $"L1 table of {l1Size} entries is too small for a virtual size of {size} bytes");
        CheckTable(p, "L1 table", l1Off, (long)l1Size * 8, cs, file.Length);
        if (rtClusters == 0 || rtClusters * cs > MaxRefcountTableBytes)
            throw Bad(p, $"refcount table of {rtClusters} clusters is empty or larger than {MaxRefcountTableBytes >> 20} MiB");
        CheckTable(p, "refcount table", rtOff, rtClusters * cs, cs, file.Length);
        if (l1Size > 0 && l1Off < rtOff + rtClusters * cs && rtOff < l1Off + l1Size * 8L)
            throw Bad(p, $"L1 table at {l1Off} overlaps the refcount table at {rtOff}");

        string? backing = ReadBackingName(p, h, cluster0, cs);
        string? backingFormat = ReadExtensions(p, cluster0, (int)headerLength);
        return new Qcow2Header
        {
            Version = (int)version, ClusterBits = (int)clusterBits, Size = (long)size,
            L1Offset = l1Off, L1Size = (int)l1Size, RefcountTableOffset = rtOff, RefcountTableClusters = (int)rtClusters,
            RefcountOrder = (int)refcountOrder, Autoclear = autoclear, BackingFile = backing, BackingFormat = backingFormat,
            Snapshots = (int)Math.Min(U32(h, 60), int.MaxValue),
        };
    }

    /// <summary>Clears the autoclear feature bits (bitmaps, raw external data): a writer that does not maintain them must.</summary>
    public static void ClearAutoclear(Qcow2File file)
    {
        file.WriteU64(AutoclearField, 0);
        file.Sync();
    }

    private static void CheckTable(string p, string what, long offset, long bytes, long cs, long fileLength)
    {
        if (offset % cs != 0) throw Bad(p, $"{what} offset {offset} is not cluster-aligned");
        if (bytes == 0) return;
        if (offset < cs) throw Bad(p, $"{what} at {offset} overlaps the header cluster");
        if (offset > fileLength - bytes) throw Bad(p, $"{what} at {offset} ({bytes} bytes) lies past the end of the file ({fileLength} bytes)");
    }

    private static string? ReadBackingName(string p, byte[] h, byte[] cluster0, long cs)
    {
        ulong off = U64(h, 8);
        uint len = U32(h, 16);
        if (off == 0) return null;
        if (len == 0 || len > MaxBackingNameLength || off + len > (ulong)Math.Min(cs, cluster0.Length))
            throw Bad(p, $"backing file name ({len} bytes at {off}) is not inside the header cluster");
        return Encoding.UTF8.GetString(cluster0, (int)off, (int)len);
    }

    /// <summary>Walks the header extensions; returns the backing file format, if recorded.</summary>
    private static string? ReadExtensions(string p, byte[] cluster0, int at)
    {
        string? format = null;
        while (true)
        {
            if (at > cluster0.Length - 8) throw Bad(p, "header extensions run past the header cluster");
            uint type = U32(cluster0, at), len = U32(cluster0, at + 4);
            if (type == ExtEnd) return format;
            if (len > cluster0.Length - at - 8) throw Bad(p, $"header extension 0x{type:x8} of {len} bytes runs past the header cluster");
            if (type == ExtBackingFormat) format = Encoding.UTF8.GetString(cluster0, at + 8, (int)len);
            at += 8 + (int)((len + 7) & ~7u);
        }
    }

    private static uint U32(byte[] b, int at) => BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(at));
    private static ulong U64(byte[] b, int at) => BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(at));
    private static DiskImageException Bad(string path, string why) => new($"{path}: {why}");
}
