using XenSharp.Panel.Data;
using XenSharp.Panel.Security;
using XenSharp.Panel.Xld;

namespace XenSharp.Panel.Services;

/// <summary>A host's state: reachability, capacity, and domains running there that the panel does not manage (made with xl directly).</summary>
public sealed record HostHealth(bool Reachable, string? Version, XldHostInfo? Info, long CommittedMiB, string? Error,
    int Domains = 0, IReadOnlyList<string>? Unmanaged = null);

/// <summary>Validated create/update/delete of the admin-owned objects, each audited.</summary>
public sealed class AdminService(Store store, XldClients xld)
{
    private static PanelProblem Conflict(string what) => new(409, $"{what} is in use and cannot be deleted");

    public async Task<HostHealth> HealthAsync(XenHost h, CancellationToken ct)
    {
        var c = xld.For(h);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(5));
            var version = await c.VersionAsync(cts.Token);
            var info = await c.InfoAsync(cts.Token);
            var domains = (await c.ListAsync(cts.Token)).Where(d => d.Id != 0).ToList();
            var managed = store.VpsOnHost(h.Id).Select(v => v.Name).ToHashSet();
            return new HostHealth(true, version, info, store.HostCommittedMiB(h.Id), null, domains.Count,
                domains.Select(d => d.Name).Where(n => !managed.Contains(n)).ToList());
        }
        catch (Exception e) when (e is XldException or OperationCanceledException or System.Text.Json.JsonException)
        {
            return new HostHealth(false, null, null, store.HostCommittedMiB(h.Id), e is OperationCanceledException ? "timed out" : e.Message);
        }
    }

    public long CreateHost(Actor a, string? name, string? url, string? token, bool maintenance)
    {
        Validation.Label("name", name);
        Validation.HostUrl(url);
        if (string.IsNullOrWhiteSpace(token) || token.Length > 512) throw PanelProblem.Invalid("token", "token is required (create it on the host with: xl token-create panel)");
        if (store.ListHosts().Any(h => h.Name == name)) throw PanelProblem.Invalid("name", "a host with that name exists");
        var id = store.CreateHost(name!, url!, token.Trim(), maintenance);
        store.Audit(a.User.Id, a.User.Username, a.Ip, "host.create", $"host:{id}:{name}", url!);
        return id;
    }

    public void UpdateHost(Actor a, XenHost h, string? name, string? url, string? token, bool maintenance)
    {
        Validation.Label("name", name);
        Validation.HostUrl(url);
        if (store.ListHosts().Any(x => x.Name == name && x.Id != h.Id)) throw PanelProblem.Invalid("name", "a host with that name exists");
        store.UpdateHost(h.Id, name!, url!, string.IsNullOrWhiteSpace(token) ? null : token.Trim(), maintenance);
        store.Audit(a.User.Id, a.User.Username, a.Ip, "host.update", $"host:{h.Id}:{name}", $"maintenance={maintenance}{(string.IsNullOrWhiteSpace(token) ? "" : " token=changed")}");
    }

    public void DeleteHost(Actor a, XenHost h)
    {
        if (!store.DeleteHost(h.Id)) throw Conflict("host");
        store.Audit(a.User.Id, a.User.Username, a.Ip, "host.delete", $"host:{h.Id}:{h.Name}");
    }

    public static void CheckPlan(Plan p)
    {
        Validation.Label("name", p.Name);
        Validation.Range("memoryMiB", p.MemoryMiB, 16, 1 << 20);
        Validation.Range("vcpus", p.Vcpus, 1, 128);
        Validation.Range("diskGiB", p.DiskGiB, 1, 65536);
        Validation.Range("cpuWeight", p.CpuWeight, 1, 65535);
        Validation.Range("cpuCap", p.CpuCap, 0, 12800);
        Validation.Range("trafficGiB", p.TrafficGiB, 0, 1 << 20);
        Validation.Range("rateMbps", p.RateMbps, 0, 100_000);
    }

    public long SavePlan(Actor a, Plan p)
    {
        CheckPlan(p);
        if (store.ListPlans().Any(x => x.Name == p.Name && x.Id != p.Id)) throw PanelProblem.Invalid("name", "a plan with that name exists");
        long id;
        if (p.Id == 0) id = store.CreatePlan(p);
        else { store.UpdatePlan(p); id = p.Id; }
        store.Audit(a.User.Id, a.User.Username, a.Ip, p.Id == 0 ? "plan.create" : "plan.update", $"plan:{id}:{p.Name}",
            $"memory={p.MemoryMiB} vcpus={p.Vcpus} disk={p.DiskGiB} weight={p.CpuWeight} cap={p.CpuCap} traffic={p.TrafficGiB} rate={p.RateMbps}");
        return id;
    }

    public void DeletePlan(Actor a, Plan p)
    {
        if (!store.DeletePlan(p.Id)) throw Conflict("plan");
        store.Audit(a.User.Id, a.User.Username, a.Ip, "plan.delete", $"plan:{p.Id}:{p.Name}");
    }

    public long SaveTemplate(Actor a, OsTemplate t)
    {
        Validation.Label("name", t.Name);
        if (t.Type is not ("pv" or "hvm")) throw PanelProblem.Invalid("type", "type must be pv or hvm");
        Validation.HostPath("kernel", t.Kernel, required: true);
        Validation.HostPath("ramdisk", t.Ramdisk, required: false);
        Validation.HostPath("rootImage", t.RootImage, required: false);
        Validation.CmdLine("extra", t.Extra);
        if (store.ListTemplates().Any(x => x.Name == t.Name && x.Id != t.Id)) throw PanelProblem.Invalid("name", "a template with that name exists");
        long id;
        if (t.Id == 0) id = store.CreateTemplate(t);
        else { store.UpdateTemplate(t); id = t.Id; }
        store.Audit(a.User.Id, a.User.Username, a.Ip, t.Id == 0 ? "template.create" : "template.update", $"template:{id}:{t.Name}", $"{t.Type} {t.Kernel}");
        return id;
    }

    public void DeleteTemplate(Actor a, OsTemplate t)
    {
        if (!store.DeleteTemplate(t.Id)) throw Conflict("template");
        store.Audit(a.User.Id, a.User.Username, a.Ip, "template.delete", $"template:{t.Id}:{t.Name}");
    }

    public long CreatePool(Actor a, IpPool p)
    {
        Validation.Label("name", p.Name);
        if (IpRange.Validate(p.Cidr, p.RangeStart, p.RangeEnd) is { } err) throw PanelProblem.Invalid("cidr", err);
        if (p.Gateway.Length > 0 && !IpRange.TryV4(p.Gateway, out _)) throw PanelProblem.Invalid("gateway", "gateway must be an IPv4 address");
        if (p.HostId is { } hid && store.GetHost(hid) is null) throw PanelProblem.Invalid("hostId", "no such host");
        if (store.ListPools().Any(x => x.Name == p.Name)) throw PanelProblem.Invalid("name", "a pool with that name exists");
        var id = store.CreatePool(p);
        store.Audit(a.User.Id, a.User.Username, a.Ip, "pool.create", $"pool:{id}:{p.Name}", $"{p.Cidr} {p.RangeStart}-{p.RangeEnd}");
        return id;
    }

    public void DeletePool(Actor a, IpPool p)
    {
        if (!store.DeletePool(p.Id)) throw Conflict("pool");
        store.Audit(a.User.Id, a.User.Username, a.Ip, "pool.delete", $"pool:{p.Id}:{p.Name}");
    }

    public long CreateUser(Actor? a, string? username, string? password, string? role, string? email)
    {
        Validation.Username(username);
        if (role is not (Roles.Admin or Roles.Client)) throw PanelProblem.Invalid("role", "role must be admin or client");
        if (Passwords.Check(password ?? "") is { } perr) throw PanelProblem.Invalid("password", perr);
        if (store.FindUser(username!) is not null) throw PanelProblem.Invalid("username", "that username is taken");
        var id = store.CreateUser(username!, Passwords.Hash(password!), role, (email ?? "").Trim());
        store.Audit(a?.User.Id, a?.User.Username ?? "cli", a?.Ip ?? "local", "user.create", $"user:{id}:{username}", $"role={role}");
        return id;
    }

    public void UpdateUser(Actor a, User u, string? role, string? email, bool disabled, string? newPassword, bool unlock)
    {
        if (role is not (Roles.Admin or Roles.Client)) throw PanelProblem.Invalid("role", "role must be admin or client");
        if (u.Id == a.User.Id && (role != Roles.Admin || disabled)) throw PanelProblem.Invalid("role", "you cannot demote or disable yourself");
        if (!string.IsNullOrEmpty(newPassword) && Passwords.Check(newPassword) is { } perr) throw PanelProblem.Invalid("password", perr);
        store.UpdateUser(u.Id, role, (email ?? "").Trim(), disabled);
        if (!string.IsNullOrEmpty(newPassword)) store.SetPassword(u.Id, Passwords.Hash(newPassword));
        if (unlock) store.Unlock(u.Id);
        store.Audit(a.User.Id, a.User.Username, a.Ip, "user.update", $"user:{u.Id}:{u.Username}",
            $"role={role} disabled={disabled}{(string.IsNullOrEmpty(newPassword) ? "" : " password=reset")}{(unlock ? " unlocked" : "")}");
    }

    public void DeleteUser(Actor a, User u)
    {
        if (u.Id == a.User.Id) throw PanelProblem.Invalid("id", "you cannot delete yourself");
        if (!store.DeleteUser(u.Id)) throw Conflict("user (it owns VPSes)");
        store.Audit(a.User.Id, a.User.Username, a.Ip, "user.delete", $"user:{u.Id}:{u.Username}");
    }
}
