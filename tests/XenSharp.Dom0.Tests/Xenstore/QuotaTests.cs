using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

public sealed class QuotaTests
{
    private readonly XenstoreStore _s = new();

    private Wire Home(uint domid)
    {
        var dom0 = Wire.Dom0(_s);
        dom0.Mkdir($"/local/domain/{domid}");
        dom0.SetPerms($"/local/domain/{domid}", $"n{domid}");
        return Wire.DomU(_s, domid);
    }

    [Fact]
    public void WatchQuotaIsEnospcAndDom0IsExempt()
    {
        var u = Home(2);
        for (int i = 0; i < 127; i++) Assert.Equal("OK", u.Watch("w" + i, "t"));
        Assert.Equal("ENOSPC", u.Watch("one-more", "t"));
        var dom0 = Wire.Dom0(_s);
        for (int i = 0; i < 200; i++) Assert.Equal("OK", dom0.Watch("/w" + i, "t"));
    }

    [Fact]
    public void NodeQuotaCountsOwnedNodes()
    {
        var u = Home(2);
        Assert.Equal("OK\0", Wire.Dom0(_s).Req(XsMessageType.SetQuota, 0, "2", "nodes", "5"));
        Assert.Equal("OK", u.Write("a", ""));
        Assert.Equal("OK", u.Write("b", ""));
        Assert.Equal("OK", u.Write("c", ""));
        Assert.Equal("ENOSPC", u.Write("d", ""));
        Assert.Equal("ENOSPC", u.Write("x/y/z", ""));
        Assert.Equal("OK", u.Rm("a"));
        Assert.Equal("OK", u.Write("d", ""));
        // Inside a transaction too.
        u.Rm("d");
        uint tx = u.Start();
        Assert.Equal("OK", u.Write("e", "", tx));
        Assert.Equal("ENOSPC", u.Write("f", "", tx));
    }

    [Fact]
    public void TransactionQuota()
    {
        var u = Home(2);
        for (int i = 0; i < 9; i++) u.Start();
        Assert.Equal("ENOSPC", u.Req(XsMessageType.TransactionStart, 0, ""));
        var dom0 = Wire.Dom0(_s);
        for (int i = 0; i < 20; i++) dom0.Start();
    }

    [Fact]
    public void NodeSizeQuota()
    {
        var u = Home(2);
        Assert.Equal("OK", u.Write("small", new string('x', 2000)));
        Assert.Equal("ENOSPC", u.Write("big", new string('x', 2040)));
        Assert.Equal("OK", Wire.Dom0(_s).Write("/big", new string('x', 4000)));
    }

    [Fact]
    public void PathLengthQuotaIsEinval()
    {
        var u = Home(2);
        string ok = string.Join('/', Enumerable.Repeat("abcdefghi", 204)) + "/abc"; // 2043 chars
        Assert.Equal("OK", u.Mkdir(ok));
        Assert.Equal("EINVAL", u.Mkdir(ok + "/abcd"));
    }

    [Fact]
    public void PermissionListQuota()
    {
        var u = Home(2);
        Assert.Equal("OK", u.SetPerms("/local/domain/2", "n2", "r3", "r4", "r5"));
        Assert.Equal("ENOSPC", u.SetPerms("/local/domain/2", "n2", "r3", "r4", "r5", "r6"));
        Assert.Equal("OK", Wire.Dom0(_s).SetPerms("/local/domain/2", "n2", "r3", "r4", "r5", "r6", "r7"));
    }

    [Fact]
    public void DefaultQuotaChangesApplyToNewDomains()
    {
        Assert.Equal("OK\0", Wire.Dom0(_s).Req(XsMessageType.SetQuota, 0, "watches", "3"));
        var u = Home(4);
        u.Watch("a", "t");
        u.Watch("b", "t");
        Assert.Equal("ENOSPC", u.Watch("c", "t"));
    }

    [Fact]
    public void TransactionNodesQuota()
    {
        var u = Home(2);
        Assert.Equal("OK\0", Wire.Dom0(_s).Req(XsMessageType.SetQuota, 0, "2", "transaction-nodes", "10"));
        uint tx = u.Start();
        string last = "";
        for (int i = 0; i < 20 && last != "ENOSPC"; i++) last = u.Read("n" + i, tx);
        Assert.Equal("ENOSPC", last);
    }
}
