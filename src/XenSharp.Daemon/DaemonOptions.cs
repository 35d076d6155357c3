namespace XenSharp.Daemon;

public sealed record DaemonOptions(
    string SocketPath,
    string StateDirectory,
    string LogDirectory,
    string Accelerator,
    ulong HostReservationMiB,
    int ShutdownTimeoutSeconds,
    bool Help,
    string? HttpListen = null,
    string? TlsCert = null,
    string? TlsKey = null,
    string XenstoredSocket = "/run/xenstored/socket",
    string CgroupName = "xensharp",
    string? AutoDirectory = "/etc/xen/auto",
    string DiskDirectory = VpsDiskStore.DefaultDirectory)
{
    public const string Usage = """
        usage: xld [options]
          --socket PATH            control socket (default /run/xensharp/xld.sock)
          --state-dir DIR          domain state (default /var/lib/xensharp)
          --log-dir DIR            xld.log and console/guest-NAME.log (default /var/log/xensharp)
          --accel auto|kvm|emu     how guest code runs (default auto: kvm when usable, else the software CPU)
          --host-reserve-mib N     memory kept for the host itself (default 1024)
          --shutdown-timeout S     on SIGTERM, how long domains get to shut down before they are destroyed (default 30)
          --xenstored-socket PATH  where dom0 tools reach xenstored (default /run/xenstored/socket)
          --cgroup NAME            CPU cgroup holding this xld's domains (default xensharp)
          --auto-dir DIR           create every domain config in DIR at start, as xendomains (default /etc/xen/auto; "none": off)
          --disk-dir DIR           VPS disks made by disk-create (default /var/lib/xensharp/disks, created 0700)
          --http ADDR:PORT         also serve the HTTP API (bearer tokens from 'xl token-create'), e.g. 127.0.0.1:8750
          --tls-cert PEM --tls-key PEM   serve it over TLS
          --probe-kvm              say whether /dev/kvm is usable here, and why not (exit status 0 when usable)
        """;

    public static DaemonOptions Parse(string[] args)
    {
        var o = new DaemonOptions(XenSharp.Api.Protocol.DefaultSocketPath, "/var/lib/xensharp", "/var/log/xensharp", "auto", 1024, 30, false);
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            o = args[i] switch
            {
                "--socket" => o with { SocketPath = Value() },
                "--state-dir" => o with { StateDirectory = Value() },
                "--log-dir" => o with { LogDirectory = Value() },
                "--accel" => o with { Accelerator = Value() is var a && a is "auto" or "kvm" or "emu" ? a : throw new ArgumentException($"--accel {a}: expected auto, kvm or emu") },
                "--host-reserve-mib" => o with { HostReservationMiB = ulong.TryParse(Value(), out var m) ? m : throw new ArgumentException("--host-reserve-mib: expected a whole number of MiB") },
                "--shutdown-timeout" => o with { ShutdownTimeoutSeconds = int.TryParse(Value(), out var s) && s >= 0 ? s : throw new ArgumentException("--shutdown-timeout: expected seconds") },
                "--http" => o with { HttpListen = Value() },
                "--xenstored-socket" => o with { XenstoredSocket = Value() },
                "--cgroup" => o with { CgroupName = Value() is var g && g.Length > 0 && !g.Contains('/') && g is not "." and not ".." ? g : throw new ArgumentException($"--cgroup {g}: expected a plain group name") },
                "--tls-cert" => o with { TlsCert = Value() },
                "--auto-dir" => o with { AutoDirectory = Value() is var d && d != "none" ? d : null },
                "--disk-dir" => o with { DiskDirectory = Value() },
                "--tls-key" => o with { TlsKey = Value() },
                "-h" or "--help" => o with { Help = true },
                _ => throw new ArgumentException($"unknown option '{args[i]}'"),
            };
        }
        return o;
    }
}
