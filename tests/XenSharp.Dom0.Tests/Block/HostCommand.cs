using System.Diagnostics;

namespace XenSharp.Dom0.Tests.Block;

/// <summary>Runs a host tool (losetup, qemu-img, ...) and returns whether it succeeded, with its output.</summary>
internal static class HostCommand
{
    public static (bool Ok, string Output) TryRun(string tool, IEnumerable<string> args)
    {
        try
        {
            var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            string o = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode == 0, (o + err.Result).Trim());
        }
        catch (System.ComponentModel.Win32Exception e) { return (false, e.Message); }
    }
}
