using XenSharp.Toolstack.Config;

namespace XenSharp.Toolstack.Tests.Config;

public sealed class ValidConfigTests
{
    // Our own configs in the style of Xen's tools/examples/xlexample.* files.
    internal const string PvLinux = """
        # A paravirtualised Linux guest booted from a kernel in dom0.
        name = "pv-web01"
        type = "pv"
        uuid = "8c2f3a1e-5b7d-4e21-9f0a-1b2c3d4e5f60"

        kernel = "/var/lib/xen/images/vmlinuz-6.1"
        ramdisk = "/var/lib/xen/images/initrd-6.1.img"
        root = "/dev/xvda1 ro"
        extra = "console=hvc0 earlyprintk=xen"

        memory = 1024
        maxmem = 2048
        vcpus = 2
        maxvcpus = 4
        cpus = "0-3,^1"
        cpu_weight = 512
        cap = 150

        on_poweroff = "destroy"
        on_reboot = "restart"
        on_crash = "coredump-restart"

        vif = [ 'mac=00:16:3E:74:3D:76,bridge=xenbr0,ip=10.0.0.2,rate=10Mb/s,vifname=web01.0' ]
        disk = [
            'phy:/dev/vg0/web01-root,xvda,w',
            '/srv/xen/web01-data.qcow2,qcow2,xvdb,rw',
        ]
        """;

    internal const string HvmGuest = """
        name = "win-desktop"
        builder = "hvm"
        memory = 4096
        vcpus = 4
        cpus = ["2", "3", "4-5", "nodes:1"]
        cpus_soft = "nodes:0"
        localtime = 1
        serial = "pty"
        vnc = 1
        vnclisten = "127.0.0.1"
        vncdisplay = 3
        vncunused = 0
        on_reboot = "rename-restart"; on_soft_reset = "soft-reset"
        device_model_version = "qemu-xen"
        device_model_args = [ "-no-shutdown" ]
        boot = "dc"
        viridian = 1
        disk = [ 'format=qcow2, vdev=hda, access=rw, target=/srv/xen/win.qcow2',
                 'file:/srv/iso/win11.iso,hdc:cdrom,r',
                 ',,hdd:cdrom,r' ]
        vif = [ "model=e1000,bridge=xenbr1,type=ioemu,mtu=9000" ]
        """;

    internal const string PvhLinux = """
        name = 'pvh-db'
        type = 'pvh'
        kernel = '/boot/guest/vmlinuz'
        cmdline = 'root=/dev/xvda rw console=hvc0'
        memory = 0x800   # hex is allowed, as strtol(…, 0)
        vcpus = 2
        pool = "Pool-db"
        seclabel = "system_u:system_r:domU_t"
        serial = [ "pty", "file:/var/log/pvh-db.serial" ]
        vif = [ '' ]
        disk = [ 'vdev=xvda, access=rw, target=/dev/vg0/pvh db root' ]
        """;

    [Fact]
    public void PvLinux_IsModelledCompletely()
    {
        var r = DomainConfig.TryParse(PvLinux, "pv-web01.cfg");
        Assert.True(r.Success, string.Join("\n", r.Diagnostics));
        Assert.Empty(r.Warnings);
        var c = r.Config!;
        Assert.Equal("pv-web01", c.Name);
        Assert.Equal(DomainType.Pv, c.Type);
        Assert.Equal(Guid.Parse("8c2f3a1e-5b7d-4e21-9f0a-1b2c3d4e5f60"), c.Uuid);
        Assert.Equal((1024L, 2048L), (c.MemoryMiB!.Value, c.MaxMemMiB!.Value));
        Assert.Equal((2, 4), (c.Vcpus, c.EffectiveMaxVcpus));
        Assert.False(c.Cpus!.IsPerVcpu);
        Assert.Equal([0, 2, 3], c.Cpus.ForVcpu(3)!.Resolve(8));
        Assert.Equal((512, 150), (c.CpuWeight!.Value, c.Cap!.Value));
        Assert.Equal("root=/dev/xvda1 ro console=hvc0 earlyprintk=xen", c.KernelCommandLine);
        Assert.Equal(ActionOnShutdown.CoredumpRestart, c.OnCrash);
        Assert.Equal(ActionOnShutdown.Destroy, c.OnWatchdog);
        Assert.Equal(ActionOnShutdown.SoftReset, c.OnSoftReset);

        var vif = Assert.Single(c.Vifs);
        Assert.Equal("00:16:3e:74:3d:76", vif.Mac);
        Assert.Equal(("xenbr0", "10.0.0.2", "web01.0"), (vif.Bridge, vif.Ip, vif.VifName));
        Assert.Equal(1_250_000UL, vif.Rate!.BytesPerSecond);
        Assert.Equal(50_000U, vif.Rate.IntervalMicroseconds);

        Assert.Equal(2, c.Disks.Count);
        Assert.Equal(("/dev/vg0/web01-root", "xvda", 51712, DiskAccess.ReadWrite, DiskFormat.Raw),
            (c.Disks[0].Target, c.Disks[0].Vdev, c.Disks[0].VirtualDeviceNumber, c.Disks[0].Access, c.Disks[0].Format));
        Assert.Equal((DiskFormat.Qcow2, 51728), (c.Disks[1].Format, c.Disks[1].VirtualDeviceNumber));
    }

    [Fact]
    public void Hvm_WithLegacyBuilder_PerVcpuAffinity_CdromsAndKeptKeys()
    {
        var r = DomainConfig.TryParse(HvmGuest);
        Assert.True(r.Success, string.Join("\n", r.Diagnostics));
        var c = r.Config!;
        Assert.Equal(DomainType.Hvm, c.Type);
        Assert.True(c.Cpus!.IsPerVcpu);
        Assert.Equal(4, c.Cpus.Sets.Count);
        Assert.Equal([4, 5], c.Cpus.ForVcpu(2)!.Resolve(8));
        Assert.True(c.Cpus.ForVcpu(3)!.UsesNodes);
        Assert.Equal([4, 5, 6, 7], c.Cpus.ForVcpu(3)!.Resolve(8, n => Enumerable.Range(n * 4, 4)));
        Assert.Null(c.Cpus.ForVcpu(4));
        Assert.Equal([0, 1, 2, 3], c.CpusSoft!.ForVcpu(0)!.Resolve(8, n => Enumerable.Range(n * 4, 4)));
        Assert.True(c.Localtime);
        Assert.Equal(["pty"], c.Serial!);
        Assert.Equal(new VncSettings { Enabled = true, Listen = "127.0.0.1", Display = 3, FindUnused = false }, c.Vnc);
        Assert.Equal(ActionOnShutdown.RenameRestart, c.OnReboot);

        Assert.Equal(3, c.Disks.Count);
        Assert.Equal((768, DiskFormat.Qcow2, false), (c.Disks[0].VirtualDeviceNumber, c.Disks[0].Format, c.Disks[0].IsCdrom));
        Assert.Equal(("/srv/iso/win11.iso", "hdc", 5632, true, DiskAccess.ReadOnly),
            (c.Disks[1].Target, c.Disks[1].Vdev, c.Disks[1].VirtualDeviceNumber, c.Disks[1].IsCdrom, c.Disks[1].Access));
        Assert.Equal(("", DiskFormat.Empty, true, 5696), (c.Disks[2].Target, c.Disks[2].Format, c.Disks[2].IsCdrom, c.Disks[2].VirtualDeviceNumber));

        var vif = Assert.Single(c.Vifs);
        Assert.Equal((VifType.Ioemu, "e1000", 9000), (vif.Type!.Value, vif.Model, vif.Mtu!.Value));

        Assert.Equal(["device_model_version", "device_model_args", "boot", "viridian"], c.OtherSettings.Select(o => o.Key));
        Assert.Equal("[\"-no-shutdown\"]", c.OtherSettings[1].XlText);
        Assert.Contains(r.Notes, n => n.Key == "builder");
        Assert.Empty(r.Warnings);
    }

    [Fact]
    public void Pvh_WithHexMemory_CmdlineAndDefaultVif()
    {
        var c = DomainConfig.Parse(PvhLinux);
        Assert.Equal(DomainType.Pvh, c.Type);
        Assert.Equal(2048, c.MemoryMiB);
        Assert.Null(c.MaxMemMiB);
        Assert.Equal(2048, c.EffectiveMaxMemMiB);
        Assert.Equal("root=/dev/xvda rw console=hvc0", c.KernelCommandLine);
        Assert.Equal(("Pool-db", "system_u:system_r:domU_t"), (c.Pool, c.Seclabel));
        Assert.Equal(["pty", "file:/var/log/pvh-db.serial"], c.Serial!);
        Assert.Equal(new VifSpec(), Assert.Single(c.Vifs));
        Assert.Equal("/dev/vg0/pvh db root", Assert.Single(c.Disks).Target);
    }

    [Fact]
    public void CommandLineOverrides_WinOverTheFile()
    {
        var c = DomainConfig.Parse(PvLinux, "pv-web01.cfg", ["memory=1536", "name=\"pv-web02\"", "extra+=' quiet'"]);
        Assert.Equal(1536, c.MemoryMiB);
        Assert.Equal("pv-web02", c.Name);
        Assert.Equal("console=hvc0 earlyprintk=xen quiet", c.Extra);
    }

    [Fact]
    public void CommandLineOverride_ThatBreaksValidation_IsReportedAgainstTheCommandLine()
    {
        var r = DomainConfig.TryParse(PvLinux, "pv-web01.cfg", ["vcpus=1", "maxmem=512"]);
        var e = Assert.Single(r.Errors);
        Assert.Equal(("command line", 2, "maxmem"), (e.Source, e.Line, e.Key));
    }

    [Fact]
    public void Cmdline_WinsOverRootAndExtra_WithAWarning()
    {
        var r = DomainConfig.TryParse("name='a'\nkernel='/k'\nroot='/dev/xvda'\nextra='quiet'\ncmdline='console=hvc0'");
        Assert.Equal("console=hvc0", r.Config!.KernelCommandLine);
        Assert.Contains(r.Warnings, w => w.Key == "cmdline");
    }

    [Theory]
    [InlineData("root='/dev/xvda1'", "root=/dev/xvda1")]
    [InlineData("extra='quiet'", "quiet")]
    [InlineData("root='/dev/xvda1'\nextra='quiet'", "root=/dev/xvda1 quiet")]
    public void KernelCommandLine_IsAssembledLikeXl(string lines, string expected) =>
        Assert.Equal(expected, DomainConfig.Parse("name='a'\nkernel='/k'\n" + lines).KernelCommandLine);

    [Fact]
    public void Defaults_FollowXl()
    {
        var c = DomainConfig.Parse("name = 'min'\nkernel = '/k'");
        Assert.Equal(DomainType.Pv, c.Type);
        Assert.Equal(1, c.Vcpus);
        Assert.Equal(1, c.EffectiveMaxVcpus);
        Assert.Equal((ActionOnShutdown.Destroy, ActionOnShutdown.Restart, ActionOnShutdown.Destroy, ActionOnShutdown.Destroy, ActionOnShutdown.SoftReset),
            (c.OnPoweroff, c.OnReboot, c.OnWatchdog, c.OnCrash, c.OnSoftReset));
        Assert.Empty(c.Disks);
        Assert.Empty(c.Vifs);
    }

    [Fact]
    public void Load_ReadsAFileAndNamesItInErrors()
    {
        var path = Path.Combine(Path.GetTempPath(), $"xlcfg-{Guid.NewGuid():N}.cfg");
        File.WriteAllText(path, "name = 'f'\nkernel = '/k'\nmemory = 'lots'\n");
        try
        {
            var ex = Assert.Throws<ConfigException>(() => DomainConfig.Load(path));
            Assert.StartsWith($"{path} line 3: memory", ex.Message);
            Assert.Equal(768, DomainConfig.Load(path, ["memory=768"]).MemoryMiB);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
