using System.Globalization;
using XenSharp.Dom0.Xenstore;
using XenSharp.Hypervisor;

namespace XenSharp.Toolstack;

/// <summary>
/// The xenstore nodes the toolstack keeps for each domain, where libxl puts them: <c>/local/domain/ID/…</c>
/// (name, domid, vm, memory, cpu availability, control, console, store) and <c>/vm/UUID/…</c>. A domain may
/// read its own tree and write only where guests write on Xen (control, device, data, memory, …).
/// </summary>
public static class DomainStoreLayout
{
    private static readonly string[] GuestWritable = ["device", "control", "data", "drivers", "feature", "attr", "error", "messages", "memory"];

    public static string DomainPath(uint domid) => $"/local/domain/{domid}";

    public static void Write(XenstoreClient xs, Domain domain, DomainPlan plan, PvRings? rings)
    {
        string dom = DomainPath(domain.Id);
        string vm = $"/vm/{domain.Uuid}";
        var readable = new[] { new XsPermission(0, XsAccess.None), new XsPermission(domain.Id, XsAccess.Read) };
        var owned = new[] { new XsPermission(domain.Id, XsAccess.None) };
        xs.Transaction(tx =>
        {
            xs.Rm(dom, tx);
            xs.Mkdir(dom, tx);
            xs.SetPerms(dom, readable, tx);
            xs.Write($"{dom}/name", domain.Name, tx);
            xs.Write($"{dom}/domid", domain.Id.ToString(CultureInfo.InvariantCulture), tx);
            xs.Write($"{dom}/vm", vm, tx);
            foreach (var sub in GuestWritable)
            {
                xs.Mkdir($"{dom}/{sub}", tx);
                xs.SetPerms($"{dom}/{sub}", owned, tx);
            }
            xs.Write($"{dom}/memory/static-max", (domain.MaxBytes >> 10).ToString(CultureInfo.InvariantCulture), tx);
            xs.Write($"{dom}/memory/target", (domain.TargetBytes >> 10).ToString(CultureInfo.InvariantCulture), tx);
            xs.Write($"{dom}/control/shutdown", "", tx);
            xs.Write($"{dom}/control/platform-feature-multiprocessor-suspend", "1", tx);
            xs.Write($"{dom}/control/platform-feature-xs_reset_watches", "1", tx);
            // The configured count, not how each vCPU starts: a PV guest's secondary vCPUs start down and the guest
            // brings up those its hot-plug watcher finds "online" here (vcpus=), leaving the rest up to maxvcpus.
            foreach (var v in domain.Vcpus)
                xs.Write($"{dom}/cpu/{v.Id}/availability", v.Id < plan.Config.Vcpus ? "online" : "offline", tx);
            if (rings is not null)
            {
                xs.Write($"{dom}/store/ring-ref", rings.StoreMfn.ToString(CultureInfo.InvariantCulture), tx);
                xs.Write($"{dom}/store/port", rings.StorePort.ToString(CultureInfo.InvariantCulture), tx);
                xs.Write($"{dom}/console/ring-ref", rings.ConsoleMfn.ToString(CultureInfo.InvariantCulture), tx);
                xs.Write($"{dom}/console/port", rings.ConsolePort.ToString(CultureInfo.InvariantCulture), tx);
            }
            xs.Write($"{dom}/console/type", rings is null ? "ioemu" : "xenconsoled", tx);
            xs.Write($"{dom}/console/limit", "1048576", tx);
            xs.Write($"{vm}/name", domain.Name, tx);
            xs.Write($"{vm}/uuid", domain.Uuid.ToString(), tx);
            xs.Write($"{vm}/image/ostype", plan.Type == DomainType.Hvm ? "hvm" : "linux", tx);
            xs.Write($"{vm}/start_time", DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture), tx);
        });
    }

    public static void Rename(XenstoreClient xs, Domain domain)
    {
        xs.Write($"{DomainPath(domain.Id)}/name", domain.Name);
        xs.Write($"/vm/{domain.Uuid}/name", domain.Name);
    }

    /// <summary>Removes the domain's nodes (on destroy), as libxl does.</summary>
    public static void Remove(XenstoreClient xs, Domain domain)
    {
        xs.Rm(DomainPath(domain.Id));
        xs.Rm($"/vm/{domain.Uuid}");
    }
}

/// <summary>Where a PV domain's xenstore and console rings are (frame numbers and the guest's event channel ports).</summary>
public sealed record PvRings(ulong StoreMfn, uint StorePort, ulong ConsoleMfn, uint ConsolePort);
