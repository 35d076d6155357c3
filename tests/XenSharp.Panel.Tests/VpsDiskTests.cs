using System.Net;

namespace XenSharp.Panel.Tests;

/// <summary>
/// Each VPS made from a template with a root image gets its own disk from the host's xld (the fake records the
/// calls): at the plan's size, in its config instead of the template's image, replaced on rebuild, deleted with the VPS.
/// </summary>
public sealed class VpsDiskTests(ApiFixture f) : IClassFixture<ApiFixture>
{
    private const long PlanDiskBytes = 10L << 30; // the fixture's plan: diskGiB = 10
    private const string DebianImage = "/srv/templates/debian-root.img";

    private async Task<long> Template(string name, string rootImage) =>
        await ApiFixture.Id(await f.Send(f.AdminToken, HttpMethod.Post, "/api/v1/admin/templates",
            new { name, type = "pv", kernel = "/srv/templates/vmlinuz", rootImage, extra = "root=/dev/xvda" }));

    private async Task<HttpResponseMessage> CreateVps(string name, long templateId, bool boot = true) =>
        await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", new { name, planId = f.PlanId, templateId, boot });

    /// <summary>The VPS's disk as the panel recorded it: the path xld returned, and the disk's name on the host.</summary>
    private (string Path, string Name) Disk(long vpsId)
    {
        var path = f.Panel.Store.AllVps().Single(v => v.Id == vpsId).DiskPath;
        return (path, Path.GetFileNameWithoutExtension(path));
    }

    private FakeXld.DiskCall[] CallsFor(string disk) => f.Xld.DiskCalls.Where(c => c.Name == disk).ToArray();

    [SkippableFact]
    public async Task Two_VPSes_from_one_template_get_their_own_disks_at_the_plans_size()
    {
        var tpl = await Template("debian-two", DebianImage);
        var a = await ApiFixture.Id(await CreateVps("disk-a", tpl));
        var b = await ApiFixture.Id(await CreateVps("disk-b", tpl));

        foreach (var id in new[] { a, b })
        {
            var (path, name) = Disk(id);
            Assert.Equal(FakeXld.DiskPath(name), path);
            Assert.StartsWith($"vps-{id}-", name);
            var create = Assert.Single(CallsFor(name));
            Assert.Equal(("disk-create", PlanDiskBytes, DebianImage, false), (create.Command, create.SizeBytes, create.Template, create.Replace));
        }
        Assert.NotEqual(Disk(a).Path, Disk(b).Path);
        var configA = f.Xld.ConfigOf("disk-a");
        var configB = f.Xld.ConfigOf("disk-b");
        Assert.Contains($"disk = [ 'format=raw, vdev=xvda, access=rw, target={Disk(a).Path}' ]", configA);
        Assert.Contains($"disk = [ 'format=raw, vdev=xvda, access=rw, target={Disk(b).Path}' ]", configB);
        Assert.DoesNotContain(DebianImage, configA + configB);
        Assert.Contains(Disk(a).Path, await (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{a}/config")).Content.ReadAsStringAsync());
    }

    [SkippableFact]
    public async Task A_VPS_created_without_booting_still_gets_its_disk()
    {
        var tpl = await Template("debian-noboot", DebianImage);
        var id = await ApiFixture.Id(await CreateVps("disk-noboot", tpl, boot: false));
        Assert.True(f.Xld.HasDisk(Disk(id).Name));
        Assert.False(f.Xld.Has("disk-noboot"));
    }

    [SkippableFact]
    public async Task A_disk_the_host_cannot_make_leaves_no_VPS_and_boots_nothing()
    {
        var tpl = await Template("debian-full", DebianImage);
        var before = f.VpsCount;
        var creates = f.Xld.Commands.Count(c => c == "create");
        f.Xld.FailDiskCreate = true;
        try
        {
            var r = await CreateVps("disk-doomed", tpl);
            Assert.Equal(HttpStatusCode.BadGateway, r.StatusCode);
            var body = await r.Content.ReadAsStringAsync();
            Assert.Contains("nothing was created", body);
            Assert.Contains("no space left", body);
        }
        finally { f.Xld.FailDiskCreate = false; }
        Assert.Equal(before, f.VpsCount);
        Assert.Equal(creates, f.Xld.Commands.Count(c => c == "create"));
        Assert.DoesNotContain(f.Panel.Store.AllVps(), v => v.Name == "disk-doomed");
    }

    [SkippableFact]
    public async Task A_VPS_that_fails_to_boot_takes_its_new_disk_with_it()
    {
        var tpl = await Template("debian-noboot-host", DebianImage);
        var before = f.VpsCount;
        var deletes = f.Xld.DiskCalls.Count(c => c.Command == "disk-delete");
        f.Xld.FailCreate = true;
        try { Assert.Equal(HttpStatusCode.BadGateway, (await CreateVps("disk-unbootable", tpl)).StatusCode); }
        finally { f.Xld.FailCreate = false; }
        Assert.Equal(before, f.VpsCount);
        var delete = f.Xld.DiskCalls.Where(c => c.Command == "disk-delete").Skip(deletes).Single();
        Assert.False(f.Xld.HasDisk(delete.Name));
        Assert.Contains(f.Xld.DiskCalls, c => c.Command == "disk-create" && c.Name == delete.Name);
    }

    [SkippableFact]
    public async Task Rebuild_replaces_the_disk_with_a_fresh_copy_of_the_new_template()
    {
        var debian = await Template("debian-rebuild", DebianImage);
        var alpine = await Template("alpine-rebuild", "/srv/templates/alpine-root.img");
        var id = await ApiFixture.Id(await CreateVps("disk-rebuilt", debian));
        var r = await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/rebuild", new { templateId = alpine, confirm = "disk-rebuilt" });
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());

        var (path, name) = Disk(id);
        var calls = CallsFor(name);
        Assert.Equal(2, calls.Length);
        Assert.Equal(("disk-create", PlanDiskBytes, "/srv/templates/alpine-root.img", true), (calls[1].Command, calls[1].SizeBytes, calls[1].Template, calls[1].Replace));
        Assert.True(f.Xld.Has("disk-rebuilt"));
        Assert.Contains($"target={path}' ]", f.Xld.ConfigOf("disk-rebuilt"));
    }

    [SkippableFact]
    public async Task Delete_removes_the_disk_and_a_disk_already_gone_is_no_obstacle()
    {
        var tpl = await Template("debian-delete", DebianImage);
        var id = await ApiFixture.Id(await CreateVps("disk-deleted", tpl));
        var disk = Disk(id).Name;
        Assert.True(f.Xld.HasDisk(disk));
        Assert.Equal(HttpStatusCode.NoContent, (await f.Send(f.AliceToken, HttpMethod.Delete, $"/api/v1/vps/{id}")).StatusCode);
        Assert.Equal("disk-delete", CallsFor(disk).Last().Command);
        Assert.False(f.Xld.HasDisk(disk));
        Assert.False(f.Xld.Has("disk-deleted"));

        var gone = await ApiFixture.Id(await CreateVps("disk-gone", tpl));
        f.Xld.LoseDisk(Disk(gone).Name);
        Assert.Equal(HttpStatusCode.NoContent, (await f.Send(f.AliceToken, HttpMethod.Delete, $"/api/v1/vps/{gone}")).StatusCode);
        Assert.Null(f.Panel.Store.AllVps().FirstOrDefault(v => v.Id == gone));
    }

    [SkippableFact]
    public async Task A_template_without_a_root_image_makes_no_disk()
    {
        var calls = f.Xld.DiskCalls.Count;
        var id = await f.CreateVps(f.AliceToken, "disk-none");
        Assert.Equal("", Disk(id).Path);
        Assert.DoesNotContain("disk =", f.Xld.ConfigOf("disk-none"));
        Assert.Equal(HttpStatusCode.NoContent, (await f.Send(f.AliceToken, HttpMethod.Delete, $"/api/v1/vps/{id}")).StatusCode);
        Assert.Equal(calls, f.Xld.DiskCalls.Count);
    }

    [SkippableFact]
    public async Task A_VPS_without_a_disk_from_before_gets_one_at_its_next_boot()
    {
        var tpl = await Template("debian-legacy", DebianImage);
        var id = await ApiFixture.Id(await CreateVps("disk-legacy", tpl, boot: false));
        var before = Disk(id).Name;
        f.Panel.Store.SetVpsDisk(id, ""); // as a row from before per-VPS disks
        var r = await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/boot");
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        var (path, name) = Disk(id);
        Assert.NotEqual(before, name);
        var create = Assert.Single(CallsFor(name));
        Assert.Equal(("disk-create", PlanDiskBytes, DebianImage, false), (create.Command, create.SizeBytes, create.Template, create.Replace));
        Assert.Contains($"target={path}' ]", f.Xld.ConfigOf("disk-legacy"));
        Assert.DoesNotContain(DebianImage, f.Xld.ConfigOf("disk-legacy"));
    }
}
