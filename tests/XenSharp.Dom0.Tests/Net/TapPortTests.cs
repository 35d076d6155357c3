using System.Runtime.InteropServices;
using XenSharp.Dom0.Net;

namespace XenSharp.Dom0.Tests.Net;

/// <summary>
/// A real TAP device: frames the switch sends to the port appear on the host interface (seen through an AF_PACKET
/// socket bound to it), and frames the host transmits on the interface come back out of the TAP into the switch.
/// Skipped with the reason when /dev/net/tun or the privileges are missing.
/// </summary>
public sealed unsafe partial class TapPortTests
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int bind(int fd, byte* addr, int len);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, byte* buf, nint len, int flags);
    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int fd, byte* buf, nint len, int flags);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int setsockopt(int fd, int level, int name, byte* val, int len);
    [LibraryImport("libc")]
    private static partial int close(int fd);

    private sealed class Sink() : SwitchPort("sink", 7)
    {
        public readonly List<byte[]> Got = [];
        public override void Deliver(byte[] frame) { lock (Got) Got.Add(frame); }
    }

    private static int PacketSocket(string ifname)
    {
        int s = socket(17 /* AF_PACKET */, 3 /* SOCK_RAW */, 0x0300 /* htons(ETH_P_ALL) */);
        if (s < 0) return -1;
        int ifindex = int.Parse(File.ReadAllText($"/sys/class/net/{ifname}/ifindex").Trim());
        byte* sll = stackalloc byte[20];
        new Span<byte>(sll, 20).Clear();
        *(ushort*)sll = 17;
        *(ushort*)(sll + 2) = 0x0300;
        *(int*)(sll + 4) = ifindex;
        if (bind(s, sll, 20) != 0) { close(s); return -1; }
        long tv = 0; // 1 s receive timeout: struct timeval {1, 0}
        byte* t = stackalloc byte[16];
        *(long*)t = 1; *(long*)(t + 8) = 0;
        setsockopt(s, 1 /* SOL_SOCKET */, 20 /* SO_RCVTIMEO */, t, 16);
        _ = tv;
        return s;
    }

    [SkippableFact]
    public void FramesCrossTheTapBothWays()
    {
        string name = "xst" + Environment.ProcessId % 100000;
        var tap = TapPort.TryCreate(name, null, out string? reason);
        Skip.If(tap is null, $"TAP unavailable: {reason}");
        using var _ = tap!;
        var sw = new VirtualSwitch("tap");
        var sink = new Sink();
        sw.Attach(tap!);
        sw.Attach(sink);
        int ps = PacketSocket(name);
        Skip.If(ps < 0, $"no AF_PACKET socket (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            byte[] src = [0x00, 0x16, 0x3e, 1, 2, 3];
            byte[] frame = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, .. src, 0x88, 0xb5, .. Enumerable.Range(0, 60).Select(i => (byte)i)];
            // Switch → TAP → host interface.
            sw.Forward(sink, frame);
            var buf = new byte[2048];
            bool seen = false;
            for (int i = 0; i < 20 && !seen; i++)
            {
                nint n;
                fixed (byte* p = buf) n = recv(ps, p, buf.Length, 0);
                if (n <= 0) break;
                seen = buf.AsSpan(0, (int)n).SequenceEqual(frame);
            }
            Assert.True(seen, "the frame did not appear on the host interface");
            Assert.Equal(1, tap!.TxPackets);

            // Host interface → TAP → switch.
            byte[] back = [.. src, 0x00, 0x16, 0x3e, 9, 9, 9, 0x88, 0xb5, .. Enumerable.Range(0, 50).Select(i => (byte)(i * 3))];
            fixed (byte* p = back) Assert.Equal(back.Length, (int)send(ps, p, back.Length, 0));
            Xenbus.BackendHarness.WaitUntil(() => { lock (sink.Got) return sink.Got.Any(g => g.SequenceEqual(back)); }, 3000, "the frame from the host");
            Assert.Same(tap, sw.Lookup([0x00, 0x16, 0x3e, 9, 9, 9]));
        }
        finally { close(ps); }
    }

    [SkippableFact]
    public void MissingBridgeIsReported()
    {
        var tap = TapPort.TryCreate("xsu" + Environment.ProcessId % 100000, "xs-no-such-br", out string? reason);
        Skip.If(tap is null && reason!.Contains("/dev/net/tun"), $"TAP unavailable: {reason}");
        Assert.Null(tap);
        Assert.Contains("xs-no-such-br", reason);
        Assert.Null(TapPort.TryCreate("a-name-that-is-far-too-long", null, out reason));
        Assert.Contains("15", reason);
    }

    [SkippableFact]
    public void JoinsALinuxBridge()
    {
        string br = "xsb" + Environment.ProcessId % 100000, tapName = "xsv" + Environment.ProcessId % 100000;
        Skip.IfNot(Ip($"link add name {br} type bridge"), "cannot create a Linux bridge (needs CAP_NET_ADMIN)");
        try
        {
            var tap = TapPort.TryCreate(tapName, br, out string? reason);
            Skip.If(tap is null, $"TAP unavailable: {reason}");
            using var _ = tap!;
            var master = Path.GetFileName(new FileInfo($"/sys/class/net/{tapName}/master").LinkTarget ?? "");
            Assert.Equal(br, master);
        }
        finally { Ip($"link del {br}"); }
    }

    private static bool Ip(string args)
    {
        try
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ip", args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit(5000);
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }
}
