using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

public sealed class WatchTests
{
    private readonly XenstoreStore _s = new();

    [Fact]
    public void FiresOnceImmediatelyAfterTheAck()
    {
        var w = Wire.Dom0(_s);
        w.Conn.Feed(XsWire.Build(XsMessageType.Watch, 7, 0, XsWire.Strings("/nothing/yet", "tk")));
        Assert.True(w.Conn.TryDequeue(out var ack));
        Assert.Equal(XsMessageType.Watch, XsHeader.Parse(ack).Type);
        Assert.Equal(7u, XsHeader.Parse(ack).ReqId);
        Assert.True(w.Conn.TryDequeue(out var ev));
        var h = XsHeader.Parse(ev);
        Assert.Equal(XsMessageType.WatchEvent, h.Type);
        Assert.Equal(0u, h.ReqId);
        Assert.Equal(XsWire.Strings("/nothing/yet", "tk"), ev[XsHeader.Size..]);
    }

    [Fact]
    public void FiresForWritesAtOrBelowButNotBesideOrAbove()
    {
        var w = Wire.Dom0(_s);
        w.Watch("/a/b", "t");
        w.Events.Clear();
        w.Write("/a/b", "1");
        w.Write("/a/b/c/d", "1");
        w.Write("/a/bc", "1");
        w.Write("/a", "1");
        w.DrainEvents();
        Assert.Equal([("/a/b", "t"), ("/a/b/c/d", "t")], w.Events);
    }

    [Fact]
    public void MkdirOfExistingNodeDoesNotFire()
    {
        var w = Wire.Dom0(_s);
        w.Mkdir("/m");
        w.Watch("/m", "t");
        w.Events.Clear();
        w.Mkdir("/m");
        w.DrainEvents();
        Assert.Empty(w.Events);
    }

    [Fact]
    public void RemovalFiresForTheRemovedRootAndForWatchedNodesBelow()
    {
        var w = Wire.Dom0(_s);
        w.Write("/r/a/b", "1");
        w.Watch("/r", "above");
        w.Watch("/r/a/b", "below");
        w.Events.Clear();
        w.Rm("/r/a");
        w.DrainEvents();
        Assert.Contains(("/r/a", "above"), w.Events);
        Assert.Contains(("/r/a/b", "below"), w.Events);
        // Nodes below the removed root fire only for watches on exactly them (MATCH_EXACT in xenstored).
        Assert.DoesNotContain(("/r/a/b", "above"), w.Events);
    }

    [Fact]
    public void SetPermsFires()
    {
        var w = Wire.Dom0(_s);
        w.Mkdir("/p");
        w.Watch("/p", "t");
        w.Events.Clear();
        w.SetPerms("/p", "r0");
        w.DrainEvents();
        Assert.Equal([("/p", "t")], w.Events);
    }

    [Fact]
    public void RelativeWatchReportsRelativePaths()
    {
        var dom0 = Wire.Dom0(_s);
        dom0.Mkdir("/local/domain/5");
        dom0.SetPerms("/local/domain/5", "n5");
        var u = Wire.DomU(_s, 5);
        Assert.Equal("OK", u.Watch("device", "dev"));
        Assert.Equal("OK", u.Watch("/local/domain/5/control", "abs"));
        Assert.Equal([("device", "dev"), ("/local/domain/5/control", "abs")], u.Events);
        u.Events.Clear();
        dom0.Write("/local/domain/5/device/vbd/51712/state", "1");
        dom0.Write("/local/domain/5/control/shutdown", "poweroff");
        u.DrainEvents();
        Assert.Equal([("device/vbd/51712/state", "dev"), ("/local/domain/5/control/shutdown", "abs")], u.Events);
    }

    [Fact]
    public void UnwatchStopsEventsAndUnknownIsEnoent()
    {
        var w = Wire.Dom0(_s);
        w.Watch("/u", "t");
        Assert.Equal("OK", w.Unwatch("/u", "t"));
        w.Events.Clear();
        w.Write("/u", "1");
        w.DrainEvents();
        Assert.Empty(w.Events);
        Assert.Equal("ENOENT", w.Unwatch("/u", "t"));
    }

    [Fact]
    public void DuplicateWatchIsEexistButSamePathNewTokenIsFine()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal("OK", w.Watch("/d", "t"));
        Assert.Equal("EEXIST", w.Watch("/d", "t"));
        Assert.Equal("OK", w.Watch("/d", "t2"));
    }

    [Fact]
    public void DomUDoesNotSeeEventsForNodesItCannotRead()
    {
        var dom0 = Wire.Dom0(_s);
        var u = Wire.DomU(_s, 3);
        u.Watch("/secret", "t");
        u.Events.Clear();
        dom0.Write("/secret/x", "1");
        u.DrainEvents();
        Assert.Empty(u.Events);
        dom0.Write("/open", "1");
        dom0.SetPerms("/open", "r0");
        u.Watch("/open", "o");
        u.Events.Clear();
        dom0.Write("/open", "2");
        u.DrainEvents();
        Assert.Equal([("/open", "o")], u.Events);
    }

    [Fact]
    public void DepthLimitsMatches()
    {
        var w = Wire.Dom0(_s);
        Assert.Equal("OK\0", w.Req(XsMessageType.Watch, 0, "/dp", "t", "1"));
        w.Events.Clear();
        w.Write("/dp/a", "1");
        w.Write("/dp/a/b", "1");
        w.DrainEvents();
        Assert.Equal([("/dp/a", "t")], w.Events);
    }

    [Fact]
    public void IntroduceAndReleaseDomainSpecialWatches()
    {
        var dom0 = Wire.Dom0(_s);
        dom0.Watch("@introduceDomain", "i");
        dom0.Watch("@releaseDomain", "r");
        dom0.Req(XsMessageType.Watch, 0, "@releaseDomain", "rd", "1");
        dom0.Watch("@releaseDomain/8", "r8");
        var domU = Wire.DomU(_s, 3);
        domU.Watch("@introduceDomain", "hidden");
        dom0.DrainEvents();
        dom0.Events.Clear();
        domU.Events.Clear();
        Assert.Equal("OK\0", dom0.Req(XsMessageType.Introduce, 0, "8", "100", "3"));
        dom0.DrainEvents();
        Assert.Equal([("@introduceDomain", "i")], dom0.Events);
        dom0.Events.Clear();
        Assert.Equal("OK\0", dom0.Req(XsMessageType.Release, 0, "8"));
        dom0.DrainEvents();
        Assert.Contains(("@releaseDomain", "r"), dom0.Events);
        Assert.Contains(("@releaseDomain/8", "rd"), dom0.Events);
        Assert.Contains(("@releaseDomain/8", "r8"), dom0.Events);
        domU.DrainEvents();
        Assert.Empty(domU.Events);
        // SET_PERMS on the special node lets a domain see it.
        dom0.SetPerms("@introduceDomain", "n0", "r3");
        domU.DrainEvents(); // SET_PERMS itself is a change of the watched node
        domU.Events.Clear();
        Wire.Dom0(_s).Req(XsMessageType.Introduce, 0, "9", "100", "3");
        domU.DrainEvents();
        Assert.Equal([("@introduceDomain", "hidden")], domU.Events);
    }

    [Fact]
    public void ClosedConnectionLosesItsWatches()
    {
        var dom0 = Wire.Dom0(_s);
        var gone = Wire.Dom0(_s);
        gone.Watch("/g", "t");
        gone.Conn.Close();
        gone.Events.Clear();
        dom0.Write("/g", "1");
        gone.DrainEvents();
        Assert.Empty(gone.Events);
    }

    [Fact]
    public async Task ClientWatchCallbackRunsForEvents()
    {
        using var c = new XenstoreClient(_s);
        using var writer = new XenstoreClient(_s);
        var seen = new System.Collections.Concurrent.BlockingCollection<string>();
        using (c.Watch("/cw", seen.Add))
        {
            Assert.True(seen.TryTake(out var first, 5000));
            Assert.Equal("/cw", first);
            writer.Write("/cw/x", "1");
            Assert.True(seen.TryTake(out var second, 5000));
            Assert.Equal("/cw/x", second);
        }
        writer.Write("/cw/y", "1");
        await Task.Delay(50);
        Assert.False(seen.TryTake(out _));
    }
}
