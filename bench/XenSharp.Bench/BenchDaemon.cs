using System.Diagnostics;
using System.Runtime.InteropServices;

/// <summary>An xld of the bench's own, as the integration tests' fixture starts it.</summary>
sealed class BenchDaemon : IDisposable
{
    private readonly Process _p;
    private readonly string _xl, _repo;
    private readonly string _cgroup = $"xensharp-bench-{Environment.ProcessId}";
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), $"xensharp-bench-{Environment.ProcessId}");
    public string Socket => Path.Combine(Dir, "xld.sock");
    public string XenstoredSocket => Path.Combine(Dir, "xenstored.sock");

    public BenchDaemon(string xld, string xl, string repo)
    {
        _xl = xl;
        _repo = repo;
        Directory.CreateDirectory(Dir);
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { xld, "--socket", Socket, "--state-dir", Path.Combine(Dir, "state"), "--log-dir", Path.Combine(Dir, "log"),
                     "--host-reserve-mib", "1024", "--shutdown-timeout", "5", "--xenstored-socket", XenstoredSocket, "--cgroup", _cgroup })
            psi.ArgumentList.Add(a);
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, _) => { };
        _p.ErrorDataReceived += (_, _) => { };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
        var end = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(Socket) || !File.Exists(XenstoredSocket))
        {
            if (_p.HasExited || DateTime.UtcNow > end) throw new InvalidOperationException("xld did not start");
            Thread.Sleep(20);
        }
    }

    public string Xl(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = _repo };
        psi.ArgumentList.Add(_xl);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["XENSHARP_XLD_SOCKET"] = Socket;
        using var p = Process.Start(psi)!;
        string o = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"xl {string.Join(' ', args)}: {o.Trim()}");
        return o;
    }

    public void Create(string cfg) => Xl("create", cfg);

    public string Console(string name)
    {
        var path = Path.Combine(Dir, "log", "console", $"guest-{name}.log");
        if (!File.Exists(path)) return "";
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(f).ReadToEnd();
    }

    public string WaitConsole(string name, string text, TimeSpan timeout)
    {
        var end = DateTime.UtcNow + timeout;
        string log;
        while (!(log = Console(name)).Contains(text))
        {
            if (DateTime.UtcNow > end) throw new TimeoutException($"{name} did not print \"{text}\":\n{log}");
            Thread.Sleep(50);
        }
        return log;
    }

    public void WaitGone(string name)
    {
        var end = DateTime.UtcNow.AddSeconds(60);
        while (Xl("list").Split('\n').Any(l => l.StartsWith(name + " ", StringComparison.Ordinal)) && DateTime.UtcNow < end) Thread.Sleep(50);
    }

    public void Dispose()
    {
        if (!_p.HasExited)
        {
            kill(_p.Id, 15);
            if (!_p.WaitForExit(20000)) _p.Kill(true);
        }
        _p.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
        foreach (var root in new[] { "/sys/fs/cgroup/cpu", "/sys/fs/cgroup", "/sys/fs/cgroup/unified" })
            try { Directory.Delete(Path.Combine(root, _cgroup)); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    [DllImport("libc")]
    private static extern int kill(int pid, int sig);
}
