using System.Buffers.Binary;

namespace XenSharp.Dom0.Block.Qcow2;

/// <summary>
/// The refcount structure: a table of refcount block offsets, each block holding 2^refcount_order-bit counts of
/// the host clusters. New clusters are always appended at the end of the file (the frontier), so a cluster freed
/// by copy-on-write is never reused (its space stays until qemu-img convert); that keeps allocation free of any
/// search and of any chance of handing out a cluster something still points to.
/// Crash ordering: a new refcount block is written (counting itself when it covers itself) and synced before the
/// table entry points to it; a grown table is written and synced before the header switches to it.
/// </summary>
internal sealed class Qcow2Refcounts
{
    private readonly Qcow2File _file;
    private readonly Qcow2TableCache _blocks;
    private readonly int _clusterBits, _order;
    private readonly long _cs, _perBlock;
    private ulong[] _table;
    private long _tableOffset;
    private int _tableClusters;

    public Qcow2Refcounts(Qcow2File file, Qcow2Header h)
    {
        _file = file;
        _clusterBits = h.ClusterBits;
        _cs = h.ClusterSize;
        _order = h.RefcountOrder;
        _perBlock = (_cs * 8) >> _order;
        _blocks = new Qcow2TableCache(file, (int)_cs);
        _tableOffset = h.RefcountTableOffset;
        _tableClusters = h.RefcountTableClusters;
        var raw = file.Read(_tableOffset, (int)(_tableClusters * _cs));
        _table = new ulong[raw.Length / 8];
        for (int i = 0; i < _table.Length; i++) _table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        End = Qcow2Header.Align(file.Length, _cs);
    }

    /// <summary>The allocation frontier: every cluster at or past it is unused.</summary>
    public long End { get; private set; }
    private ulong Max => _order == 6 ? ulong.MaxValue : (1UL << (1 << _order)) - 1;
    public long TableOffset => _tableOffset;
    public long TableBytes => _tableClusters * _cs;

    public ulong Get(long host)
    {
        long cluster = host >> _clusterBits;
        long bi = cluster / _perBlock;
        if (bi >= _table.Length || _table[bi] == 0) return 0;
        return ReadEntry(Block(bi), cluster % _perBlock);
    }

    /// <summary>Adds <paramref name="delta"/> to the refcount of the cluster at <paramref name="host"/> (written through, not synced).</summary>
    public void Change(long host, long delta)
    {
        long cluster = host >> _clusterBits;
        long bi = cluster / _perBlock, idx = cluster % _perBlock;
        long blockOffset = EnsureBlock(bi);
        var block = _blocks.Get(blockOffset);
        ulong v = ReadEntry(block, idx);
        if ((delta < 0 && v < (ulong)-delta) || (delta > 0 && Max - v < (ulong)delta))
            throw new Qcow2CorruptException($"refcount of cluster {host} is {v}: cannot add {delta} (image corrupt; see qemu-img check)");
        var (start, len) = WriteEntry(block, idx, (ulong)((long)v + delta));
        _blocks.WriteThrough(blockOffset, block, start, len);
    }

    /// <summary>Takes <paramref name="count"/> contiguous clusters at the frontier with refcount 1 (not synced).</summary>
    public long Allocate(int count)
    {
        long at = End;
        for (int i = 0; i < count; i++)
            if (Get(at + i * _cs) != 0)
                throw new Qcow2CorruptException($"cluster {at + i * _cs} past the end of the file has a refcount (image corrupt; see qemu-img check)");
        End += count * _cs;
        for (int i = 0; i < count; i++) Change(at + i * _cs, +1);
        return at;
    }

    private byte[] Block(long bi) => _blocks.Get(CheckBlock(_table[bi]));

    private long CheckBlock(ulong entry)
    {
        long off = (long)(entry & ~511UL);
        if ((entry & 511) != 0 || off % _cs != 0 || off >= End)
            throw new Qcow2CorruptException($"bad refcount table entry 0x{entry:x16}");
        return off;
    }

    private long EnsureBlock(long bi)
    {
        if (bi >= _table.Length) GrowTable(bi + 1);
        if (_table[bi] != 0) return CheckBlock(_table[bi]);
        long at = End;
        End += _cs;
        var block = new byte[_cs];
        long cluster = at >> _clusterBits;
        bool self = cluster / _perBlock == bi;
        if (self) WriteEntry(block, cluster % _perBlock, 1);
        _blocks.Put(at, block);
        if (!self) Change(at, +1);
        _file.Sync();
        _file.WriteU64(_tableOffset + bi * 8, (ulong)at);
        _table[bi] = (ulong)at;
        return at;
    }

    /// <summary>
    /// Moves the refcount table to a larger copy at the frontier: new refcount blocks covering the new area come
    /// first (each counting the clusters of the area it covers), then the table. Both are synced before the header
    /// names the new table (one 12-byte write inside one sector); the old table is freed last.
    /// </summary>
    private void GrowTable(long neededEntries)
    {
        long start = End, firstBlock = (start >> _clusterBits) / _perBlock;
        long blocks = 1, tableClusters = _tableClusters;
        while (true)
        {
            long areaEnd = start + (blocks + tableClusters) * _cs;
            long lastBlock = ((areaEnd >> _clusterBits) - 1) / _perBlock;
            long entries = Math.Max(Math.Max(neededEntries, lastBlock + 1), 2L * _table.Length);
            long needTable = (entries * 8 + _cs - 1) / _cs;
            long needBlocks = lastBlock - firstBlock + 1;
            if (needTable <= tableClusters && needBlocks <= blocks) break;
            tableClusters = Math.Max(tableClusters, needTable);
            blocks = Math.Max(blocks, needBlocks);
        }
        if (tableClusters * _cs > Qcow2Header.MaxRefcountTableBytes)
            throw new IOException($"{_file.Path}: the refcount table would exceed {Qcow2Header.MaxRefcountTableBytes >> 20} MiB");

        long tableAt = start + blocks * _cs, end = tableAt + tableClusters * _cs;
        var table = new ulong[tableClusters * _cs / 8];
        _table.CopyTo(table, 0);
        for (long b = 0; b < blocks; b++)
        {
            var block = new byte[_cs];
            long first = (firstBlock + b) * _perBlock; // first cluster this block counts
            for (long c = Math.Max(first, start >> _clusterBits); c < Math.Min(first + _perBlock, end >> _clusterBits); c++)
                WriteEntry(block, c - first, 1);
            _blocks.Put(start + b * _cs, block);
            table[firstBlock + b] = (ulong)(start + b * _cs);
        }
        var raw = new byte[tableClusters * _cs];
        for (int i = 0; i < table.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
        _file.Write(tableAt, raw);
        _file.Sync();

        Span<byte> field = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(field, (ulong)tableAt);
        BinaryPrimitives.WriteUInt32BigEndian(field[8..], (uint)tableClusters);
        _file.Write(Qcow2Header.RefcountTableField, field);
        _file.Sync();

        long oldAt = _tableOffset, oldClusters = _tableClusters;
        (_table, _tableOffset, _tableClusters, End) = (table, tableAt, (int)tableClusters, end);
        for (long i = 0; i < oldClusters; i++) Change(oldAt + i * _cs, -1);
    }

    private ulong ReadEntry(byte[] block, long idx)
    {
        int bits = 1 << _order;
        if (bits >= 8)
        {
            var s = block.AsSpan((int)(idx * (bits / 8)));
            return bits switch { 8 => s[0], 16 => BinaryPrimitives.ReadUInt16BigEndian(s), 32 => BinaryPrimitives.ReadUInt32BigEndian(s), _ => BinaryPrimitives.ReadUInt64BigEndian(s) };
        }
        // Narrow refcounts are packed from the least significant bit of each byte.
        long bit = idx * bits;
        return (ulong)(block[bit / 8] >> (int)(bit % 8)) & ((1UL << bits) - 1);
    }

    /// <summary>Stores an entry; returns the byte range of the block that changed.</summary>
    private (int Start, int Length) WriteEntry(byte[] block, long idx, ulong v)
    {
        int bits = 1 << _order;
        if (bits >= 8)
        {
            int at = (int)(idx * (bits / 8));
            var s = block.AsSpan(at);
            switch (bits)
            {
                case 8: s[0] = (byte)v; break;
                case 16: BinaryPrimitives.WriteUInt16BigEndian(s, (ushort)v); break;
                case 32: BinaryPrimitives.WriteUInt32BigEndian(s, (uint)v); break;
                default: BinaryPrimitives.WriteUInt64BigEndian(s, v); break;
            }
            return (at, bits / 8);
        }
        long bit = idx * bits;
        int shift = (int)(bit % 8), mask = ((1 << bits) - 1) << shift;
        block[bit / 8] = (byte)((block[bit / 8] & ~mask) | (((int)v << shift) & mask));
        return ((int)(bit / 8), 1);
    }
}
