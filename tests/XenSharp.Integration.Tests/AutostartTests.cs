namespace XenSharp.Integration.Tests;

/// <summary>xld creates the domains of its auto directory when it starts, as Xen's xendomains does at boot.</summary>
public sealed class AutostartTests
{
    [SkippableFact]
    public void ConfigsInTheAutoDirectoryStartWithXldAndABadOneIsReportedNotFatal()
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        var root = Directory.CreateTempSubdirectory("xensharp-auto").FullName;
        try
        {
            // /etc/xen-like: the real configs and the kernel side by side, the kernel named relatively.
            var etc = Directory.CreateDirectory(Path.Combine(root, "etc")).FullName;
            var auto = Directory.CreateDirectory(Path.Combine(root, "auto")).FullName;
            File.CreateSymbolicLink(Path.Combine(etc, "hello.elf"), Paths.HvmGuest);
            File.WriteAllText(Path.Combine(etc, "web1.cfg"), "name = \"auto-web1\"\ntype = \"hvm\"\nkernel = \"hello.elf\"\nmemory = 16\n");
            File.WriteAllText(Path.Combine(etc, "broken.cfg"), "name = \"auto-broken\"\nmemory = \"abc\"\n");
            File.CreateSymbolicLink(Path.Combine(auto, "10-web1"), Path.Combine(etc, "web1.cfg"));
            File.CreateSymbolicLink(Path.Combine(auto, "20-broken"), Path.Combine(etc, "broken.cfg"));
            File.CreateSymbolicLink(Path.Combine(auto, "30-web1-again"), Path.Combine(etc, "web1.cfg"));
            File.WriteAllText(Path.Combine(auto, ".hidden.cfg"), "this is not read");

            using var xld = new XldFixture(auto);
            XldFixture.WaitUntil(() => xld.ConsoleLog("auto-web1").Contains("ready"), TimeSpan.FromSeconds(60), () => xld.Xl("dmesg").Stdout);
            var list = xld.Xl("list").Stdout;
            Assert.Contains("auto-web1", list);
            Assert.DoesNotContain("auto-broken", list);
            var dmesg = xld.Xl("dmesg").Stdout;
            Assert.Matches(@"autostart: d\d+ \(auto-web1\) created from .*/10-web1", dmesg);
            Assert.Matches(@"autostart: .*/20-broken: not started: .*line 2.*memory", dmesg);
            Assert.Contains("30-web1-again: not started: a domain named auto-web1 is already running", dmesg);
            Assert.DoesNotContain(".hidden", dmesg);
            Assert.Equal(0, xld.Xl("destroy", "auto-web1").ExitCode);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
