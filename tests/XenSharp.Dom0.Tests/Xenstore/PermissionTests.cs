using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

public sealed class PermissionTests
{
    public static TheoryData<string, char, string> Matrix()
    {
        var d = new TheoryData<string, char, string>();
        foreach (var actor in new[] { "owner", "listed", "default", "dom0" })
            foreach (var access in "nrwb")
                foreach (var op in new[] { "read", "write", "mkdir", "rm", "directory", "get_perms", "set_perms" })
                    d.Add(actor, access, op);
        return d;
    }

    /// <summary>
    /// Node owned by dom1: "dom2" is given <paramref name="access"/> by its own entry, "dom3" gets the same as the
    /// node's default access, so both paths through perm_for_conn() are covered.
    /// </summary>
    [Theory]
    [MemberData(nameof(Matrix))]
    public void AccessMatrix(string actor, char access, string op)
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Write("/local/domain/1/x/child", "c");
        dom0.Write("/local/domain/1/x", "v");
        Assert.Equal("OK", dom0.SetPerms("/local/domain/1/x", $"{access}1", $"{access}2"));
        var w = actor switch
        {
            "owner" => Wire.DomU(s, 1),
            "listed" => Wire.DomU(s, 2),
            "default" => Wire.DomU(s, 3),
            _ => dom0,
        };
        bool all = actor is "owner" or "dom0";
        bool r = all || access is 'r' or 'b';
        bool wr = all || access is 'w' or 'b';
        const string x = "/local/domain/1/x";
        (string got, string ok, bool allowed) = op switch
        {
            "read" => (w.Read(x), "v", r),
            "directory" => (w.Dir(x), "child\0", r),
            "get_perms" => (w.GetPerms(x), $"{access}1\0{access}2\0", r),
            "write" => (w.Write(x, "new"), "OK", wr),
            "mkdir" => (w.Mkdir(x + "/sub"), "OK", wr),
            "rm" => (w.Rm(x), "OK", wr),
            "set_perms" => (w.SetPerms(x, "b1"), "OK", all),
            _ => throw new ArgumentException(op),
        };
        Assert.Equal(allowed ? ok : "EACCES", got);
    }

    [Fact]
    public void MissingNodeIsEnoentOnlyWhenTheParentIsVisible()
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Mkdir("/hidden");
        dom0.Mkdir("/visible");
        dom0.SetPerms("/visible", "r0");
        var u = Wire.DomU(s, 5);
        Assert.Equal("EACCES", u.Read("/hidden/nope"));
        Assert.Equal("ENOENT", u.Read("/visible/nope"));
        Assert.Equal("EACCES", u.Read("/hidden"));
        // Creating below a read-only parent is refused as EACCES, not ENOENT.
        Assert.Equal("EACCES", u.Write("/visible/new", "x"));
    }

    [Fact]
    public void NewNodesInheritParentPermissionsAndUnprivilegedCreatorOwnsThem()
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Mkdir("/local/domain/6");
        dom0.SetPerms("/local/domain/6", "n6", "r0", "b9");
        var u = Wire.DomU(s, 6);
        u.Write("a/b", "1");
        Assert.Equal("n6\0r0\0b9\0", dom0.GetPerms("/local/domain/6/a/b"));
        // dom0 creating below keeps the parent's owner.
        dom0.Mkdir("/local/domain/6/byDom0");
        Assert.Equal("n6\0r0\0b9\0", dom0.GetPerms("/local/domain/6/byDom0"));
        dom0.Mkdir("/tool/t");
        Assert.Equal("n0\0", dom0.GetPerms("/tool/t"));
        // Domain 9 may write there (b9) and then owns what it creates.
        var nine = Wire.DomU(s, 9);
        Assert.Equal("OK", nine.Write("/local/domain/6/from9", "x"));
        Assert.Equal("n9\0r0\0b9\0", dom0.GetPerms("/local/domain/6/from9"));
    }

    [Fact]
    public void OnlyDom0ChangesTheOwner()
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Mkdir("/local/domain/6");
        dom0.SetPerms("/local/domain/6", "n6");
        var u = Wire.DomU(s, 6);
        Assert.Equal("OK", u.SetPerms("/local/domain/6", "r6", "b7"));
        Assert.Equal("EPERM", u.SetPerms("/local/domain/6", "n7"));
        Assert.Equal("OK", dom0.SetPerms("/local/domain/6", "n7"));
        Assert.Equal("EACCES", u.Read("/local/domain/6"));
    }

    [Theory]
    [InlineData("x1")]
    [InlineData("r")]
    [InlineData("rabc")]
    [InlineData("r99999")]
    public void MalformedPermissionsAreEinval(string perm)
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Mkdir("/p");
        Assert.Equal("EINVAL", dom0.SetPerms("/p", perm));
        Assert.Equal("EINVAL", dom0.Req(XsMessageType.SetPerms, 0, "/p"));
    }

    [Fact]
    public void DomidAnyGrantsEveryDomain()
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Write("/any", "v");
        dom0.SetPerms("/any", "n0", $"r{XsWire.DomidAny}");
        Assert.Equal("v", Wire.DomU(s, 11).Read("/any"));
    }

    [Fact]
    public void SetTargetLetsADeviceModelActAsItsDomain()
    {
        var s = new XenstoreStore();
        var dom0 = Wire.Dom0(s);
        dom0.Write("/local/domain/3/x", "v");
        dom0.SetPerms("/local/domain/3/x", "n3");
        var dm = Wire.DomU(s, 4);
        Wire.DomU(s, 3);
        Assert.Equal("EACCES", dm.Read("/local/domain/3/x"));
        // SET_TARGET needs both domains connected: give dom4 a domain connection via a ring.
        var s2 = new XenstoreStore();
        var d0 = Wire.Dom0(s2);
        d0.Write("/local/domain/3/x", "v");
        d0.SetPerms("/local/domain/3/x", "n3");
        var p3 = new byte[4096];
        var p4 = new byte[4096];
        s2.IntroduceDomain(3, new XenstoreRing(() => p3, () => { }));
        var c4 = s2.IntroduceDomain(4, new XenstoreRing(() => p4, () => { }));
        Assert.Equal("OK\0", d0.Req(XsMessageType.SetTarget, 0, "4", "3"));
        Assert.Equal(XsAccess.Both | XsAccess.Owner, XenstoreStore.PermFor(c4, [new XsPermission(3, XsAccess.None)]));
        Assert.Equal("ENOENT", d0.Req(XsMessageType.SetTarget, 0, "4", "77"));
    }
}
