namespace XenSharp.Integration.Tests;

/// <summary>
/// disk= and vif= of a PV domain reach dom0's backends: the xenbus directories are written, the backend waits
/// for its frontend (InitWait), the image is locked against a second writer, and hot-plug works with xl.
/// </summary>
public sealed class BackendTests : IClassFixture<XldFixture>
{
    private static readonly string Kernel = Path.Combine(Paths.Repo, "guests", "build", "pv-test.elf");
    private readonly XldFixture _xld;

    public BackendTests(XldFixture xld) => _xld = xld;

    private string Image(string name)
    {
        var path = Path.Combine(_xld.Directory, name);
        using (var f = File.Create(path)) f.SetLength(8 << 20);
        return path;
    }

    private string Create(string name, string extra)
    {
        Skip.IfNot(File.Exists(Kernel), $"{Kernel} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, $"{name}.cfg");
        // The test kernel ends with SCHEDOP_shutdown(suspend), which leaves the domain in place; it needs two vCPUs.
        File.WriteAllText(cfg, $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{Kernel}\"\nextra=\"reason=2\"\nmemory=32\nvcpus=2\n{extra}\n");
        var r = _xld.Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
        return _xld.Xl("list", name).Stdout.Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
    }

    [SkippableFact]
    public void DisksAndNicsFromTheConfigAreAttachedAndListed()
    {
        var img = Image("disk-a.img");
        string id = Create("be-a", $"disk = [ \"{img},raw,xvda,rw\" ]\nvif = [ \"mac=00:16:3e:00:00:01,bridge=xsbr-test\" ]");
        var state = _xld.Xl("xenstore-read", $"/local/domain/0/backend/vbd/{id}/51712/state");
        Assert.True(state.Stdout.Trim() == "2", $"{state}\n{_xld.Xl("xenstore-ls", "/local/domain/0").Stdout}\n{_xld.Xl("dmesg").Stdout}");
        var fe = _xld.Xl("xenstore-read", $"/local/domain/{id}/device/vbd/51712/backend");
        Assert.True(fe.Stdout.Trim() == $"/local/domain/0/backend/vbd/{id}/51712", $"{fe}\n{_xld.Xl("xenstore-ls", $"/local/domain/{id}").Stdout}\n{_xld.Xl("dmesg").Stdout}");
        Assert.Equal("16384", _xld.Xl("xenstore-read", $"/local/domain/0/backend/vbd/{id}/51712/sectors").Stdout.Trim());
        Assert.Equal("00:16:3e:00:00:01", _xld.Xl("xenstore-read", $"/local/domain/{id}/device/vif/0/mac").Stdout.Trim());
        Assert.Contains(img, _xld.Xl("block-list", "be-a").Stdout);
        Assert.Contains("00:16:3e:00:00:01", _xld.Xl("network-list", "be-a").Stdout);

        // The image is now held read-write by be-a: a second domain may not open it read-write.
        var cfg = Path.Combine(_xld.Directory, "be-b.cfg");
        File.WriteAllText(cfg, $"name=\"be-b\"\ntype=\"pv\"\nkernel=\"{Kernel}\"\nmemory=32\ndisk = [ \"{img},raw,xvda,rw\" ]\n");
        var second = _xld.Xl("create", cfg);
        Assert.Equal(1, second.ExitCode);
        Assert.Contains("xvda", second.Stderr);
        Assert.DoesNotContain("be-b", _xld.Xl("list").Stdout);

        Assert.Equal(0, _xld.Xl("destroy", "be-a").ExitCode);
        Assert.Equal(1, _xld.Xl("xenstore-read", $"/local/domain/0/backend/vbd/{id}/51712/state").ExitCode);
    }

    [SkippableFact]
    public void HotPlugWithXl()
    {
        Create("be-hot", "");
        var img = Image("disk-hot.img");
        var attach = _xld.Xl("block-attach", "be-hot", $"{img},raw,xvdb,ro");
        Assert.True(attach.ExitCode == 0, attach.ToString());
        Assert.Contains("(ro)", _xld.Xl("block-list", "be-hot").Stdout);
        Assert.Equal(0, _xld.Xl("network-attach", "be-hot", "bridge=xsbr-hot").ExitCode);
        Assert.Matches("00:16:3e:[0-9a-f:]{8}", _xld.Xl("network-list", "be-hot").Stdout);
        Assert.Equal(0, _xld.Xl("block-detach", "be-hot", "xvdb").ExitCode);
        Assert.DoesNotContain(img, _xld.Xl("block-list", "be-hot").Stdout);
        Assert.Equal(0, _xld.Xl("network-detach", "be-hot", "0").ExitCode);
        Assert.Equal(1, _xld.Xl("block-detach", "be-hot", "xvdz").ExitCode);
        Assert.Equal(1, _xld.Xl("block-attach", "be-hot", "not-a-spec").ExitCode);
        Assert.Equal(0, _xld.Xl("destroy", "be-hot").ExitCode);
    }
}
