using System.Security.Cryptography;
using XenSharp.Panel.Data;
using XenSharp.Panel.Xld;

namespace XenSharp.Panel.Services;

/// <summary>
/// Each VPS's own root disk on its host, named <c>vps-ID-RANDOM</c> (IDs of deleted VPSes come back; disk names do
/// not, so a disk left behind by a failed delete never becomes another VPS's): made by the host's xld (disk-create) as a sparse copy of
/// the template's root image at the plan's disk size, replaced by a fresh copy on rebuild, deleted with the VPS. The
/// panel never touches a host's files; it keeps the path xld reports, for the VPS's config.
/// </summary>
public sealed class VpsDisks(Store store, XldClients xld)
{
    private const long GiB = 1L << 30;

    /// <summary>The name of the VPS's disk on its host: the one it has, or a new one.</summary>
    public static string NameOf(Vps v) =>
        v.DiskPath.Length > 0 ? Path.GetFileNameWithoutExtension(v.DiskPath) : $"vps-{v.Id}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";

    /// <summary>
    /// Makes the VPS's disk from <paramref name="tpl"/> (with <paramref name="replace"/>, over the one it has) and records
    /// its path. A template without a root image means no disk: an old one is deleted.
    /// </summary>
    public async Task ProvisionAsync(Vps v, OsTemplate tpl, bool replace, CancellationToken ct)
    {
        if (tpl.RootImage.Length == 0)
        {
            await RemoveAsync(v, ct);
            return;
        }
        var plan = store.GetPlan(v.PlanId)!;
        var disk = await Client(v).DiskCreateAsync(NameOf(v), plan.DiskGiB * GiB, tpl.RootImage, replace, ct);
        store.SetVpsDisk(v.Id, disk.Path);
    }

    /// <summary>Deletes the VPS's disk on its host if it has one; a disk already gone there is no error.</summary>
    public async Task RemoveAsync(Vps v, CancellationToken ct)
    {
        if (v.DiskPath.Length == 0) return;
        try { await Client(v).DiskDeleteAsync(NameOf(v), ct); }
        catch (XldException e) when (e.Message.StartsWith("no such disk", StringComparison.Ordinal)) { }
        store.SetVpsDisk(v.Id, "");
    }

    private XldClient Client(Vps v) => xld.For(store.GetHost(v.HostId)!);
}
