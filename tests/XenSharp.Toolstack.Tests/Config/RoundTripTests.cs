using XenSharp.Toolstack.Config;

namespace XenSharp.Toolstack.Tests.Config;

public sealed class RoundTripTests
{
    public static TheoryData<string> Configs => new()
    {
        ValidConfigTests.PvLinux,
        ValidConfigTests.HvmGuest,
        ValidConfigTests.PvhLinux,
        "name='min'\nkernel='/k'",
        "name='colo'\ntype='hvm'\ndisk=['vdev=xvda,colo,colo-host=h,colo-port=9000,target=/a']\nvif=['forwarddev=eth1,colo_compare_out=c0']\nvfb=['vnc=1,vnclisten=0.0.0.0']",
        "name = \"q\"\ntype='hvm'\nextra = \"a \\\"quoted\\\" \\\\ value\\twith tab\"\nfoo_unknown = [ 1, 'x', [ 'y' ] ]\ncpus_soft = [ 'all', '1' ]",
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void Print_ThenParse_GivesAnEqualConfig(string text)
    {
        var cfg = DomainConfig.Parse(text);
        var printed = cfg.ToXlCfg();
        var again = DomainConfig.Parse(printed, "printed.cfg");
        Assert.Equal(cfg, again);
        Assert.Equal(printed, again.ToXlCfg()); // printing is stable
    }

    [Fact]
    public void Printed_LooksLikeXlCfg()
    {
        var printed = DomainConfig.Parse(ValidConfigTests.PvLinux).ToXlCfg();
        Assert.StartsWith("name = \"pv-web01\"\ntype = \"pv\"\nuuid = \"8c2f3a1e-5b7d-4e21-9f0a-1b2c3d4e5f60\"\n", printed);
        Assert.Contains("memory = 1024\n", printed);
        Assert.Contains("cpus = \"0-3,^1\"\n", printed);
        Assert.Contains("disk = [\n    \"format=raw, vdev=xvda, access=rw, target=/dev/vg0/web01-root\",\n", printed);
        Assert.Contains("vif = [\n    \"mac=00:16:3e:74:3d:76,bridge=xenbr0,ip=10.0.0.2,rate=10Mb/s,vifname=web01.0\",\n]\n", printed);
    }

    [Fact]
    public void ControlCharacters_SurviveQuoting()
    {
        var cfg = DomainConfig.Parse("name='c'\nkernel='/k'") with { Extra = "bell\a nul\0 \x7f end" };
        Assert.Equal(cfg, DomainConfig.Parse(cfg.ToXlCfg()));
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void Json_RoundTrips(string text)
    {
        var cfg = DomainConfig.Parse(text);
        var json = cfg.ToJson();
        Assert.Equal(cfg, DomainConfig.FromJson(json));
    }

    [Fact]
    public void Json_UsesCamelCaseAndXlActionNames()
    {
        var json = DomainConfig.Parse(ValidConfigTests.PvLinux).ToJson();
        Assert.Contains("\"name\": \"pv-web01\"", json);
        Assert.Contains("\"onCrash\": \"coredump-restart\"", json);
        Assert.Contains("\"memoryMiB\": 1024", json);
        Assert.Contains("\"virtualDeviceNumber\": 51712", json);
        Assert.DoesNotContain("kernelCommandLine", json);
    }
}
