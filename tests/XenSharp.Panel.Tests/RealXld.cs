using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace XenSharp.Panel.Tests;

internal static class Repo
{
    public static string Root { get; } = Find();
    private static string Configuration => AppContext.BaseDirectory.Contains("/Release/") ? "Release" : "Debug";
    public static string Xld => Path.Combine(Root, "src", "XenSharp.Daemon", "bin", Configuration, "net10.0", "xld.dll");
    public static string Xl => Path.Combine(Root, "src", "XenSharp.Cli", "bin", Configuration, "net10.0", "xl.dll");
    public static string HvmGuest => Path.Combine(Root, "guests", "build", "hvm-hello.elf");
    public static string Artifacts => Path.Combine(AppContext.BaseDirectory, "artifacts");

    private static string Find()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "XenSharp.slnx"))) d = d.Parent;
        return d?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Why the real xld cannot run here, or null. Builds the test guest if only it is missing.</summary>
    public static string? XldUnavailable()
    {
        if (!File.Exists(Xld) || !File.Exists(Xl)) return $"xld/xl are not built ({Xld}); build the solution first";
        if (!File.Exists(HvmGuest))
        {
            using var make = Process.Start(new ProcessStartInfo("make", $"-C {Path.Combine(Root, "guests")}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            make.WaitForExit(120_000);
            if (!File.Exists(HvmGuest)) return $"the test guest could not be built: {make.StandardError.ReadToEnd()}";
        }
        return null;
    }
}

/// <summary>The real xld with its HTTP API on a loopback port, and a bearer token made with the real xl.</summary>
public sealed class RealXld : IDisposable
{
    private readonly Process _xld;
    private readonly StringBuilder _out = new();
    public string Dir { get; }
    public string Url { get; }
    public string Token { get; }

    public RealXld()
    {
        Dir = Path.Combine(Path.GetTempPath(), "xsp-xld-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Dir);
        var port = Repo.FreePort();
        Url = $"http://127.0.0.1:{port}";
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Repo.Xld, "--socket", Sock, "--state-dir", Path.Combine(Dir, "state"), "--log-dir", Path.Combine(Dir, "log"),
                     "--host-reserve-mib", "1024", "--shutdown-timeout", "5", "--http", $"127.0.0.1:{port}",
                     "--xenstored-socket", Path.Combine(Dir, "xenstored.sock"), "--disk-dir", Path.Combine(Dir, "disks") })
            psi.ArgumentList.Add(a);
        _xld = Process.Start(psi)!;
        _xld.OutputDataReceived += (_, e) => { lock (_out) _out.AppendLine(e.Data); };
        _xld.ErrorDataReceived += (_, e) => { lock (_out) _out.AppendLine(e.Data); };
        _xld.BeginOutputReadLine();
        _xld.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!File.Exists(Sock) || !PortOpen(port))
        {
            if (_xld.HasExited) throw new InvalidOperationException($"xld exited: {Output}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"xld did not come up: {Output}");
            Thread.Sleep(50);
        }
        try { Token = Xl("token-create", "panel").Trim(); }
        catch (InvalidOperationException e) { throw new InvalidOperationException($"{e.Message}\nxld: {Output}", e); }
    }

    private string Sock => Path.Combine(Dir, "xld.sock");
    public string Output { get { lock (_out) return _out.ToString(); } }

    private static bool PortOpen(int port)
    {
        try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, port); return true; }
        catch (SocketException) { return false; }
    }

    public string Xl(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Repo.Xl);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["XENSHARP_XLD_SOCKET"] = Sock;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException($"xl {string.Join(' ', args)}"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"xl {string.Join(' ', args)} exited {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }

    public void Dispose()
    {
        if (!_xld.HasExited)
        {
            kill(_xld.Id, 15);
            if (!_xld.WaitForExit(20_000)) _xld.Kill(true);
        }
        _xld.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int kill(int pid, int sig);
}
