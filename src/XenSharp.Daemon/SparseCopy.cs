using Microsoft.Win32.SafeHandles;

namespace XenSharp.Daemon;

/// <summary>
/// Copies a template's data into a fresh (empty) file at the same offsets, writing only what is not zero: the
/// template's holes and its all-zero blocks stay holes in the copy, so a mostly empty file system image costs
/// little disk.
/// </summary>
public static class SparseCopy
{
    public const int BlockSize = 4096;
    private const int ChunkSize = 1 << 20;

    /// <summary>Returns the number of bytes written to <paramref name="destination"/>.</summary>
    public static long Copy(TemplateImage source, SafeFileHandle destination)
    {
        var buffer = new byte[ChunkSize];
        long written = 0;
        foreach (var (start, end) in source.DataRanges())
        {
            for (long offset = start; offset < end;)
            {
                int n = RandomAccess.Read(source.Handle, buffer.AsSpan(0, (int)Math.Min(ChunkSize, end - offset)), offset);
                if (n == 0) break; // the template shrank under us; what is left reads as zeros
                written += WriteNonZero(destination, buffer.AsSpan(0, n), offset);
                offset += n;
            }
        }
        return written;
    }

    /// <summary>Writes each run of blocks of <paramref name="data"/> that holds a non-zero byte, at its offset.</summary>
    private static long WriteNonZero(SafeFileHandle destination, ReadOnlySpan<byte> data, long offset)
    {
        long written = 0;
        int i = 0;
        while (i < data.Length)
        {
            int runStart = i;
            while (i < data.Length && !IsZero(Block(data, i))) i += BlockSize;
            if (i > runStart)
            {
                var run = data[runStart..Math.Min(i, data.Length)];
                RandomAccess.Write(destination, run, offset + runStart);
                written += run.Length;
            }
            while (i < data.Length && IsZero(Block(data, i))) i += BlockSize;
        }
        return written;
    }

    private static ReadOnlySpan<byte> Block(ReadOnlySpan<byte> data, int at) => data.Slice(at, Math.Min(BlockSize, data.Length - at));

    private static bool IsZero(ReadOnlySpan<byte> block) => block.IndexOfAnyExcept((byte)0) < 0;
}
