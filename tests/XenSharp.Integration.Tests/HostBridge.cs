using System.Diagnostics;

namespace XenSharp.Integration.Tests;

/// <summary>
/// A Linux bridge with an address on the host, for tests whose guests reach the host through xld's TAP uplink
/// (vif bridge=NAME). Skips the test, with the reason, where the host cannot make one (no root, no tun, no bridge).
/// </summary>
public sealed class HostBridge : IDisposable
{
    public string Name { get; }
    public string HostAddress { get; }
    public string Subnet { get; }

    private HostBridge(string name, string subnet)
    {
        Name = name;
        Subnet = subnet;
        HostAddress = subnet + ".254";
    }

    /// <summary>Creates bridge <c>PREFIX&lt;pid&gt;</c> with address 10.&lt;second&gt;.&lt;n&gt;.254/24, n derived from the pid.</summary>
    public static HostBridge Create(string prefix, int secondOctet)
    {
        Skip.IfNot(File.Exists("/dev/net/tun"), "no /dev/net/tun on this host: xld cannot make a TAP uplink");
        Skip.IfNot(Environment.UserName == "root", "creating a Linux bridge and a TAP device needs root");
        int n = Environment.ProcessId % 200 + 20;
        var b = new HostBridge($"{prefix}{Environment.ProcessId % 100000}", $"10.{secondOctet}.{n}");
        var add = Run("ip", $"link add {b.Name} type bridge");
        Skip.If(add.Exit != 0, $"cannot create a Linux bridge here: {add.Output}");
        var addr = Run("ip", $"addr add {b.HostAddress}/24 dev {b.Name}");
        var up = Run("ip", $"link set {b.Name} up");
        if (addr.Exit != 0 || up.Exit != 0)
        {
            b.Dispose();
            throw new InvalidOperationException($"configuring bridge {b.Name}: {addr.Output} {up.Output}");
        }
        return b;
    }

    /// <summary>An address in the bridge's /24 for a guest.</summary>
    public string Guest(int host) => $"{Subnet}.{host}";

    public static (int Exit, string Output) Run(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        string o = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, o.Trim());
    }

    public void Dispose() => Run("ip", $"link del {Name}");
}
