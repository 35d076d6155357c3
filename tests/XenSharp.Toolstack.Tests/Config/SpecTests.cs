using XenSharp.Toolstack.Config;

namespace XenSharp.Toolstack.Tests.Config;

public sealed class CpuAffinityTests
{
    [Theory]
    [InlineData("0", 8, "0")]
    [InlineData("0-3", 8, "0,1,2,3")]
    [InlineData("0-3,5,^1", 8, "0,2,3,5")]
    [InlineData("^1,0-3", 8, "0,1,2,3")] // terms apply left to right, as in xl
    [InlineData("all", 4, "0,1,2,3")]
    [InlineData("all,^0-1", 4, "2,3")]
    [InlineData("2,,3,", 8, "2,3")] // empty elements are skipped like strtok
    [InlineData("6-9", 8, "6,7")] // cpus the host lacks are dropped
    public void Expands(string text, int hostCpus, string expected) =>
        Assert.Equal(expected, string.Join(",", CpuAffinity.Parse(text).Resolve(hostCpus)));

    [Fact]
    public void NodeTerms_UseTheTopology()
    {
        var a = CpuAffinity.Parse("nodes:0-1,^node:1,^2");
        Assert.True(a.UsesNodes);
        static IEnumerable<int> Topo(int n) => Enumerable.Range(n * 4, 4);
        Assert.Equal([0, 1, 3], a.Resolve(16, Topo));
        Assert.Throws<InvalidOperationException>(() => a.Resolve(16));
    }

    [Theory]
    [InlineData("0-", "not a valid cpu")]
    [InlineData("-3", "not a valid cpu")]
    [InlineData("3-1", "below its start")]
    [InlineData("^", "not a valid cpu")]
    [InlineData("a", "not a valid cpu")]
    [InlineData("1 ", "not a valid cpu")]
    [InlineData("nodes:", "not a valid node")]
    [InlineData("^all", "can't be combined")]
    [InlineData("", "empty cpu list")]
    [InlineData("99999999", "not a valid cpu")]
    public void Rejects(string text, string fragment)
    {
        Assert.False(CpuAffinity.TryParse(text, out _, out var error));
        Assert.Contains(fragment, error);
    }

    [Theory]
    [InlineData("0-3,5,^1")]
    [InlineData("all")]
    [InlineData("nodes:0,^nodes:1-2")]
    public void PrintsBackTheSameTerms(string text) =>
        Assert.Equal(CpuAffinity.Parse(text), CpuAffinity.Parse(CpuAffinity.Parse(text).ToString()));
}

public sealed class VirtualDeviceTests
{
    [Theory]
    [InlineData("xvda", 51712)]
    [InlineData("xvda1", 51713)]
    [InlineData("xvdb", 51728)]
    [InlineData("xvdp15", 51967)]
    [InlineData("xvdq", (1 << 28) | (16 << 8))]
    [InlineData("xvda16", (1 << 28) | 16)]
    [InlineData("xvdz", (1 << 28) | (25 << 8))]
    [InlineData("xvdaa", (1 << 28) | (26 << 8))]
    [InlineData("xvdba", (1 << 28) | (52 << 8))]
    [InlineData("hda", 768)]
    [InlineData("hda1", 769)]
    [InlineData("hdb", 832)]
    [InlineData("hdc", 5632)]
    [InlineData("hdd63", 5759)]
    [InlineData("sda", 2048)]
    [InlineData("sdb3", 2067)]
    [InlineData("sdp15", 2303)]
    [InlineData("d0p0", 51712)]
    [InlineData("d20p3", (1 << 28) | (20 << 8) | 3)]
    public void Numbers(string vdev, int expected) => Assert.Equal(expected, VirtualDevice.GetNumber(vdev));

    [Theory]
    [InlineData("vda")]
    [InlineData("xvd")]
    [InlineData("xvda0")]
    [InlineData("xvda01")]
    [InlineData("xvda256")]
    [InlineData("hde")]
    [InlineData("hda64")]
    [InlineData("sdq")]
    [InlineData("sda16")]
    [InlineData("XVDA")]
    [InlineData("xvda-1")]
    public void Rejects(string vdev) => Assert.False(VirtualDevice.TryGetNumber(vdev, out _, out _));

    [Theory]
    [InlineData(0, "xvda")]
    [InlineData(25, "xvdz")]
    [InlineData(26, "xvdaa")]
    [InlineData(701, "xvdzz")]
    [InlineData(702, "xvdaaa")]
    public void XvdNames_InvertTheLetterEncoding(int disk, string name)
    {
        Assert.Equal(name, VirtualDevice.XvdName(disk));
        var n = VirtualDevice.GetNumber(name);
        var decoded = (n & (1 << 28)) != 0 ? (n >> 8) & 0xFFFFF : (n >> 4) & 0xF;
        Assert.Equal(disk, decoded);
    }
}

public sealed class DiskSpecTests
{
    [Fact]
    public void Positional_Full()
    {
        var d = DiskSpec.Parse("/srv/a.img,raw,xvda,rw");
        Assert.Equal(("/srv/a.img", DiskFormat.Raw, "xvda", DiskAccess.ReadWrite, false), (d.Target, d.Format, d.Vdev, d.Access, d.IsCdrom));
    }

    [Theory]
    [InlineData("phy:/dev/vg/lv,xvda,w", "/dev/vg/lv", DiskFormat.Raw, "xvda", DiskAccess.ReadWrite)]
    [InlineData("file:/img,hda,r", "/img", DiskFormat.Raw, "hda", DiskAccess.ReadOnly)]
    [InlineData("qcow2:/img.q2,xvdb,ro", "/img.q2", DiskFormat.Qcow2, "xvdb", DiskAccess.ReadOnly)]
    [InlineData("/img,,xvdc", "/img", DiskFormat.Raw, "xvdc", DiskAccess.ReadWrite)]
    [InlineData("/img,vhd,sda", "/img", DiskFormat.Vhd, "sda", DiskAccess.ReadWrite)]
    [InlineData("format=qed, vdev=xvde, access=ro, target=/x,y", "/x,y", DiskFormat.Qed, "xvde", DiskAccess.ReadOnly)]
    [InlineData("vdev=xvdf,target=/img", "/img", DiskFormat.Raw, "xvdf", DiskAccess.ReadWrite)]
    [InlineData("/img, raw, xvdg, w", "/img", DiskFormat.Raw, "xvdg", DiskAccess.ReadWrite)]
    public void Forms(string spec, string target, DiskFormat format, string vdev, DiskAccess access)
    {
        var d = DiskSpec.Parse(spec);
        Assert.Equal((target, format, vdev, access), (d.Target, d.Format, d.Vdev, d.Access));
    }

    [Fact]
    public void Flags_AndKeyValues()
    {
        var d = DiskSpec.Parse("vdev=xvda, backend=storage-dom, backendtype=qdisk, script=block-custom, no-discard, direct-io-safe, specification=virtio, untrusted, target=/i");
        Assert.Equal(("storage-dom", DiskBackendType.Qdisk, "block-custom", false, true, DiskSpecification.Virtio, false),
            (d.Backend, d.BackendType!.Value, d.Script, d.Discard!.Value, d.DirectIoSafe, d.Specification!.Value, d.Trusted!.Value));
        Assert.True(DiskSpec.Parse("/iso,raw,hdc,r,cdrom").IsCdrom); // bare flag, not a 5th positional
        Assert.True(DiskSpec.Parse("devtype=cdrom,vdev=hdc,access=ro,target=/x.iso").IsCdrom);
    }

    [Fact]
    public void LegacyScriptPrefix_BecomesScript() =>
        Assert.Equal("block-iscsi", DiskSpec.Parse("iscsi:iqn.2001-05.com.example:disk1,xvda,w").Script);

    [Theory]
    [InlineData("/a,raw,xvda,rw,extra", "too many positional")]
    [InlineData("/a,raw,xvda,rw,vdev=xvdb", "vdev respecified")]
    [InlineData("format=raw,format=qcow2,vdev=xvda,target=/a", "format respecified")]
    [InlineData("/a,raw,xvda:floppy,rw", "unknown device type 'floppy'")]
    [InlineData("devtype=tape,vdev=xvda,target=/a", "unknown devtype")]
    [InlineData("vdev=xvda,target=", "empty target")]
    [InlineData("access=wr,vdev=xvda,target=/a", "unknown access mode 'wr'")]
    [InlineData("backendtype=nfs,vdev=xvda,target=/a", "unknown backendtype")]
    public void Rejects(string spec, string fragment)
    {
        Assert.False(DiskSpec.TryParse(spec, out _, out var errors));
        Assert.Contains(errors, e => e.Contains(fragment));
    }

    [Theory]
    [InlineData("/srv/a.img,raw,xvda,rw")]
    [InlineData("phy:/dev/vg/lv,xvda,w")]
    [InlineData("file:/iso,hdc:cdrom,r")]
    [InlineData(",,hdd:cdrom,r")]
    [InlineData("vdev=xvda, backend=sd, backendtype=phy, script=s, discard, direct-io-safe, trusted, grant_usage=1, colo, colo-host=h, colo-port=9000, target=/a, b")]
    public void CanonicalForm_RoundTrips(string spec)
    {
        var d = DiskSpec.Parse(spec);
        Assert.Equal(d, DiskSpec.Parse(d.ToString()));
    }
}

public sealed class VifSpecTests
{
    [Fact]
    public void AllKeys()
    {
        var v = VifSpec.Parse("mac=00:16:3e:01:02:03, bridge=xenbr0,ip=10.0.0.2 fd00::2/64,rate=1GB/s@20ms,model=rtl8139,vifname=vm.0,script=vif-route,type=vif,backend=netdom,mtu=1500,devid=3,gatewaydev=eth1,vlan=10,trusted,forwarddev=eth2");
        Assert.Equal(("00:16:3e:01:02:03", "xenbr0", "10.0.0.2 fd00::2/64", "rtl8139", "vm.0", "vif-route"), (v.Mac, v.Bridge, v.Ip, v.Model, v.VifName, v.Script));
        Assert.Equal((VifType.Vif, "netdom", 1500, 3, "eth1", "10", true), (v.Type!.Value, v.Backend, v.Mtu!.Value, v.DevId!.Value, v.GatewayDev, v.Vlan, v.Trusted!.Value));
        Assert.Equal((1_000_000_000UL, 20_000U, 20_000_000UL), (v.Rate!.BytesPerSecond, v.Rate.IntervalMicroseconds, v.Rate.BytesPerInterval));
        Assert.Equal("eth2", Assert.Single(v.Other).Value);
        Assert.Equal(v, VifSpec.Parse(v.ToString()));
    }

    [Theory]
    [InlineData("10Mb/s", 1_250_000UL, 50_000U)]
    [InlineData("100MB/s", 100_000_000UL, 50_000U)]
    [InlineData("8Kb/s@1s", 1_000UL, 1_000_000U)]
    [InlineData("5B/s@250us", 5UL, 250U)]
    [InlineData("1GB/s@20", 1_000_000_000UL, 20_000_000U)]
    public void Rates(string text, ulong bytesPerSecond, uint interval)
    {
        Assert.True(VifRate.TryParse(text, out var r, out var err), err);
        Assert.Equal((bytesPerSecond, interval), (r!.BytesPerSecond, r.IntervalMicroseconds));
    }

    [Theory]
    [InlineData("10Mb")]
    [InlineData("10mb/s")]
    [InlineData("0Mb/s")]
    [InlineData("@20ms")]
    [InlineData("10Mb/s@")]
    [InlineData("10Mb/s@0ms")]
    [InlineData("1.5Mb/s")]
    public void BadRates(string text) => Assert.False(VifRate.TryParse(text, out _, out _));

    [Fact]
    public void DeprecatedAndUnsupportedOptions_Warn()
    {
        Assert.True(VifSpec.TryParse("netdev=eth0,accel=x", out var v, out _, out var warnings));
        Assert.Equal("eth0", v!.GatewayDev);
        Assert.Equal(2, warnings.Count);
    }

    [Fact]
    public void AllErrorsInOneSpec_AreReported()
    {
        Assert.False(VifSpec.TryParse("mac=zz,rate=x,foo=1,bridge", out _, out var errors, out _));
        Assert.Equal(4, errors.Count);
    }
}
