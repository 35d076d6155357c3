using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace XenSharp.Dom0.Net;

/// <summary>
/// A Linux TAP device (IFF_TAP | IFF_NO_PI) as an uplink port of a <see cref="VirtualSwitch"/>: frames the switch
/// floods or forwards to it are written to the device; frames the host sends on it are switched to the vifs.
/// Optionally enslaved to a Linux bridge (<c>ip link set dev TAP master BRIDGE</c>).
/// </summary>
public sealed unsafe partial class TapPort : SwitchPort, IDisposable
{
    private const int O_RDWR = 2, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const ulong TUNSETIFF = 0x400454ca;
    private const short IFF_TAP = 0x0002, IFF_NO_PI = 0x1000;
    private const short POLLIN = 1;

    private readonly int _fd;
    private readonly Thread _reader;
    private volatile bool _stop;
    public long TxPackets, RxPackets, Dropped;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, ulong req, byte* arg);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, byte* buf, nint count);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte* buf, nint count);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int poll(PollFd* fds, ulong n, int timeout);
    [LibraryImport("libc")]
    private static partial int close(int fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd { public int Fd; public short Events; public short Revents; }

    private TapPort(string name, int fd, string? bridge) : base(name, null)
    {
        _fd = fd;
        BridgeName = bridge;
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = $"tap {name}" };
    }

    public string? BridgeName { get; }
    /// <summary>The interface's file descriptor (tests read and write the host side through another TAP queue... or this one).</summary>
    public int Fd => _fd;

    /// <summary>
    /// Creates TAP device <paramref name="name"/> (≤ 15 bytes), brings it up and, when <paramref name="bridge"/> is set, enslaves it.
    /// Returns null with <paramref name="reason"/> when /dev/net/tun, the permission or the bridge is missing.
    /// </summary>
    public static TapPort? TryCreate(string name, string? bridge, out string? reason, bool start = true)
    {
        reason = null;
        if (Encoding.ASCII.GetByteCount(name) > 15) { reason = $"TAP name {name} longer than 15 bytes"; return null; }
        int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) { reason = $"cannot open /dev/net/tun: errno {Marshal.GetLastPInvokeError()}"; return null; }
        byte* ifr = stackalloc byte[40];
        new Span<byte>(ifr, 40).Clear();
        Encoding.ASCII.GetBytes(name, new Span<byte>(ifr, 16));
        *(short*)(ifr + 16) = IFF_TAP | IFF_NO_PI;
        if (ioctl(fd, TUNSETIFF, ifr) != 0)
        {
            reason = $"TUNSETIFF {name}: errno {Marshal.GetLastPInvokeError()}";
            close(fd);
            return null;
        }
        var tap = new TapPort(name, fd, bridge);
        if (bridge is not null)
        {
            if (!Directory.Exists($"/sys/class/net/{bridge}/bridge"))
            {
                tap.Dispose();
                reason = $"bridge {bridge} does not exist";
                return null;
            }
            string? err = Ip($"link set dev {name} master {bridge}");
            if (err is not null) { tap.Dispose(); reason = err; return null; }
        }
        string? up = Ip($"link set dev {name} up");
        if (up is not null) tap.Note = up;
        if (start) tap._reader.Start();
        return tap;
    }

    /// <summary>Why bringing the link up failed (the port still works as far as the kernel lets it), or null.</summary>
    public string? Note { get; private set; }

    private static string? Ip(string args)
    {
        try
        {
            var psi = new ProcessStartInfo("ip", args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit(5000);
            return p.ExitCode == 0 ? null : $"ip {args}: {err.Trim()}";
        }
        catch (System.ComponentModel.Win32Exception e) { return $"ip {args}: {e.Message}"; }
    }

    public override void Deliver(byte[] frame)
    {
        fixed (byte* p = frame)
        {
            if (write(_fd, p, frame.Length) == frame.Length) Interlocked.Increment(ref TxPackets);
            else Interlocked.Increment(ref Dropped);
        }
    }

    /// <summary>Reads one frame (for tests that run without the reader thread); -1 when none arrives in time.</summary>
    public int ReadFrame(Span<byte> buf, int timeoutMs)
    {
        var pfd = new PollFd { Fd = _fd, Events = POLLIN };
        if (poll(&pfd, 1, timeoutMs) <= 0) return -1;
        fixed (byte* p = buf)
        {
            nint n = read(_fd, p, buf.Length);
            return n < 0 ? -1 : (int)n;
        }
    }

    private void ReadLoop()
    {
        var buf = new byte[65536];
        while (!_stop)
        {
            int n = ReadFrame(buf, 200);
            if (n <= 0) continue;
            Interlocked.Increment(ref RxPackets);
            Switch?.Forward(this, buf.AsSpan(0, n).ToArray());
        }
    }

    public void Dispose()
    {
        if (_stop) return;
        _stop = true;
        Switch?.Detach(this);
        if (_reader.IsAlive) _reader.Join();
        close(_fd);
    }
}
