using XenSharp.Dom0.Block;
using XenSharp.Dom0.Net;
using XenSharp.Dom0.Tests.Block;
using XenSharp.Dom0.Tests.Net;
using XenSharp.Dom0.Xenbus;

namespace XenSharp.Dom0.Tests.Xenbus;

public sealed class BackendManagerTests : IDisposable
{
    private readonly BackendHarness _h = new();
    private readonly BackendManager _m;
    private readonly List<string> _files = [];

    public BackendManagerTests() => _m = new BackendManager(_h.Xs) { CreateTapUplinks = false };

    public void Dispose()
    {
        _m.Dispose();
        _h.Dispose();
        foreach (var f in _files) File.Delete(f);
    }

    private string Image()
    {
        string p = Path.Combine(Path.GetTempPath(), $"xensharp-mgr-{Guid.NewGuid():N}.img");
        File.WriteAllBytes(p, new byte[1 << 20]);
        _files.Add(p);
        return p;
    }

    [Fact]
    public void AttachListAndDetachAll()
    {
        var g = _h.NewGuest();
        var g2 = _h.NewGuest();
        string img = Image(), iso = Image();
        var d = _m.AttachDisk(g.Domain, img, "xvda", readOnly: false);
        Assert.Equal(51712u, d.DevId);
        Assert.Equal("xvda", d.Vdev);
        var cd = _m.AttachDisk(g.Domain, iso, "xvdb", readOnly: false, cdrom: true);
        Assert.True(cd.ReadOnly);
        Assert.Equal("5", _h.Xs.Read(cd.BackendPath + "/info")); // VDISK_CDROM | VDISK_READONLY
        Assert.Throws<InvalidOperationException>(() => _m.AttachDisk(g.Domain, Image(), "xvda", false));
        var e = Assert.Throws<DiskImageException>(() => _m.AttachDisk(g2.Domain, img, "xvda", false));
        Assert.Contains($"domain {g.Id}", e.Message);
        Assert.Throws<NotSupportedException>(() => _m.AttachDisk(g2.Domain, Image(), "xvda", false, format: "vhd"));

        var n0 = _m.AttachNic(g.Domain, "00:16:3e:11:22:33", rate: "10Mb/s@20ms");
        var n1 = _m.AttachNic(g.Domain);
        var n2 = _m.AttachNic(g2.Domain, bridge: "br-test");
        Assert.Equal(0u, n0.DevId);
        Assert.Equal(1u, n1.DevId);
        Assert.StartsWith("00:16:3e:", n1.Mac);
        Assert.Equal($"vif{g.Id}.0", n0.Name);
        Assert.Equal("25000,20000", _h.Xs.Read(n0.BackendPath + "/rate"));
        Assert.Equal("br-test", _h.Xs.Read(n2.BackendPath + "/bridge"));
        Assert.NotSame(_m.SwitchFor("xenbr0"), _m.SwitchFor("br-test"));

        Assert.Equal(2, _m.ListDisks(g.Id).Count);
        Assert.Equal(2, _m.ListNics(g.Id).Count);
        Assert.Single(_m.ListNics(g2.Id));
        Assert.Equal(XenbusState.InitWait, _m.ListNics(g.Id)[0].State);

        // A simulated frontend connects through the manager's devices.
        var vbd = new SimBlkfront(g, _m.FindDisk(g.Id, 51712)!);
        var vif = new SimNetfront(g, _m.FindNic(g.Id, 0)!);
        Assert.Equal(XenbusState.Connected, _m.ListNics(g.Id)[0].State);
        Assert.Equal(XenbusState.Connected, _m.ListDisks(g.Id)[0].State);
        _ = vbd; _ = vif;

        Assert.Equal(4, _m.DetachAll(g.Id));
        Assert.Empty(_m.ListDisks(g.Id));
        Assert.Empty(_m.ListNics(g.Id));
        Assert.Empty(_h.Xs.Directory($"/local/domain/0/backend/vbd/{g.Id}"));
        Assert.Empty(_h.Xs.Directory($"/local/domain/{g.Id}/device/vif"));
        // The image is free again.
        var again = _m.AttachDisk(g2.Domain, img, "xvda", readOnly: false);
        Assert.True(_m.DetachDisk(g2.Id, again.DevId));
        Assert.False(_m.DetachDisk(g2.Id, again.DevId));
        Assert.True(_m.DetachNic(g2.Id, n2.DevId));
        Assert.Null(_h.Xs.TryRead(n2.BackendPath));
    }

    [Fact]
    public void DestroyingTheDomainDetachesItsDevices()
    {
        var g = _h.NewGuest();
        var g2 = _h.NewGuest();
        string img = Image();
        var d = _m.AttachDisk(g.Domain, img, "xvda", readOnly: false);
        var n = _m.AttachNic(g.Domain);
        var vbd = new SimBlkfront(g, _m.FindDisk(g.Id, d.DevId)!);
        var vif = new SimNetfront(g, _m.FindNic(g.Id, n.DevId)!);
        _h.Hv.Destroy(g.Domain);
        Assert.Empty(_m.ListDisks(g.Id));
        Assert.Empty(_m.ListNics(g.Id));
        Assert.Null(_h.Xs.TryRead(d.BackendPath));
        Assert.Null(_h.Xs.TryRead(n.BackendPath));
        // The image lock went with it.
        _m.AttachDisk(g2.Domain, img, "xvda", readOnly: false);
        _ = vbd; _ = vif;
    }

    [Fact]
    public void GracefulDetachWaitsForTheFrontend()
    {
        var g = _h.NewGuest();
        var d = _m.AttachDisk(g.Domain, Image(), "xvda", readOnly: false);
        var vbd = new SimBlkfront(g, _m.FindDisk(g.Id, d.DevId)!);
        // A cooperative frontend: closes when the backend says Closing.
        using var w = _h.Xs.Watch(d.BackendPath + "/state", _ =>
        {
            if (_h.Xs.TryRead(d.BackendPath + "/state") == "5") _h.Xs.Write(vbd.Be.FrontendPath + "/state", "6");
        });
        Assert.True(_m.DetachDisk(g.Id, d.DevId, TimeSpan.FromSeconds(5)));
        Assert.Null(_h.Xs.TryRead(d.BackendPath));
        Assert.Empty(_m.ListDisks(g.Id));

        // A frontend that never answers: forced after the timeout.
        var n = _m.AttachNic(g.Domain);
        var vif = new SimNetfront(g, _m.FindNic(g.Id, n.DevId)!);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(_m.DetachNic(g.Id, n.DevId, TimeSpan.FromMilliseconds(200)));
        Assert.InRange(sw.ElapsedMilliseconds, 150, 5000);
        Assert.Null(_h.Xs.TryRead(n.BackendPath));
        Assert.Equal(0, g.Pv.Grants.InUseCount);
        _ = vif;
    }

    [Fact]
    public void UplinkNoteWhenTheBridgeIsMissing()
    {
        using var m = new BackendManager(_h.Xs);
        m.SwitchFor("xs-nobr");
        Assert.True(m.UplinkNotes.ContainsKey("xs-nobr"));
    }
}
