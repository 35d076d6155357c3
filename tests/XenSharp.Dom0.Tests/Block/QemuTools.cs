namespace XenSharp.Dom0.Tests.Block;

/// <summary>
/// qemu-img and qemu-io (Debian qemu-utils, installed by scripts/setup.sh): the reference implementation that makes
/// the images our qcow2 code reads and checks the images it writes. Tests needing them skip, with the reason, when absent.
/// </summary>
internal static class QemuTools
{
    private static readonly Lazy<string?> s_missing = new(() =>
    {
        foreach (var tool in new[] { "qemu-img", "qemu-io" })
            if (!TryRun(tool, ["--version"]).Ok) return $"{tool} is not installed (Debian package qemu-utils; scripts/setup.sh installs it)";
        return null;
    });

    /// <summary>Why the qemu tools cannot be used, or null.</summary>
    public static string? Missing => s_missing.Value;

    public static void SkipIfMissing() => Skip.If(Missing is not null, Missing);

    /// <summary>Runs a tool that must succeed; returns its output.</summary>
    public static string Run(string tool, params string[] args)
    {
        var (ok, output) = TryRun(tool, args);
        Assert.True(ok, $"{tool} {string.Join(' ', args)} failed: {output}");
        return output;
    }

    public static (bool Ok, string Output) TryRun(string tool, IEnumerable<string> args) => HostCommand.TryRun(tool, args);

    /// <summary><c>qemu-img check</c> finds neither errors nor leaks.</summary>
    public static void AssertClean(string image)
    {
        var (ok, output) = TryRun("qemu-img", ["check", image]);
        Assert.True(ok, output);
        Assert.Contains("No errors were found", output);
        Assert.DoesNotContain("leaked", output);
    }

    /// <summary>The guest-visible contents as QEMU sees them (<c>qemu-img convert -O raw</c>).</summary>
    public static byte[] GuestView(string image, string? snapshot = null)
    {
        string raw = image + ".raw";
        var args = new List<string> { "convert", "-O", "raw" };
        if (snapshot is not null) args.AddRange(["-l", $"snapshot.name={snapshot}"]);
        args.AddRange([image, raw]);
        Run("qemu-img", [.. args]);
        try { return File.ReadAllBytes(raw); }
        finally { File.Delete(raw); }
    }
}
