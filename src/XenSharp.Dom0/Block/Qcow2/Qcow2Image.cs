using System.Buffers.Binary;
using System.IO.Compression;

namespace XenSharp.Dom0.Block.Qcow2;

/// <summary>
/// A qcow2 image (versions 2 and 3) behind a vbd: reads through the L1/L2 tables (unallocated clusters from the
/// backing file or zeros, v3 zero clusters, zlib-compressed clusters), writes in place to clusters it alone owns
/// (COPIED and refcount 1) and copy-on-write everywhere else: unallocated, zero, compressed, and clusters or L2
/// tables shared with internal snapshots, which are thus never modified.
///
/// Crash safety: a crash at any point leaves at worst leaked clusters (qemu-img check -r leaks), never a pointer to
/// unwritten or unreferenced data. Every allocating write goes:
///   1. refcounts of the new clusters up, fdatasync   (a crash now: counted clusters nothing points to = leaks)
///   2. cluster data written, fdatasync               (still nothing points to it)
///   3. L2 entries pointed at the new clusters        (their target is durable and counted)
///   4. if the replaced clusters held a refcount: fdatasync, then their refcounts down (a crash before: leaks)
/// A new or copied L2 table follows the same order one level up (count, write the table, sync, L1 entry). A guest
/// flush is one more fdatasync, after all of that. Writes in place change no metadata.
///
/// Discard is not offered: freeing clusters would need their space reused or punched, and turning them into zero
/// clusters saves nothing until then; blkfront then simply does not send discards.
/// </summary>
public sealed class Qcow2Image : IDiskImage
{
    /// <summary>Backing chains deeper than this are refused (a loop of read-only images would otherwise recurse).</summary>
    public const int MaxBackingDepth = 16;
    private readonly Qcow2File _file;
    private readonly Qcow2Header _h;
    private readonly ulong[] _l1;
    private readonly Qcow2TableCache _l2;
    private readonly Qcow2Refcounts _refcounts;
    private readonly IDiskImage? _backing;
    private readonly object _lock = new();
    private readonly int _cs, _l2Bits;
    private (ulong Entry, byte[] Data)? _inflated; // the last decompressed cluster: sequential reads inflate it once

    private Qcow2Image(Qcow2File file, Qcow2Header h, IDiskImage? backing)
    {
        _file = file;
        _h = h;
        _backing = backing;
        _cs = (int)h.ClusterSize;
        _l2Bits = h.ClusterBits - 3;
        var raw = file.Read(h.L1Offset, h.L1Size * 8);
        _l1 = new ulong[h.L1Size];
        for (int i = 0; i < _l1.Length; i++) _l1[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        _l2 = new Qcow2TableCache(file, _cs);
        _refcounts = new Qcow2Refcounts(file, h);
        Note = $"qcow2 v{h.Version}, {_cs >> 10} KiB clusters" +
            (backing is null ? "" : $", backing {backing.Path} ({backing.Format})") +
            (h.Snapshots > 0 ? $", {h.Snapshots} internal snapshot(s) kept" : "");
    }

    public string Path => _file.Path;
    public string Format => "qcow2";
    public bool ReadOnly => _file.ReadOnly;
    public bool IsBlockDevice => false;
    public bool Direct => false;
    public string? Note { get; }
    public long SizeBytes => _h.Size;
    public ulong Sectors => (ulong)_h.Size / Blkif.SectorSize;
    public bool CanDiscard => false;
    public int Version => _h.Version;
    public IDiskImage? Backing => _backing;
    internal Qcow2File File => _file;

    /// <summary>Opens a qcow2 image and its backing chain (read-only, shared locks); throws <see cref="DiskImageException"/>.</summary>
    public static Qcow2Image Open(string path, bool readOnly, uint domid) => Open(path, readOnly, domid, depth: 0);

    internal static Qcow2Image Open(string path, bool readOnly, uint domid, int depth)
    {
        if (depth > MaxBackingDepth) throw new DiskImageException($"{path}: backing chain deeper than {MaxBackingDepth} images");
        var container = DiskImage.OpenGrowable(path, readOnly, domid);
        var file = new Qcow2File(container);
        IDiskImage? backing = null;
        try
        {
            if (container.IsBlockDevice) throw new DiskImageException($"{path}: qcow2 on a block device is not supported (the image must be able to grow)");
            var h = Qcow2Header.Read(file);
            backing = OpenBacking(path, h, domid, depth);
            if (!readOnly && h.Autoclear != 0) Qcow2Header.ClearAutoclear(file);
            return new Qcow2Image(file, h, backing);
        }
        catch (Exception e) when (e is DiskImageException or IOException)
        {
            backing?.Dispose();
            file.Dispose();
            throw e as DiskImageException ?? new DiskImageException($"{path}: {e.Message}");
        }
    }

    private static IDiskImage? OpenBacking(string path, Qcow2Header h, uint domid, int depth)
    {
        if (h.BackingFile is not { } name) return null;
        string full = System.IO.Path.IsPathRooted(name) ? name
            : System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? "/", name);
        // Never probed: a raw backing file starting with a forged qcow2 header must not be read as qcow2.
        if (h.BackingFormat is null)
            throw new DiskImageException($"{path}: backing file {name} has no recorded format (set it with qemu-img rebase -u -b {name} -F qcow2|raw)");
        if (h.BackingFormat is not ("raw" or "qcow2"))
            throw new DiskImageException($"{path}: backing file format {h.BackingFormat} is not supported (raw or qcow2)");
        if (!System.IO.File.Exists(full)) throw new DiskImageException($"{path}: backing file {full} does not exist");
        return DiskImageFormats.Open(full, h.BackingFormat, readOnly: true, domid, depth + 1);
    }

    public void Read(long offset, Span<byte> dst)
    {
        CheckRange(offset, dst.Length);
        lock (_lock)
        {
            try
            {
                for (int at = 0; at < dst.Length;)
                {
                    int n = Piece(offset + at, dst.Length - at);
                    ReadCluster(offset + at, Lookup(offset + at), dst.Slice(at, n));
                    at += n;
                }
            }
            catch (Exception e) when (IsBadData(e)) { throw new Qcow2CorruptException($"{Path}: {e.Message}"); }
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> src)
    {
        if (ReadOnly) throw new IOException($"{Path} is read-only");
        CheckRange(offset, src.Length);
        lock (_lock)
        {
            try { WriteLocked(offset, src); }
            catch (Exception e) when (IsBadData(e)) { throw new Qcow2CorruptException($"{Path}: {e.Message}"); }
        }
    }

    public void Flush()
    {
        if (ReadOnly) return;
        lock (_lock) _file.Sync();
    }

    public void Discard(long offset, long length) => throw new IOException($"{Path}: discard is not offered on qcow2 images");

    /// <summary>Hostile metadata surfaces as these; each becomes an I/O error of the one request.</summary>
    private static bool IsBadData(Exception e) =>
        e is InvalidDataException or ArgumentException or OverflowException or IndexOutOfRangeException;

    private void CheckRange(long offset, int length)
    {
        if (offset < 0 || offset > _h.Size - length) throw new ArgumentOutOfRangeException(nameof(offset));
    }

    /// <summary>Bytes from <paramref name="guest"/> to the end of its cluster, at most <paramref name="left"/>.</summary>
    private int Piece(long guest, int left) => Math.Min(left, _cs - (int)(guest & (_cs - 1)));

    private (long L1Index, int L2Index) Index(long guest) => (guest >> (_h.ClusterBits + _l2Bits), (int)((guest >> _h.ClusterBits) & ((1 << _l2Bits) - 1)));

    private Qcow2Entry Lookup(long guest)
    {
        var (l1i, l2i) = Index(guest);
        long table = Qcow2Entry.L1Table(_l1[l1i], _h.ClusterBits);
        if (table == 0) return default;
        var l2 = _l2.Get(CheckMetadata(table));
        return Qcow2Entry.DecodeL2(BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(l2i * 8)), _h.ClusterBits);
    }

    /// <summary>Reads the guest bytes <paramref name="dst"/> at <paramref name="guest"/> (within one cluster) as mapped by <paramref name="e"/>.</summary>
    private void ReadCluster(long guest, Qcow2Entry e, Span<byte> dst)
    {
        int inCluster = (int)(guest & (_cs - 1));
        switch (e.Kind)
        {
            case Qcow2ClusterKind.Unallocated: ReadBacking(guest, dst); break;
            case Qcow2ClusterKind.Zero: dst.Clear(); break;
            case Qcow2ClusterKind.Normal: _file.Read(e.Host + inCluster, dst); break;
            case Qcow2ClusterKind.Compressed: Inflate(e).AsSpan(inCluster, dst.Length).CopyTo(dst); break;
        }
    }

    /// <summary>The backing file's bytes; past its end (a smaller backing file) or without one: zeros.</summary>
    private void ReadBacking(long guest, Span<byte> dst)
    {
        long inside = _backing is null ? 0 : Math.Clamp(_backing.SizeBytes - guest, 0, dst.Length);
        if (inside > 0) _backing!.Read(guest, dst[..(int)inside]);
        dst[(int)inside..].Clear();
    }

    private byte[] Inflate(Qcow2Entry e)
    {
        ulong key = (ulong)e.Host ^ ((ulong)e.CompressedSectors << 56);
        if (_inflated is { } last && last.Entry == key) return last.Data;
        var packed = _file.Read(e.Host, e.CompressedSpan - (int)(e.Host & 511));
        var data = new byte[_cs];
        using (var z = new DeflateStream(new MemoryStream(packed), CompressionMode.Decompress))
        {
            int got = 0, n;
            while (got < _cs && (n = z.Read(data, got, _cs - got)) > 0) got += n;
            if (got != _cs) throw new Qcow2CorruptException($"compressed cluster at {e.Host} inflates to {got} bytes, not {_cs}");
        }
        _inflated = (key, data);
        return data;
    }

    /// <summary>A metadata table offset from L1 or an L2 pointer: inside the allocated file, never the header cluster.</summary>
    private long CheckMetadata(long host)
    {
        if (host < _cs || host >= _refcounts.End) throw new Qcow2CorruptException($"table offset {host} lies outside the image file");
        return host;
    }

    private bool Overlaps(long host, long start, long length) => host < start + length && start < host + _cs;

    /// <summary>A cluster this image alone owns and may overwrite: COPIED, refcount 1, and not one of its own fixed tables.</summary>
    private bool WritableInPlace(Qcow2Entry e)
    {
        if (e.Kind != Qcow2ClusterKind.Normal || !e.Copied) return false;
        if (e.Host >= _refcounts.End || Overlaps(e.Host, _h.L1Offset, _h.L1Size * 8L) ||
            Overlaps(e.Host, _refcounts.TableOffset, _refcounts.TableBytes))
            throw new Qcow2CorruptException($"data cluster at {e.Host} overlaps metadata or lies past the end of the file");
        return _refcounts.Get(e.Host) == 1;
    }

    private sealed record Cow(long Guest, byte[] Data, Qcow2Entry Old);

    private void WriteLocked(long offset, ReadOnlySpan<byte> src)
    {
        var cow = new List<Cow>();
        for (int at = 0; at < src.Length;)
        {
            long guest = offset + at;
            int n = Piece(guest, src.Length - at), inCluster = (int)(guest & (_cs - 1));
            var e = Lookup(guest);
            if (WritableInPlace(e)) _file.Write(e.Host + inCluster, src.Slice(at, n));
            else
            {
                var data = new byte[_cs];
                if (n < _cs) ReadCluster(guest - inCluster, e, data);
                src.Slice(at, n).CopyTo(data.AsSpan(inCluster));
                cow.Add(new Cow(guest - inCluster, data, e));
            }
            at += n;
        }
        if (cow.Count > 0) CopyOnWrite(cow);
    }

    /// <summary>Steps 1-4 of the class comment for every cluster of one request at once.</summary>
    private void CopyOnWrite(List<Cow> cow)
    {
        var tables = cow.Select(c => WritableL2(c.Guest)).ToArray();
        long first = _refcounts.Allocate(cow.Count);
        _file.Sync();
        for (int i = 0; i < cow.Count; i++) _file.Write(first + (long)i * _cs, cow[i].Data);
        _file.Sync();
        for (int i = 0; i < cow.Count; i++)
            SetL2(tables[i], Index(cow[i].Guest).L2Index, (ulong)(first + (long)i * _cs) | Qcow2Entry.CopiedFlag);
        if (!cow.Any(c => c.Old.HoldsClusters)) return;
        _file.Sync();
        foreach (var c in cow) Release(c.Old);
    }

    private void SetL2(long table, int index, ulong value)
    {
        var l2 = _l2.Get(table);
        BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(index * 8), value);
        _l2.WriteThrough(table, l2, index * 8, 8);
    }

    /// <summary>
    /// The L2 table for <paramref name="guest"/>, owned by this image alone: an existing one with COPIED and refcount
    /// 1, else a new one (empty, or a copy of the shared table with COPIED cleared) written and synced before the L1
    /// entry points to it; a replaced shared table loses one reference only after that entry is durable.
    /// </summary>
    private long WritableL2(long guest)
    {
        long l1i = Index(guest).L1Index;
        ulong raw = _l1[l1i];
        long old = Qcow2Entry.L1Table(raw, _h.ClusterBits);
        if (old != 0 && (raw & Qcow2Entry.CopiedFlag) != 0 && _refcounts.Get(CheckMetadata(old)) == 1) return old;
        long fresh = _refcounts.Allocate(1);
        _file.Sync();
        var table = new byte[_cs];
        if (old != 0)
        {
            _l2.Get(CheckMetadata(old)).CopyTo(table, 0);
            for (int i = 0; i < _cs; i += 8)
                BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan(i), BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(i)) & ~Qcow2Entry.CopiedFlag);
        }
        _l2.Put(fresh, table);
        _file.Sync();
        _file.WriteU64(_h.L1Offset + l1i * 8, (ulong)fresh | Qcow2Entry.CopiedFlag);
        _l1[l1i] = (ulong)fresh | Qcow2Entry.CopiedFlag;
        if (old != 0)
        {
            _file.Sync();
            _refcounts.Change(old, -1);
        }
        return fresh;
    }

    /// <summary>Drops the references a replaced L2 entry held (a compressed cluster counts every host cluster it touches).</summary>
    private void Release(Qcow2Entry e)
    {
        if (!e.HoldsClusters) return;
        if (e.Kind != Qcow2ClusterKind.Compressed) { _refcounts.Change(e.Host, -1); return; }
        long firstCluster = e.CompressedStart & ~((long)_cs - 1), end = e.CompressedStart + e.CompressedSpan;
        for (long c = firstCluster; c < end; c += _cs) _refcounts.Change(c, -1);
    }

    private int _disposed;
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        lock (_lock)
        {
            _file.Dispose();
            _backing?.Dispose();
        }
    }
}
