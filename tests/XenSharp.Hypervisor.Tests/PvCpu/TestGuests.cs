using System.Diagnostics;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>Builds a test guest with guests/Makefile (gcc and make) and reads its ELF image.</summary>
internal static class TestGuests
{
    /// <summary>Runs <c>make -C guests TARGET</c> and returns guests/build/ELF, or null when it could not be built.</summary>
    public static byte[]? Build(string makeTarget, string elf)
    {
        var guests = Path.Combine(Core.RepoRoot.Path, "guests");
        if (!File.Exists(Path.Combine(guests, "Makefile"))) return null;
        try
        {
            var p = Process.Start(new ProcessStartInfo("make", $"-C {guests} {makeTarget}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            p.WaitForExit(120_000);
        }
        catch (System.ComponentModel.Win32Exception) { }
        var path = Path.Combine(guests, "build", elf);
        return File.Exists(path) ? File.ReadAllBytes(path) : null;
    }
}
