using System.Diagnostics;

namespace XenSharp.Integration.Tests;

/// <summary>The toolstack's xenstore layout for a domain, seen through xl and through Xen's own xenstore tools.</summary>
public sealed class XenstoreLayoutTests : IClassFixture<XldFixture>
{
    private readonly XldFixture _xld;

    public XenstoreLayoutTests(XldFixture xld) => _xld = xld;

    [SkippableFact]
    public void ADomainsNodesAppearOnCreateAndGoOnDestroy()
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, "xs.cfg");
        File.WriteAllText(cfg, $"name=\"xs-a\"\ntype=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory=16\nmaxmem=32\n");
        Assert.Equal(0, _xld.Xl("create", cfg).ExitCode);
        string id = _xld.Xl("list", "xs-a").Stdout.Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];

        Assert.Equal("xs-a", _xld.Xl("xenstore-read", $"/local/domain/{id}/name").Stdout.Trim());
        Assert.Equal("32768", _xld.Xl("xenstore-read", $"/local/domain/{id}/memory/static-max").Stdout.Trim());
        Assert.Equal("16384", _xld.Xl("xenstore-read", $"/local/domain/{id}/memory/target").Stdout.Trim());
        var ls = _xld.Xl("xenstore-ls", "-p", $"/local/domain/{id}").Stdout;
        Assert.Contains("cpu = \"\"", ls);
        Assert.Contains("availability = \"online\"", ls);
        Assert.Matches($@"control = """"\s+\(n{id}\)", ls);

        // Xen's own client tools talk to our xenstored socket unchanged.
        if (File.Exists("/usr/bin/xenstore-read"))
        {
            var psi = new ProcessStartInfo("/usr/bin/xenstore-read", $"/local/domain/{id}/domid") { RedirectStandardOutput = true, UseShellExecute = false };
            psi.Environment["XENSTORED_PATH"] = _xld.XenstoredSocket;
            using var p = Process.Start(psi)!;
            Assert.Equal(id, p.StandardOutput.ReadToEnd().Trim());
            p.WaitForExit();
        }

        Assert.Equal(0, _xld.Xl("rename", "xs-a", "xs-b").ExitCode);
        Assert.Equal("xs-b", _xld.Xl("xenstore-read", $"/local/domain/{id}/name").Stdout.Trim());
        Assert.Equal(0, _xld.Xl("destroy", "xs-b").ExitCode);
        var gone = _xld.Xl("xenstore-read", $"/local/domain/{id}/name");
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains("ENOENT", gone.Stderr);
    }

    [Fact]
    public void XlWritesAndRemovesNodes()
    {
        Assert.Equal(0, _xld.Xl("xenstore-write", "/tool/test/a", "1", "/tool/test/b", "two").ExitCode);
        Assert.Equal("two", _xld.Xl("xenstore-read", "/tool/test/b").Stdout.Trim());
        Assert.Equal(0, _xld.Xl("xenstore-rm", "/tool/test").ExitCode);
        Assert.Equal(1, _xld.Xl("xenstore-read", "/tool/test/a").ExitCode);
    }
}
