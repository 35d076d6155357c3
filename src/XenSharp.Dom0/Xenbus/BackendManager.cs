using XenSharp.Dom0.Block;
using XenSharp.Dom0.Net;
using XenSharp.Dom0.Xenstore;
using XenSharp.Hypervisor;

namespace XenSharp.Dom0.Xenbus;

/// <summary>A vbd as <c>xl block-list</c> shows it.</summary>
public sealed record DiskInfo(uint Domid, uint DevId, string Vdev, string Target, bool ReadOnly, bool Cdrom, XenbusState State,
    string? Error, string BackendPath, bool Direct, string? Note, VbdStats Stats);

/// <summary>A vif as <c>xl network-list</c> shows it; <see cref="Stats"/> are the counters for xl top and the panel.</summary>
public sealed record NicInfo(uint Domid, uint DevId, string Name, string Mac, string? Bridge, VifRate? Rate, XenbusState State,
    string? Error, string BackendPath, VifStats Stats);

/// <summary>
/// The toolstack's entry point to dom0's block and network backends: attach a disk or NIC to a domain (this writes
/// the frontend and backend xenstore directories and starts the backend), detach one or all, and list them.
/// NICs on the same bridge name share one <see cref="VirtualSwitch"/>; when a Linux bridge of that name exists,
/// the switch gets a TAP uplink enslaved to it (see <see cref="UplinkNotes"/> when that was not possible).
/// </summary>
public sealed class BackendManager(XenstoreClient xs) : IDisposable
{
    public const string DefaultSwitch = "xenbr0";
    private readonly object _lock = new();
    private readonly Dictionary<(uint, uint), VbdBackend> _disks = [];
    private readonly Dictionary<(uint, uint), VifBackend> _nics = [];
    private readonly Dictionary<string, VirtualSwitch> _switches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TapPort> _uplinks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _uplinkNotes = new(StringComparer.Ordinal);
    private readonly HashSet<XenHypervisor> _watched = [];

    /// <summary>Detaches a destroyed domain's devices (releasing image locks and xenstore directories) if the toolstack did not.</summary>
    private void WatchDestroy(Domain d)
    {
        lock (_lock)
        {
            if (!_watched.Add(d.Hypervisor)) return;
            d.Hypervisor.DomainDestroyed += OnDomainDestroyed;
        }
    }

    private void OnDomainDestroyed(Domain d)
    {
        int n = DetachAll(d.Id);
        if (n > 0) Log?.Invoke($"d{d.Id} destroyed: detached {n} device(s)");
    }

    public XenstoreClient Xs { get; } = xs;
    public Action<string>? Log { get; set; }
    /// <summary>When false, no TAP uplinks are made (switches stay internal to the host's guests).</summary>
    public bool CreateTapUplinks { get; set; } = true;
    /// <summary>Per switch: why it has no TAP uplink.</summary>
    public IReadOnlyDictionary<string, string> UplinkNotes { get { lock (_lock) return new Dictionary<string, string>(_uplinkNotes); } }

    /// <summary>
    /// Attaches image or block device <paramref name="target"/> (<paramref name="format"/> raw or qcow2) as virtual
    /// device <paramref name="vdev"/> ("xvda" or a number). Throws <see cref="DiskImageException"/> (missing, locked
    /// by another domain, a qcow2 image refused) or <see cref="InvalidOperationException"/> (device id in use).
    /// </summary>
    public DiskInfo AttachDisk(Domain domain, string target, string vdev, bool readOnly, string format = "raw", bool cdrom = false)
    {
        if (!DiskImageFormats.IsSupported(format)) throw new NotSupportedException($"disk format {format}: {DiskImageFormats.SupportedText}");
        uint devid = VbdBackend.ParseVdev(vdev);
        WatchDestroy(domain);
        lock (_lock)
        {
            if (_disks.ContainsKey((domain.Id, devid))) throw new InvalidOperationException($"d{domain.Id} already has vbd {devid}");
            var img = DiskImageFormats.Open(target, format, readOnly || cdrom, domain.Id);
            if (img.Note is not null) Log?.Invoke($"vbd d{domain.Id}/{devid}: {img.Note}");
            var be = new VbdBackend(Xs, domain, devid, img, target, cdrom) { Log = Log };
            try { be.Start(); }
            catch { be.Dispose(); throw; }
            _disks[(domain.Id, devid)] = be;
            return Info(be);
        }
    }

    /// <summary>
    /// Attaches a NIC: <paramref name="mac"/> "00:16:3e:..." (null: generated), <paramref name="bridge"/> names the
    /// switch (null: xenbr0), <paramref name="rate"/> like "10Mb/s@20ms", <paramref name="devid"/> null: the next free.
    /// </summary>
    public NicInfo AttachNic(Domain domain, string? mac = null, string? bridge = null, string? rate = null, uint? devid = null)
    {
        byte[] m = mac is null ? VifBackend.GenerateMac() : VifBackend.ParseMac(mac);
        var r = rate is null ? null : VifRate.Parse(rate);
        WatchDestroy(domain);
        lock (_lock)
        {
            uint id = devid ?? Enumerable.Range(0, 1 << 16).Select(i => (uint)i).First(i => !_nics.ContainsKey((domain.Id, i)));
            if (_nics.ContainsKey((domain.Id, id))) throw new InvalidOperationException($"d{domain.Id} already has vif {id}");
            var sw = SwitchFor(bridge ?? DefaultSwitch);
            var be = new VifBackend(Xs, domain, id, m, sw, r, bridge ?? DefaultSwitch) { Log = Log };
            be.Start();
            _nics[(domain.Id, id)] = be;
            return Info(be);
        }
    }

    /// <summary>The switch of bridge <paramref name="name"/>, made on first use (with a TAP uplink when possible).</summary>
    public VirtualSwitch SwitchFor(string name)
    {
        lock (_lock)
        {
            if (_switches.TryGetValue(name, out var sw)) return sw;
            sw = new VirtualSwitch(name);
            _switches[name] = sw;
            if (CreateTapUplinks)
            {
                string tapName = ("xs" + name).Length <= 15 ? "xs" + name : "xs" + name[..13];
                var tap = TapPort.TryCreate(tapName, name, out string? reason);
                if (tap is null)
                {
                    _uplinkNotes[name] = reason ?? "unknown";
                    Log?.Invoke($"switch {name}: no TAP uplink: {reason}");
                }
                else
                {
                    sw.Attach(tap);
                    _uplinks[name] = tap;
                }
            }
            return sw;
        }
    }

    /// <summary>
    /// Detaches a vbd. With <paramref name="graceful"/> the frontend is asked to close first (xl block-detach);
    /// without, or when it does not answer in time, the device is torn down regardless (xl block-detach --force).
    /// False when there is no such device.
    /// </summary>
    public bool DetachDisk(uint domid, uint devid, TimeSpan? graceful = null)
    {
        VbdBackend? be;
        lock (_lock) if (!_disks.Remove((domid, devid), out be)) return false;
        if (graceful is { } t && !be.Close(t)) Log?.Invoke($"vbd d{domid}/{devid}: frontend did not close within {t}: forced");
        be.Dispose();
        return true;
    }

    /// <summary>Detaches a vif; <paramref name="graceful"/> as for <see cref="DetachDisk"/>.</summary>
    public bool DetachNic(uint domid, uint devid, TimeSpan? graceful = null)
    {
        VifBackend? be;
        lock (_lock) if (!_nics.Remove((domid, devid), out be)) return false;
        if (graceful is { } t && !be.Close(t)) Log?.Invoke($"vif d{domid}/{devid}: frontend did not close within {t}: forced");
        be.Dispose();
        return true;
    }

    /// <summary>Detaches every device of a domain (on destroy); returns how many.</summary>
    public int DetachAll(uint domid)
    {
        List<IDisposable> all;
        lock (_lock)
        {
            all = [];
            foreach (var k in _disks.Keys.Where(k => k.Item1 == domid).ToList()) { all.Add(_disks[k]); _disks.Remove(k); }
            foreach (var k in _nics.Keys.Where(k => k.Item1 == domid).ToList()) { all.Add(_nics[k]); _nics.Remove(k); }
        }
        foreach (var d in all) d.Dispose();
        return all.Count;
    }

    /// <summary>The backend object of a vbd (counters, state), or null.</summary>
    public VbdBackend? FindDisk(uint domid, uint devid) { lock (_lock) return _disks.GetValueOrDefault((domid, devid)); }

    /// <summary>The backend object of a vif (counters, switch port), or null.</summary>
    public VifBackend? FindNic(uint domid, uint devid) { lock (_lock) return _nics.GetValueOrDefault((domid, devid)); }

    public IReadOnlyList<DiskInfo> ListDisks(uint? domid = null)
    {
        lock (_lock) return _disks.Values.Where(b => domid is null || b.FrontendDomid == domid).OrderBy(b => b.FrontendDomid).ThenBy(b => b.DevId).Select(Info).ToList();
    }

    public IReadOnlyList<NicInfo> ListNics(uint? domid = null)
    {
        lock (_lock) return _nics.Values.Where(b => domid is null || b.FrontendDomid == domid).OrderBy(b => b.FrontendDomid).ThenBy(b => b.DevId).Select(Info).ToList();
    }

    private static DiskInfo Info(VbdBackend b) => new(b.FrontendDomid, b.DevId, VbdBackend.VdevName(b.DevId), b.Target, b.ReadOnly,
        (b.Info & Blkif.VdiskCdrom) != 0, b.State, b.LastError, b.BackendPath, b.Image.Direct, b.Image.Note, b.Stats);

    private static NicInfo Info(VifBackend b) => new(b.FrontendDomid, b.DevId, b.Name, b.MacString, b.Bridge, b.Rate, b.State,
        b.LastError, b.BackendPath, b.Stats);

    public void Dispose()
    {
        List<IDisposable> all;
        lock (_lock)
        {
            foreach (var hv in _watched) hv.DomainDestroyed -= OnDomainDestroyed;
            _watched.Clear();
            all = [.. _disks.Values, .. _nics.Values, .. _uplinks.Values];
            _disks.Clear();
            _nics.Clear();
            _uplinks.Clear();
        }
        foreach (var d in all) d.Dispose();
    }
}
