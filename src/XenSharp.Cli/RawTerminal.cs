using System.Diagnostics;

namespace XenSharp.Cli;

/// <summary>Puts an interactive terminal in raw mode (every key straight to the guest) and restores it on dispose.</summary>
public sealed class RawTerminal : IDisposable
{
    private readonly string? _saved;

    private RawTerminal(string? saved) => _saved = saved;

    public static RawTerminal Enter()
    {
        if (Console.IsInputRedirected) return new RawTerminal(null);
        string? saved = Stty("-g")?.Trim();
        if (saved is not null) Stty("raw -echo");
        return new RawTerminal(saved);
    }

    private static string? Stty(string args)
    {
        try
        {
            var psi = new ProcessStartInfo("stty", args) { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // No stty: the console still works, only without raw mode.
        }
    }

    public void Dispose()
    {
        if (_saved is not null) Stty(_saved);
    }
}
