using Microsoft.Win32.SafeHandles;
using XenSharp.Accel;

namespace XenSharp.Daemon;

/// <summary>
/// A template's root image, opened read-only for copying: an absolute path to a regular file (block devices,
/// directories and other special files are refused), with the ranges of it that hold data.
/// </summary>
public sealed class TemplateImage : IDisposable
{
    private TemplateImage() { }

    public string Path { get; private init; } = "";
    public SafeFileHandle Handle { get; private init; } = null!;
    public long Length { get; private init; }

    public static TemplateImage Open(string path)
    {
        if (!System.IO.Path.IsPathFullyQualified(path)) throw new ArgumentException($"template '{path}': expected an absolute path to an image file");
        if (Posix.Stat(path) is not { } found)
        {
            int errno = Posix.LastErrno;
            throw new ArgumentException(errno == Posix.ENOENT ? $"template {path} does not exist" : $"cannot stat template {path}: {Posix.ErrnoName(errno)}");
        }
        RefuseIfNotRegular(path, found);
        // O_NONBLOCK: should the path turn into a FIFO after the check, opening it must not hang the daemon.
        int fd = Posix.open(path, Posix.O_RDONLY | Posix.O_CLOEXEC | Posix.O_NONBLOCK);
        if (fd < 0) throw new ArgumentException($"cannot open template {path}: {Posix.ErrnoName(Posix.LastErrno)}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var st = Posix.FStat(fd, path);
            RefuseIfNotRegular(path, st);
            return new TemplateImage { Path = path, Handle = handle, Length = st.Size };
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static void RefuseIfNotRegular(string path, Posix.FileStat st)
    {
        if (st.Type == Posix.S_IFBLK) throw new ArgumentException($"template {path} is a block device: templates are regular image files (copy the device into one)");
        if (st.Type == Posix.S_IFDIR) throw new ArgumentException($"template {path} is a directory: expected a raw image file");
        if (st.Type != Posix.S_IFREG) throw new ArgumentException($"template {path} is not a regular file");
    }

    /// <summary>
    /// The [start, end) ranges that may hold data, from SEEK_DATA/SEEK_HOLE; holes are left out. A file system that
    /// cannot tell reports the whole file as one range.
    /// </summary>
    public IEnumerable<(long Start, long End)> DataRanges()
    {
        int fd = (int)Handle.DangerousGetHandle();
        long pos = 0;
        while (pos < Length)
        {
            long data = Posix.lseek(fd, pos, Posix.SEEK_DATA);
            if (data < 0)
            {
                if (Posix.LastErrno == Posix.ENXIO) yield break; // nothing but a hole from pos to the end
                yield return (pos, Length);
                yield break;
            }
            if (data >= Length) yield break;
            long hole = Posix.lseek(fd, data, Posix.SEEK_HOLE);
            long end = hole < 0 ? Length : Math.Min(hole, Length);
            yield return (data, end);
            pos = end;
        }
    }

    public void Dispose() => Handle.Dispose();
}
