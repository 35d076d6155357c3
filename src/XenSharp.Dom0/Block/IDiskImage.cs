namespace XenSharp.Dom0.Block;

/// <summary>
/// What blkback needs from a disk image of any format: guest-visible reads and writes at byte offsets
/// (sector-aligned), a flush that makes every completed write stable, discard, and the facts it advertises.
/// I/O failures (including a corrupt image) are <see cref="IOException"/>s, answered as BLKIF_RSP_ERROR.
/// </summary>
public interface IDiskImage : IDisposable
{
    string Path { get; }
    /// <summary>"raw" or "qcow2", as xl's format= names it.</summary>
    string Format { get; }
    bool ReadOnly { get; }
    bool IsBlockDevice { get; }
    /// <summary>True when guest data bypasses the host page cache (O_DIRECT).</summary>
    bool Direct { get; }
    /// <summary>A line for <c>xl block-list</c> and the log (O_DIRECT fallback, qcow2 layout and backing file), or null.</summary>
    string? Note { get; }
    /// <summary>The guest-visible size.</summary>
    long SizeBytes { get; }
    ulong Sectors { get; }
    bool CanDiscard { get; }
    void Read(long offset, Span<byte> dst);
    void Write(long offset, ReadOnlySpan<byte> src);
    /// <summary>Everything written so far is on stable storage when this returns.</summary>
    void Flush();
    void Discard(long offset, long length);
}
