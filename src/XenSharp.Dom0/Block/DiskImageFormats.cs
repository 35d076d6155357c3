using XenSharp.Dom0.Block.Qcow2;

namespace XenSharp.Dom0.Block;

/// <summary>
/// Opens a vbd's image in the format the configuration names. The format is never guessed from the contents: a raw
/// image whose guest wrote a qcow2 header stays raw (probing would let a guest point its disk at any host file
/// through a forged backing file name), as Xen and QEMU do when the format is given.
/// </summary>
public static class DiskImageFormats
{
    public const string SupportedText = "raw images, block devices and qcow2 (v2 and v3) are supported";

    public static bool IsSupported(string format) => format is "raw" or "qcow2";

    /// <summary>Throws <see cref="DiskImageException"/> with the reason when the image cannot be used.</summary>
    public static IDiskImage Open(string path, string format, bool readOnly, uint domid) =>
        Open(path, format, readOnly, domid, depth: 0);

    internal static IDiskImage Open(string path, string format, bool readOnly, uint domid, int depth) => format switch
    {
        "raw" => DiskImage.Open(path, readOnly, domid),
        "qcow2" => Qcow2Image.Open(path, readOnly, domid, depth),
        _ => throw new DiskImageException($"{path}: format {format} is not supported ({SupportedText})"),
    };
}
