using System.Text;
using XenSharp.Accel;

namespace XenSharp.Toolstack;

/// <summary>Writes state files so that a crash leaves either the old or the new contents, never a torn file.</summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string contents, UnixFileMode? mode = null)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (mode is { } m) options.UnixCreateMode = m;
        using (var f = new FileStream(temp, options))
        {
            f.Write(Encoding.UTF8.GetBytes(contents));
            f.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        SyncDirectory(dir);
    }

    /// <summary>fsyncs a directory: a rename into it is durable only once the directory entry is on disk.</summary>
    public static void SyncDirectory(string dir)
    {
        int fd = Posix.open(dir, Posix.O_RDONLY | Posix.O_DIRECTORY | Posix.O_CLOEXEC);
        if (fd >= 0)
        {
            Posix.fsync(fd);
            Posix.close(fd);
        }
    }
}
