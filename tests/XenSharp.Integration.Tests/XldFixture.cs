using System.Diagnostics;
using System.Text;

namespace XenSharp.Integration.Tests;

/// <summary>
/// A real xld process with its own socket, state and log directories, and a way to run the real xl against
/// it. Guests run on the accelerator xld picks (KVM where usable, else the software CPU), or on the one
/// XENSHARP_TEST_ACCEL names.
/// </summary>
public sealed class XldFixture : IDisposable
{
    private readonly Process _xld;
    private readonly StringBuilder _xldOutput = new();

    public string Directory { get; }
    public string SocketPath { get; }
    public string XenstoredSocket { get; }

    /// <summary>This xld's own CPU cgroup, so that fixtures running side by side do not share domain groups.</summary>
    public string CgroupName { get; } = $"xensharp-it-{Environment.ProcessId}-{Guid.NewGuid():N}"[..32];
    public string LogDirectory => Path.Combine(Directory, "log");
    /// <summary>xld's --disk-dir: where disk-create puts VPS disks.</summary>
    public string DiskDirectory => Path.Combine(Directory, "disks");

    public XldFixture() : this(autoDirectory: null) { }

    /// <param name="autoDirectory">xld's --auto-dir (configs created at start); none unless a test asks.</param>
    internal XldFixture(string? autoDirectory)
    {
        Directory = Path.Combine(Path.GetTempPath(), $"xensharp-it-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        System.IO.Directory.CreateDirectory(Directory);
        SocketPath = Path.Combine(Directory, "xld.sock");
        XenstoredSocket = Path.Combine(Directory, "xenstored.sock");
        HttpPort = FreePort();
        var psi = Dotnet(Paths.Xld, "--socket", SocketPath, "--state-dir", Path.Combine(Directory, "state"),
            "--log-dir", LogDirectory, "--host-reserve-mib", "1024", "--shutdown-timeout", "5", "--http", $"127.0.0.1:{HttpPort}",
            "--xenstored-socket", XenstoredSocket, "--cgroup", CgroupName, "--auto-dir", autoDirectory ?? "none", "--disk-dir", DiskDirectory);
        // XENSHARP_TEST_ACCEL=emu|kvm pins the accelerator (scripts/test.sh runs this project once more on the software
        // CPU where KVM is usable, so the fallback for KVM-less hosts stays tested); unset, xld picks.
        if (Environment.GetEnvironmentVariable("XENSHARP_TEST_ACCEL") is { Length: > 0 } accel)
        {
            psi.ArgumentList.Add("--accel");
            psi.ArgumentList.Add(accel);
        }
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;
        _xld = Process.Start(psi)!;
        _xld.ErrorDataReceived += (_, e) => { lock (_xldOutput) _xldOutput.AppendLine(e.Data); };
        _xld.OutputDataReceived += (_, e) => { lock (_xldOutput) _xldOutput.AppendLine(e.Data); };
        _xld.BeginErrorReadLine();
        _xld.BeginOutputReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!File.Exists(SocketPath))
        {
            if (_xld.HasExited) throw new InvalidOperationException($"xld exited with {_xld.ExitCode}: {XldOutput}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"xld did not create {SocketPath}: {XldOutput}");
            Thread.Sleep(20);
        }
    }

    /// <summary>Where xld serves its HTTP API (bearer tokens from <c>xl token-create</c>).</summary>
    public int HttpPort { get; }
    public Uri HttpBase => new($"http://127.0.0.1:{HttpPort}/api/v1/");

    /// <summary>A bearer token for the HTTP API, made with the real <c>xl token-create</c>.</summary>
    public string HttpToken(string name, string scope = "admin")
    {
        var r = Xl("token-create", name, "--scope", scope);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout.Trim();
    }

    public HttpClient HttpClient(string? token)
    {
        var c = new HttpClient { BaseAddress = HttpBase };
        if (token is not null) c.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    /// <summary>POSTs a command with <paramref name="body"/> as its JSON arguments; returns the status and xld's reply.</summary>
    public static async Task<(System.Net.HttpStatusCode, System.Text.Json.JsonElement)> Post(HttpClient c, string command, object? body = null)
    {
        var content = new StringContent(body is null ? "" : System.Text.Json.JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var r = await c.PostAsync(command, content);
        var json = System.Text.Json.JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone();
        return (r.StatusCode, json);
    }

    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public string XldOutput { get { lock (_xldOutput) return _xldOutput.ToString(); } }

    public Process XldProcess => _xld;

    internal static ProcessStartInfo Dotnet(string dll, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>Runs xl with the given arguments and returns its exit code and output.</summary>
    public XlResult Xl(params string[] args) => XlWithInput(null, TimeSpan.FromSeconds(60), args);

    public XlResult XlWithInput(string? stdin, TimeSpan timeout, params string[] args)
    {
        var psi = Dotnet(Paths.Xl, args);
        psi.Environment["XENSHARP_XLD_SOCKET"] = SocketPath;
        psi.WorkingDirectory = Paths.Repo;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(true);
            throw new TimeoutException($"xl {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new XlResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// Writes an xl.cfg for the HVM test guest with <paramref name="memoryMiB"/> and the extra xl.cfg lines in
    /// <paramref name="settings"/>, creates it with xl, and returns its domain id. Skips when the guest is not built.
    /// </summary>
    public string CreateHvm(string name, string settings = "", int memoryMiB = 16)
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        var cfg = Path.Combine(Directory, $"{name}.cfg");
        File.WriteAllText(cfg, $"name=\"{name}\"\ntype=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory={memoryMiB}\n{settings}\n");
        var r = Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
        return DomainId(name);
    }

    /// <summary>The domain's id, from <c>xl list NAME</c>.</summary>
    public string DomainId(string name) => Xl("list", name).Stdout.Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];

    /// <summary>Types <paramref name="input"/> on the domain's console with <c>xl console</c>, then detaches with Ctrl-].</summary>
    public XlResult Type(string domain, string input) =>
        XlWithInput(input + "\u001d", TimeSpan.FromSeconds(30), "console", domain);

    /// <summary>Starts <c>xl console</c> and returns the running process, for tests that read output as it comes.</summary>
    public Process StartConsole(string domain)
    {
        var psi = Dotnet(Paths.Xl, "console", domain);
        psi.Environment["XENSHARP_XLD_SOCKET"] = SocketPath;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardInput = true;
        psi.RedirectStandardError = true;
        return Process.Start(psi)!;
    }

    public string ConsoleLog(string name)
    {
        var path = Path.Combine(LogDirectory, "console", $"guest-{name}.log");
        if (!File.Exists(path)) return "";
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(f).ReadToEnd();
    }

    public static void WaitUntil(Func<bool> condition, TimeSpan timeout, Func<string> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out: {describe()}");
            Thread.Sleep(25);
        }
    }

    public void Dispose()
    {
        if (!_xld.HasExited)
        {
            Posix_kill(_xld.Id, 15);
            if (!_xld.WaitForExit(20000)) _xld.Kill(true);
        }
        _xld.Dispose();
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
        foreach (var root in new[] { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup", "/sys/fs/cgroup/unified" })
            try { System.IO.Directory.Delete(Path.Combine(root, CgroupName)); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Posix_kill(int pid, int sig);
}

public sealed record XlResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

internal static class Paths
{
    public static string Repo { get; } = FindRepo();
    private static string Configuration => AppContext.BaseDirectory.Contains("/Release/") ? "Release" : "Debug";
    public static string Xld => Path.Combine(Repo, "src", "XenSharp.Daemon", "bin", Configuration, "net10.0", "xld.dll");
    public static string Xl => Path.Combine(Repo, "src", "XenSharp.Cli", "bin", Configuration, "net10.0", "xl.dll");
    public static string HvmGuest => Path.Combine(Repo, "guests", "build", "hvm-hello.elf");

    private static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "XenSharp.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root");
    }
}
