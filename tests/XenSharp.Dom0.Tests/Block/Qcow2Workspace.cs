using System.Buffers.Binary;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>A scratch directory of qcow2 images made and inspected with the qemu tools; removed afterwards.</summary>
internal sealed class Qcow2Workspace : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("xensharp-qcow2-").FullName;

    public string PathOf(string name) => System.IO.Path.Combine(Dir, name);

    /// <summary><c>qemu-img create -f qcow2</c>; <paramref name="compat"/> "0.10" makes version 2, "1.1" version 3.</summary>
    public string Create(string name, string compat, int clusterSize, string size, string? extraOptions = null, string? backing = null, string? backingFormat = null)
    {
        string path = PathOf(name);
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-o", $"compat={compat},cluster_size={clusterSize}" + (extraOptions is null ? "" : "," + extraOptions) };
        if (backing is not null) args.AddRange(["-b", backing, "-F", backingFormat!]);
        args.Add(path);
        if (size.Length > 0) args.Add(size);
        QemuTools.Run("qemu-img", [.. args]);
        return path;
    }

    /// <summary>Runs qemu-io commands (<c>write -P 0xab 0 64k</c>, ...) on an image.</summary>
    public static void Io(string image, params string[] commands)
    {
        var args = new List<string>();
        foreach (var c in commands) args.AddRange(["-c", c]);
        args.Add(image);
        QemuTools.Run("qemu-io", [.. args]);
    }

    public string WriteRaw(string name, byte[] data)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, data);
        return path;
    }

    /// <summary>Overwrites bytes of a closed image (to make it hostile).</summary>
    public static void Patch(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        RandomAccess.Write(h, bytes, offset);
    }

    public static void PatchU64(string path, long offset, ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, v);
        Patch(path, offset, b);
    }

    public static void PatchU32(string path, long offset, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        Patch(path, offset, b);
    }

    public static ulong ReadU64(string path, long offset) => BinaryPrimitives.ReadUInt64BigEndian(RawFile.Read(path, offset, 8));

    /// <summary>The host offset of the first L2 table (the one L1 entry 0 points to).</summary>
    public static long FirstL2Table(string path) => (long)(ReadU64(path, (long)ReadU64(path, 40)) & 0x00FF_FFFF_FFFF_FE00UL);

    /// <summary>Fails with the first differing offset rather than dumping megabytes.</summary>
    public static void AssertSameBytes(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} bytes, expected {expected.Length}");
        int at = expected.CommonPrefixLength(actual);
        Assert.True(at == expected.Length, $"{what}: first difference at byte {at} (0x{at:x}): 0x{(at < actual.Length ? actual[at] : 0):x2}, expected 0x{(at < expected.Length ? expected[at] : 0):x2}");
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
