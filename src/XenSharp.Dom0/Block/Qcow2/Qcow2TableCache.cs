namespace XenSharp.Dom0.Block.Qcow2;

/// <summary>
/// Cluster-sized metadata tables (L2 tables, refcount blocks) kept in memory, bounded to a few MiB. Updates are
/// written through at once: the caller orders them against data with <see cref="Qcow2File.Sync"/>, so the cache
/// never holds anything the file lacks.
/// </summary>
internal sealed class Qcow2TableCache(Qcow2File file, int clusterSize)
{
    private const int BudgetBytes = 4 << 20;
    private readonly int _max = Math.Max(4, BudgetBytes / clusterSize);
    private readonly Dictionary<long, byte[]> _tables = [];

    public byte[] Get(long offset)
    {
        if (_tables.TryGetValue(offset, out var t)) return t;
        t = file.Read(offset, clusterSize);
        Remember(offset, t);
        return t;
    }

    /// <summary>Writes a whole new table and caches it.</summary>
    public void Put(long offset, byte[] table)
    {
        file.Write(offset, table);
        Remember(offset, table);
    }

    /// <summary>
    /// Writes bytes [start, start+length) of a cached table (already changed in memory) through to the file; if
    /// that fails the table is forgotten, so that it is read again as the file has it.
    /// </summary>
    public void WriteThrough(long offset, byte[] table, int start, int length)
    {
        try { file.Write(offset + start, table.AsSpan(start, length)); }
        catch (IOException) { _tables.Remove(offset); throw; }
    }

    private void Remember(long offset, byte[] table)
    {
        if (_tables.Count >= _max) _tables.Clear(); // tables are clean: dropping them costs only re-reads
        _tables[offset] = table;
    }
}
