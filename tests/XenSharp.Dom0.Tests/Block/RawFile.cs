using System.Runtime.InteropServices;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>
/// Reads a file through a fresh libc file descriptor: .NET's FileStream takes a shared flock of its own, which
/// the backend's exclusive image lock (rightly) refuses.
/// </summary>
internal static unsafe partial class RawFile
{
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pread(int fd, byte* buf, nint count, long offset);
    [LibraryImport("libc")]
    private static partial int close(int fd);

    public static byte[] Read(string path, long offset, int len)
    {
        int fd = open(path, 0);
        if (fd < 0) throw new IOException($"open {path}: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            var b = new byte[len];
            fixed (byte* p = b)
            {
                int done = 0;
                while (done < len)
                {
                    nint r = pread(fd, p + done, len - done, offset + done);
                    if (r <= 0) throw new IOException($"pread {path}");
                    done += (int)r;
                }
            }
            return b;
        }
        finally { close(fd); }
    }

    public static byte[] ReadAll(string path) => Read(path, 0, (int)new FileInfo(path).Length);
}
