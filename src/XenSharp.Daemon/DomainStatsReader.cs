using XenSharp.Api;
using XenSharp.Hypervisor;

namespace XenSharp.Daemon;

/// <summary>Gathers <see cref="DomainStats"/> from the hypervisor (CPU, memory) and dom0's backends (vif/vbd counters).</summary>
public static class DomainStatsReader
{
    public static DomainStats[] Read(Toolstack.Toolstack toolstack, IEnumerable<Domain> domains)
    {
        var now = DateTime.UtcNow;
        return domains.Select(d => Read(toolstack, d, now)).ToArray();
    }

    public static DomainStats Read(Toolstack.Toolstack toolstack, Domain d, DateTime now)
    {
        var devices = new List<DeviceStats>();
        foreach (var n in toolstack.Backends.ListNics(d.Id))
        {
            var s = n.Stats.Snapshot();
            devices.Add(new DeviceStats("vif", n.DevId, n.Name, s.RxBytes, s.TxBytes, s.RxPackets, s.TxPackets));
        }
        foreach (var b in toolstack.Backends.ListDisks(d.Id))
        {
            var s = b.Stats;
            devices.Add(new DeviceStats("vbd", b.DevId, b.Vdev, Interlocked.Read(ref s.SectorsRead) * 512, Interlocked.Read(ref s.SectorsWritten) * 512,
                Interlocked.Read(ref s.ReadRequests), Interlocked.Read(ref s.WriteRequests)));
        }
        var vifs = devices.Where(x => x.Kind == "vif").ToList();
        var vbds = devices.Where(x => x.Kind == "vbd").ToList();
        ulong allocated;
        try { allocated = d.Memory.AllocatedBytes; }
        catch (Exception e) when (e is ObjectDisposedException or System.ComponentModel.Win32Exception) { allocated = 0; } // destroyed meanwhile
        return new DomainStats(d.Name, d.Id, d.StateFlags, d.CpuTime.TotalSeconds, d.Vcpus.Count(v => v.Online),
            d.TargetBytes, d.MaxBytes, allocated,
            vifs.Count, vifs.Sum(x => x.WriteBytes), vifs.Sum(x => x.ReadBytes), vifs.Sum(x => x.WriteOps), vifs.Sum(x => x.ReadOps),
            vbds.Count, vbds.Sum(x => x.ReadOps), vbds.Sum(x => x.WriteOps), vbds.Sum(x => x.ReadBytes), vbds.Sum(x => x.WriteBytes),
            (now - d.CreatedUtc).TotalSeconds, now, devices);
    }
}
