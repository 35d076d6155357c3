using XenSharp.Toolstack.Config;

namespace XenSharp.Toolstack.Tests.Config;

public sealed class MalformedConfigTests
{
    private const string Base = "name = \"vm1\"\nkernel = \"/boot/vmlinuz\"\n"; // lines 1-2

    public static TheoryData<string, string, int, string, string> Cases => new()
    {
        // id, text (after Base, so the first extra line is line 3), line, key, message fragment
        { "unterminated string", "kernel = \"/boot/vmlinuz\nmemory = 512", 3, "kernel", "unterminated string" },
        { "missing =", "memory 512", 3, "memory", "expected '=' or '+='" },
        { "missing value", "memory =\n", 3, "memory", "expected a value" },
        { "bad number", "memory = \"abc\"", 3, "memory", "expected an integer number of MiB" },
        { "number with junk", "memory = 12abc", 3, "memory", "expected an integer number of MiB" },
        { "float", "memory = 1.5", 3, "memory", "fractional" },
        { "negative literal", "cap = -5", 3, "cap", "negative" },
        { "memory 0", "memory = 0", 3, "memory", "must be greater than 0" },
        { "maxmem < memory", "memory = 1024\nmaxmem = 512", 4, "maxmem", "must be at least memory (1024 MiB)" },
        { "vcpus > maxvcpus", "vcpus = 4\nmaxvcpus = 2", 4, "maxvcpus", "must be at least vcpus (4)" },
        { "vcpus 0", "vcpus = 0", 3, "vcpus", "at least 1" },
        { "+= on a number", "memory = 512\nmemory += 5", 4, "memory", "can't use += with a number" },
        { "list where a value is wanted", "memory = [ 512 ]", 3, "memory", "expected a single value, not a list" },
        { "bad name", "name = \"my vm!\"", 3, "name", "invalid domain name" },
        { "numeric name", "name = \"123\"", 3, "name", "all-digit" },
        { "unknown type", "type = \"xen\"", 3, "type", "expected \"pv\", \"pvh\" or \"hvm\"" },
        { "builder contradicts type", "type = \"pvh\"\nbuilder = \"hvm\"", 4, "builder", "contradicts" },
        { "bad uuid", "uuid = \"1234-5678\"", 3, "uuid", "expected a UUID" },
        { "bad on_poweroff", "on_poweroff = \"reboot\"", 3, "on_poweroff", "unknown action" },
        { "soft-reset on pv", "on_crash = \"soft-reset\"", 3, "on_crash", "not supported for pv" },
        { "cpus open range", "cpus = \"0-\"", 3, "cpus", "'0-' is not a valid cpu or range" },
        { "cpus reversed range", "cpus = \"3-1\"", 3, "cpus", "range end 1 is below its start 3" },
        { "cpus bare caret", "cpus = \"^\"", 3, "cpus", "'^' is not a valid cpu" },
        { "cpus letter", "cpus = \"a\"", 3, "cpus", "'a' is not a valid cpu" },
        { "cpus ^all", "cpus_soft = \"^all\"", 3, "cpus_soft", "can't be combined with \"all\"" },
        { "per-vcpu cpus bad item", "cpus = [\n \"2\",\n \"5-x\",\n]", 5, "cpus", "bad cpu list for vCPU 1" },
        { "disk missing vdev", "disk = [ \"/img/a.raw,raw\" ]", 3, "disk", "missing vdev" },
        { "disk bad access", "disk = [ \"/img/a.raw,raw,xvda,rx\" ]", 3, "disk", "unknown access mode 'rx'" },
        { "disk bad format", "disk = [ \"format=vmdk, vdev=xvda, target=/a\" ]", 3, "disk", "unknown disk format 'vmdk'" },
        { "disk vdev in format slot", "disk = [ \"/img/a.raw,xvda,w\" ]", 3, "disk", "looks like a vdev" },
        { "disk bad vdev name", "disk = [ \"/img/a.raw,raw,vda,rw\" ]", 3, "disk", "invalid vdev 'vda'" },
        { "disk vdev partition too big", "disk = [ \"/a,raw,sda16,rw\" ]", 3, "disk", "invalid vdev 'sda16'" },
        { "disk duplicate vdev", "disk = [\n \"/a,raw,xvda,rw\",\n \"/b,raw,xvda,ro\",\n]", 5, "disk", "duplicate vdev 'xvda'" },
        { "disk unknown parameter", "disk = [ \"vdev=xvda, speed=fast, target=/a\" ]", 3, "disk", "unknown disk parameter 'speed'" },
        { "disk not a list", "disk = \"/a,raw,xvda,rw\"", 3, "disk", "expected a list of disk specs" },
        { "disk unknown prefix", "disk = [ \"nfs:/x,xvda,rw\" ]", 3, "disk", "unknown disk prefix 'nfs:'" },
        { "vif bad mac", "vif = [ \"mac=00:16:3e:zz:02:03,bridge=xenbr0\" ]", 3, "vif", "invalid mac '00:16:3e:zz:02:03'" },
        { "vif short mac", "vif = [ \"mac=00:16:3e:01:02\" ]", 3, "vif", "invalid mac" },
        { "vif multicast mac", "vif = [ \"mac=01:16:3e:01:02:03\" ]", 3, "vif", "multicast" },
        { "vif bad rate", "vif = [ \"rate=10Mbit\" ]", 3, "vif", "invalid rate '10Mbit'" },
        { "vif bad interval", "vif = [ \"rate=10Mb/s@fast\" ]", 3, "vif", "invalid replenishment interval" },
        { "vif unknown key", "vif = [ \"bridge=xenbr0,colour=red\" ]", 3, "vif", "unknown vif parameter 'colour'" },
        { "vif bad ip", "vif = [ \"ip=10.0.0.300\" ]", 3, "vif", "invalid ip '10.0.0.300'" },
        { "vif bad mtu", "vif = [ \"mtu=9\" ]", 3, "vif", "invalid mtu '9'" },
        { "cpu_weight 0", "cpu_weight = 0", 3, "cpu_weight", "between 1 and 65535" },
        { "cpu_weight too big", "cpu_weight = 70000", 3, "cpu_weight", "between 1 and 65535" },
        { "cap negative", "cap = \"-5\"", 3, "cap", "-5 is out of range" },
        { "cap above vcpus", "vcpus = 2\ncap = 201", 4, "cap", "between 0 (no cap) and 200" },
        { "duplicate list brackets", "disk = [ \"/a,raw,xvda,rw\" ]]", 3, "disk", "expected end of line or ';'" },
        { "unclosed list", "disk = [ \"/a,raw,xvda,rw\",\n", 4, "disk", "list opened on line 3 is not closed" },
        { "missing comma in list", "vif = [ \"bridge=a\" \"bridge=b\" ]", 3, "vif", "expected ',' or ']' in list" },
        { "uppercase key", "Memory = 512", 3, "", "expected a key" },
        { "bad escape", "extra = \"a\\qb\"", 3, "extra", "invalid escape '\\q'" },
        { "bad vncdisplay", "vncdisplay = \"x\"", 3, "vncdisplay", "expected an integer VNC display number" },
        { "unquoted word", "on_poweroff = destroy", 3, "on_poweroff", "word 'destroy' (strings must be quoted)" },
        { "python list concatenation", "disk = [ '/a,raw,xvda,rw' ] + [ '/b,raw,xvdb,rw' ]", 3, "disk", "Python-style" },
        { "python tuple", "vif = ( 'bridge=xenbr0' )", 3, "vif", "Python-style" },
        { "octal looking decimal", "memory = 08", 3, "memory", "a leading 0 means octal" },
        { "empty hex", "memory = 0x", 3, "memory", "expected an integer number of MiB" },
        { "localtime not a bool", "localtime = \"yes\"", 3, "localtime", "expected 0 or 1" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Malformed_IsReportedWithLineKeyAndExpectation(string id, string text, int line, string key, string fragment)
    {
        var result = DomainConfig.TryParse(Base + text, "vm1.cfg");
        Assert.False(result.Success, id);
        var error = Assert.Single(result.Errors);
        Assert.Equal(line, error.Line);
        Assert.Equal(key == "" ? null : key, error.Key);
        Assert.Contains(fragment, error.Message);
        var rendered = error.ToString();
        Assert.StartsWith($"vm1.cfg line {line}: " + (key == "" ? "" : key), rendered);
    }

    [Fact]
    public void Parse_ThrowsOneException_WithEveryError()
    {
        var text = "name = \"bad name\"\nkernel = \"/k\"\nmemory = \"abc\"\ncpus = \"3-1\"\non_reboot = \"maybe\"\n";
        var ex = Assert.Throws<ConfigException>(() => DomainConfig.Parse(text));
        Assert.Equal([1, 3, 4, 5], ex.Errors.Select(e => e.Line));
        Assert.Contains("xl.cfg line 3: memory = \"abc\": expected an integer number of MiB", ex.Message);
        Assert.Contains("4 errors", ex.Message);
    }

    [Fact]
    public void ErrorMessage_MatchesTheDocumentedShape()
    {
        var ex = Assert.Throws<ConfigException>(() =>
            DomainConfig.Parse("name = \"a\"\nkernel = \"/k\"\n\nmemory = \"abc\""));
        Assert.Equal("xl.cfg line 4: memory = \"abc\": expected an integer number of MiB", ex.Message);
    }

    [Fact]
    public void OctalMemory_IsReadAsXlDoes_WithAWarning()
    {
        var r = DomainConfig.TryParse(Base + "memory = 0100");
        Assert.Equal(64, r.Config!.MemoryMiB);
        Assert.Contains(r.Warnings, w => w.Key == "memory" && w.Line == 3 && w.Message.Contains("octal"));
    }

    [Fact]
    public void MissingName_IsAnError() =>
        Assert.Contains(DomainConfig.TryParse("kernel='/k'").Errors, e => e.Key == "name" && e.Message.Contains("missing"));

    [Fact]
    public void PvWithoutKernel_IsAnError() =>
        Assert.Contains(DomainConfig.TryParse("name='a'\ntype='pv'").Errors, e => e.Key == "kernel");

    [Fact]
    public void UnknownKey_IsAWarningNotAnError()
    {
        var r = DomainConfig.TryParse(Base + "memroy = 512\ndevice_model_version = \"qemu-xen\"");
        Assert.True(r.Success);
        var w = Assert.Single(r.Warnings);
        Assert.Equal(("memroy", 3), (w.Key, w.Line));
        Assert.Contains(r.Notes, n => n.Key == "device_model_version" && n.Line == 4);
        Assert.Equal(["memroy", "device_model_version"], r.Config!.OtherSettings.Select(o => o.Key));
    }

    [Fact]
    public void Bootloader_IsParsedWithAWarning()
    {
        var r = DomainConfig.TryParse("name='a'\nbootloader = \"pygrub\"");
        Assert.True(r.Success);
        Assert.Equal("pygrub", r.Config!.Bootloader);
        Assert.Contains(r.Warnings, w => w.Key == "bootloader" && w.Message.Contains("not supported"));
    }
}
