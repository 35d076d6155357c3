using System.Text;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

public sealed class StoreTests
{
    private readonly XenstoreStore _s = new();

    [Theory]
    [InlineData("/a/b", 0u, "/a/b")]
    [InlineData("/", 0u, "/")]
    [InlineData("device/vif", 5u, "/local/domain/5/device/vif")]
    [InlineData("@releaseDomain", 0u, "@releaseDomain")]
    public void CanonicalizeAccepts(string path, uint domid, string expected) =>
        Assert.Equal(expected, XenstorePath.Canonicalize(path, domid, allowSpecial: true, pathMax: 0));

    [Theory]
    [InlineData("")]
    [InlineData("/a/")]
    [InlineData("/a//b")]
    [InlineData("/a b")]
    [InlineData("/a.b")]
    [InlineData("/ä")]
    public void CanonicalizeRejects(string path) =>
        Assert.Equal(XsErrno.EINVAL, Assert.Throws<XenstoreException>(() => XenstorePath.Canonicalize(path, 0, true, 0)).Error);

    [Fact]
    public void SpecialPathOnlyWhereAllowed()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal("EINVAL", w.Read("@releaseDomain"));
        Assert.Equal("n0\0", w.GetPerms("@releaseDomain"));
    }

    [Fact]
    public void WriteCreatesParentsAndReadReturnsValue()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal("OK", w.Write("/a/b/c", "hello"));
        Assert.Equal("hello", w.Read("/a/b/c"));
        Assert.Equal("", w.Read("/a/b"));
        Assert.Equal("b\0", w.Dir("/a"));
        Assert.Equal("ENOENT", w.Read("/a/x"));
    }

    [Fact]
    public void ValuesAreBinary()
    {
        var w = Wire.Dom0(_s);
        var (h, _) = w.Send(XsMessageType.Write, [.. XsWire.Strings("/bin"), 1, 0, 2, 0]);
        Assert.Equal(XsMessageType.Write, h.Type);
        var (_, p) = w.Send(XsMessageType.Read, XsWire.Strings("/bin"));
        Assert.Equal(new byte[] { 1, 0, 2, 0 }, p);
    }

    [Fact]
    public void MkdirKeepsExistingValue()
    {
        var w = Wire.Dom0(_s);
        w.Write("/m", "v");
        Assert.Equal("OK", w.Mkdir("/m"));
        Assert.Equal("v", w.Read("/m"));
        Assert.Equal("OK", w.Mkdir("/m/n/o"));
        Assert.Equal("", w.Read("/m/n/o"));
    }

    [Fact]
    public void RmIsRecursiveAndToleratesMissingLeaf()
    {
        var w = Wire.Dom0(_s);
        w.Write("/r/a/b", "1");
        w.Write("/r/c", "2");
        Assert.Equal("OK", w.Rm("/r/a"));
        Assert.Equal("ENOENT", w.Read("/r/a/b"));
        Assert.Equal("c\0", w.Dir("/r"));
        Assert.Equal("OK", w.Rm("/r/nothere"));
        Assert.Equal("ENOENT", w.Rm("/r/nothere/deeper"));
    }

    [Fact]
    public void RemovingRootIsRefused()
    {
        Assert.Equal("EINVAL", Wire.Dom0(_s).Rm("/"));
        Assert.Equal("EACCES", Wire.DomU(_s, 3).Rm("/"));
    }

    [Fact]
    public void DirectoryKeepsCreationOrder()
    {
        var w = Wire.Dom0(_s);
        foreach (var n in new[] { "z", "a", "m" }) w.Write("/o/" + n, "");
        Assert.Equal("z\0a\0m\0", w.Dir("/o"));
    }

    [Fact]
    public void RelativePathsResolveUnderDomainPath()
    {
        var u = Wire.DomU(_s, 7);
        var w = Wire.Dom0(_s);
        w.Mkdir("/local/domain/7");
        w.SetPerms("/local/domain/7", "n7");
        Assert.Equal("OK", u.Write("device/vif/0/state", "1"));
        Assert.Equal("1", w.Read("/local/domain/7/device/vif/0/state"));
        Assert.Equal("1", u.Read("/local/domain/7/device/vif/0/state"));
        Assert.Equal("OK", w.Write("x", "dom0 relative"));
        Assert.Equal("dom0 relative", w.Read("/local/domain/0/x"));
    }

    [Fact]
    public void GetDomainPath()
    {
        Assert.Equal("/local/domain/12\0", Wire.DomU(_s, 3).Req(XsMessageType.GetDomainPath, 0, "12"));
        Assert.Equal("EINVAL", Wire.Dom0(_s).Req(XsMessageType.GetDomainPath, 0, "x"));
    }

    [Fact]
    public void DirectoryPartReassemblesLongChildLists()
    {
        var w = Wire.Dom0(_s);
        var names = Enumerable.Range(0, 600).Select(i => $"child-with-a-long-name-{i:D4}").ToList();
        foreach (var n in names) w.Mkdir("/big/" + n);
        Assert.Equal("E2BIG", w.Dir("/big"));
        var got = new List<string>();
        string? gen = null;
        int offset = 0;
        while (true)
        {
            var (h, p) = w.Send(XsMessageType.DirectoryPart, XsWire.Strings("/big", offset.ToString()));
            Assert.Equal(XsMessageType.DirectoryPart, h.Type);
            Assert.True(p.Length <= XsWire.PayloadMax);
            var parts = Encoding.UTF8.GetString(p).Split('\0');
            gen ??= parts[0];
            Assert.Equal(gen, parts[0]);
            var chunk = parts.Skip(1).ToList();
            bool last = p.Length >= 2 && p[^1] == 0 && p[^2] == 0;
            chunk.RemoveAt(chunk.Count - 1);
            if (last) chunk.RemoveAt(chunk.Count - 1);
            got.AddRange(chunk);
            offset += chunk.Sum(c => c.Length + 1);
            if (last) break;
        }
        Assert.Equal(names, got);
        // Past the end: generation and an empty string.
        var (_, end) = w.Send(XsMessageType.DirectoryPart, XsWire.Strings("/big", "999999"));
        Assert.Equal(gen + "\0\0", Encoding.UTF8.GetString(end));
        w.Mkdir("/big/another");
        var (_, after) = w.Send(XsMessageType.DirectoryPart, XsWire.Strings("/big", "0"));
        Assert.NotEqual(gen, Encoding.UTF8.GetString(after).Split('\0')[0]);
    }

    [Fact]
    public void DirectoryPartNeedsTwoArguments() =>
        Assert.Equal("EINVAL", Wire.Dom0(_s).Req(XsMessageType.DirectoryPart, 0, "/"));

    [Fact]
    public void ReleaseRemovesNodesOwnedByTheDomain()
    {
        var w = Wire.Dom0(_s);
        var u = Wire.DomU(_s, 4);
        w.Mkdir("/local/domain/4");
        w.SetPerms("/local/domain/4", "n4");
        u.Write("data/x", "1");
        w.Write("/shared", "s");
        w.SetPerms("/shared", "n0", "r4");
        Assert.Equal("OK", w.Req(XsMessageType.Release, 0, "4").TrimEnd('\0'));
        Assert.Equal("ENOENT", w.Read("/local/domain/4"));
        Assert.Equal("n0\0", w.GetPerms("/shared"));
        Assert.Equal("F\0", w.Req(XsMessageType.IsDomainIntroduced, 0, "4"));
    }

    [Fact]
    public void IntroduceAndIsDomainIntroduced()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal("F\0", w.Req(XsMessageType.IsDomainIntroduced, 0, "9"));
        Assert.Equal("OK\0", w.Req(XsMessageType.Introduce, 0, "9", "1234", "5"));
        Assert.Equal("T\0", w.Req(XsMessageType.IsDomainIntroduced, 0, "9"));
        Assert.Equal("EINVAL", w.Req(XsMessageType.Introduce, 0, "9", "1234", "0"));
        Assert.Equal("EINVAL", w.Req(XsMessageType.Introduce, 0, "9"));
        Assert.Equal("ENOENT", w.Req(XsMessageType.Release, 0, "10"));
        Assert.Equal("EINVAL", w.Req(XsMessageType.Release, 0, "0"));
        Assert.Equal("OK\0", w.Req(XsMessageType.Resume, 0, "9"));
    }

    [Fact]
    public void FeaturesAndQuotaQueries()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal($"{XsWire.SupportedFeatures}\0", w.Req(XsMessageType.GetFeature, 0));
        Assert.Equal("OK\0", w.Req(XsMessageType.SetFeature, 0, "20", "2"));
        Assert.Equal("2\0", w.Req(XsMessageType.GetFeature, 0, "20"));
        Assert.Equal("EINVAL", w.Req(XsMessageType.SetFeature, 0, "20", "1"));
        w.Req(XsMessageType.Introduce, 0, "20", "1", "1");
        Assert.Equal("EBUSY", w.Req(XsMessageType.SetFeature, 0, "20", "2"));
        Assert.Contains("watches", w.Req(XsMessageType.GetQuota, 0));
        Assert.Equal("1000\0", w.Req(XsMessageType.GetQuota, 0, "nodes"));
        Assert.Equal("OK\0", w.Req(XsMessageType.SetQuota, 0, "20", "nodes", "7"));
        Assert.Equal("7\0", w.Req(XsMessageType.GetQuota, 0, "20", "nodes"));
        Assert.Equal("EINVAL", w.Req(XsMessageType.GetQuota, 0, "bogus"));
        Assert.Equal("ENOENT", w.Req(XsMessageType.GetQuota, 0, "99", "nodes"));
    }

    [Fact]
    public void ControlCommands()
    {
        var logged = new List<string>();
        _s.Log = logged.Add;
        var w = Wire.Dom0(_s);
        Assert.Equal("OK\0", w.Req(XsMessageType.Control, 0, "print", "hello"));
        Assert.Contains(logged, l => l.Contains("hello"));
        Assert.Contains("nodes", w.Req(XsMessageType.Control, 0, "quota"));
        Assert.Equal("EINVAL", w.Req(XsMessageType.Control, 0, "frobnicate"));
        Assert.Equal("EACCES", Wire.DomU(_s, 2).Req(XsMessageType.Control, 0, "print", "x"));
    }
}
