using System.Diagnostics;

namespace XenSharp.Emu.Tests;

/// <summary>Builds and runs helpers with the host's gcc; tests skip with a reason when gcc is missing.</summary>
internal static class Native
{
    public static string GuestsDir { get; } = FindGuests();

    private static string FindGuests()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var g = Path.Combine(d.FullName, "tests", "XenSharp.Emu.Tests", "guests");
            if (Directory.Exists(g)) return g;
            g = Path.Combine(d.FullName, "guests");
            if (Directory.Exists(g) && File.Exists(Path.Combine(g, "flags.c"))) return g;
        }
        throw new DirectoryNotFoundException("tests/XenSharp.Emu.Tests/guests not found above " + AppContext.BaseDirectory);
    }

    public static string? Which(string tool)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var p = Path.Combine(dir, tool);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public static (int Code, string Out, string Err) Exec(string file, string args, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null, UseShellExecute = false,
        };
        using var p = Process.Start(psi)!;
        var outTask = p.StandardOutput.ReadToEndAsync();
        var errTask = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        p.WaitForExit();
        return (p.ExitCode, outTask.Result, errTask.Result);
    }

    public static string Run(string file, string args, string? stdin = null)
    {
        var (code, o, e) = Exec(file, args, stdin);
        if (code != 0) throw new InvalidOperationException($"{file} {args} exited {code}: {e}{o}");
        return o;
    }
}
