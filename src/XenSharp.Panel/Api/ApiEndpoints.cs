using System.Net.WebSockets;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;
using XenSharp.Panel.Services;
using XenSharp.Panel.Xld;

namespace XenSharp.Panel.Api;

public sealed record CreateVpsRequest(string? Name, long PlanId, long TemplateId, long? HostId = null, long? OwnerId = null, bool Boot = true);
public sealed record RebuildRequest(long TemplateId, string? Confirm);
public sealed record RenameRequest(string? Name);
public sealed record ResizeRequest(long? PlanId, int? MemoryMiB, int? Vcpus);
public sealed record HostRequest(string? Name, string? Url, string? Token, bool Maintenance = false);
public sealed record PlanRequest(string? Name, int MemoryMiB, int Vcpus, int DiskGiB, int CpuWeight = 256, int CpuCap = 0, int TrafficGiB = 0, int RateMbps = 0);
public sealed record TemplateRequest(string? Name, string? Type, string? Kernel, string? Ramdisk = "", string? RootImage = "", string? Extra = "");
public sealed record PoolRequest(string? Name, string? Cidr, string? Gateway, string? RangeStart, string? RangeEnd, long? HostId = null);
public sealed record UserRequest(string? Username, string? Password, string? Role, string? Email = "");
public sealed record UserUpdateRequest(string? Role, string? Email, bool Disabled = false, string? Password = null, bool Unlock = false);
public sealed record TokenRequest(string? Name, string? Scope);
public sealed record SettingsRequest(bool TotpMandatory);

public sealed record VpsDto(long Id, string Name, long OwnerId, string Owner, long HostId, string Host, long PlanId, string Plan, long TemplateId,
    string Template, int MemoryMiB, int Vcpus, string? Ip, DateTime CreatedAt, VpsStatus? Status = null)
{
    public static VpsDto From(Vps v, VpsStatus? s = null) =>
        new(v.Id, v.Name, v.OwnerId, v.OwnerName, v.HostId, v.HostName, v.PlanId, v.PlanName, v.TemplateId, v.TemplateName, v.MemoryMiB, v.Vcpus, v.Ip, v.CreatedAt, s);
}
public sealed record PageDto<T>(IReadOnlyList<T> Items, long Total, int Page, int PageSize);
public sealed record UserDto(long Id, string Username, string Role, string Email, bool TotpEnabled, bool Locked, bool Disabled, DateTime CreatedAt)
{
    public static UserDto From(User u) => new(u.Id, u.Username, u.Role, u.Email, u.TotpEnabled, u.LockedUntil > DateTime.UtcNow, u.Disabled, u.CreatedAt);
}
public sealed record HostDto(long Id, string Name, string Url, bool Maintenance, DateTime CreatedAt)
{
    public static HostDto From(XenHost h) => new(h.Id, h.Name, h.Url, h.Maintenance, h.CreatedAt); // the token never leaves the panel
}
/// <summary>One graph point: CPU % of one vCPU, memory, and disk/network rates in bytes per second (null where the host reported no counters).</summary>
public sealed record StatsPoint(DateTime At, double CpuPercent, long MemoryMiB, bool Running,
    double? NetRxBytesPerSecond = null, double? NetTxBytesPerSecond = null, double? DiskReadBytesPerSecond = null, double? DiskWriteBytesPerSecond = null);
public sealed record StatsDto(long VpsId, double IntervalSeconds, IReadOnlyList<StatsPoint> Points, bool IoReported);
public sealed record TrafficDto(string Month, long RxBytes, long TxBytes, long UsedBytes, long QuotaBytes, string Note);
public sealed record CreatedToken(long Id, string Name, string Scope, string Token);
public sealed record IdDto(long Id);

/// <summary>The panel's REST API under /api/v1: everything the UI does. Errors are RFC 7807 problem bodies.</summary>
public static class ApiEndpoints
{
    public static void Map(WebApplication app)
    {
        var api = app.MapGroup("/api/v1").RequireAuthorization().AddEndpointFilter(ProblemFilter).DisableAntiforgery().WithTags("panel");

        api.MapGet("/me", (HttpContext c) => UserDto.From(Me(c)));

        // ---- VPS
        api.MapGet("/vps", (HttpContext c, string? sort, bool? desc, int? page, int? pageSize, string? q, Store s) =>
        {
            var u = Me(c);
            var (p, ps) = (Math.Max(1, page ?? 1), Math.Clamp(pageSize ?? 50, 1, 500));
            var (items, total) = s.PageVps(u, sort ?? "name", desc ?? false, p, ps, q);
            return new PageDto<VpsDto>(items.Select(v => VpsDto.From(v)).ToList(), total, p, ps);
        });
        api.MapPost("/vps", async (HttpContext c, CreateVpsRequest r, VpsService v, CancellationToken ct) =>
        {
            var u = Write(c);
            var vps = await v.CreateAsync(CurrentUser.Actor(c, u), r.Name, r.PlanId, r.TemplateId, r.HostId, r.OwnerId, r.Boot, ct);
            return Results.Created($"/api/v1/vps/{vps.Id}", VpsDto.From(vps));
        });
        api.MapGet("/vps/{id:long}", async (HttpContext c, long id, VpsService v, CancellationToken ct) =>
        {
            var vps = v.Get(id, Me(c));
            return VpsDto.From(vps, await v.StatusAsync(vps, ct));
        });
        api.MapDelete("/vps/{id:long}", async (HttpContext c, long id, VpsService v, CancellationToken ct) =>
        {
            var u = Write(c);
            await v.DeleteAsync(CurrentUser.Actor(c, u), v.Get(id, u), ct);
            return Results.NoContent();
        });
        api.MapPost("/vps/{id:long}/boot", (HttpContext c, long id, VpsService v, CancellationToken ct) => Act(c, id, v, (a, x) => v.BootAsync(a, x, ct)));
        api.MapPost("/vps/{id:long}/shutdown", (HttpContext c, long id, VpsService v, CancellationToken ct) => Act(c, id, v, (a, x) => v.ShutdownAsync(a, x, false, ct)));
        api.MapPost("/vps/{id:long}/reboot", (HttpContext c, long id, VpsService v, CancellationToken ct) => Act(c, id, v, (a, x) => v.ShutdownAsync(a, x, true, ct)));
        api.MapPost("/vps/{id:long}/force-off", (HttpContext c, long id, VpsService v, CancellationToken ct) => Act(c, id, v, (a, x) => v.ForceOffAsync(a, x, ct)));
        api.MapPost("/vps/{id:long}/rebuild", (HttpContext c, long id, RebuildRequest r, VpsService v, CancellationToken ct) =>
            Act(c, id, v, (a, x) => v.RebuildAsync(a, x, r.TemplateId, r.Confirm, ct)));
        api.MapPost("/vps/{id:long}/rename", (HttpContext c, long id, RenameRequest r, VpsService v, CancellationToken ct) =>
            Act(c, id, v, (a, x) => v.RenameAsync(a, x, r.Name, ct)));
        api.MapPost("/vps/{id:long}/resize", (HttpContext c, long id, ResizeRequest r, VpsService v, CancellationToken ct) =>
            Act(c, id, v, (a, x) => v.ResizeAsync(a, x, r.PlanId, r.MemoryMiB, r.Vcpus, ct)));
        api.MapGet("/vps/{id:long}/stats", (HttpContext c, long id, int? points, VpsService v, Store s, Sampler sampler) =>
            Stats(v.Get(id, Me(c)), s, sampler, Math.Clamp(points ?? 120, 2, 2000)));
        api.MapGet("/vps/{id:long}/traffic", (HttpContext c, long id, VpsService v, Store s) => Traffic(v.Get(id, Me(c)), s));
        api.MapGet("/vps/{id:long}/config", (HttpContext c, long id, VpsService v) => Results.Text(v.ConfigFor(v.Get(id, Me(c))), "text/plain"));
        // The console: a WebSocket relayed to the host's xld console (binary frames both ways).
        api.Map("/vps/{id:long}/console", (HttpContext c, long id, VpsService v, XldClients x, Store s) => Console(c, v.Get(id, Me(c)), x, s))
            .ExcludeFromDescription();

        // ---- catalogue every user reads
        api.MapGet("/plans", (Store s) => s.ListPlans());
        api.MapGet("/templates", (Store s) => s.ListTemplates());

        // ---- API tokens of the caller
        api.MapGet("/tokens", (HttpContext c, Store s) => s.ListApiTokens(Me(c).Id));
        api.MapPost("/tokens", (HttpContext c, TokenRequest r, Store s) =>
        {
            var u = Write(c);
            var t = CreateToken(c, u, r.Name, r.Scope, s);
            return Results.Created($"/api/v1/tokens/{t.Id}", t);
        });
        api.MapDelete("/tokens/{id:long}", (HttpContext c, long id, Store s) =>
        {
            var u = Write(c);
            if (!s.DeleteApiToken(id, u.Id)) throw PanelProblem.NotFound("token");
            s.Audit(u.Id, u.Username, CurrentUser.Ip(c), "token.delete", $"token:{id}");
            return Results.NoContent();
        });

        // ---- admin
        var admin = api.MapGroup("/admin").AddEndpointFilter((ctx, next) => { Admin(ctx.HttpContext); return next(ctx); });
        admin.MapGet("/hosts", (Store s) => s.ListHosts().Select(HostDto.From));
        admin.MapPost("/hosts", (HttpContext c, HostRequest r, AdminService a) =>
            Results.Created("", new IdDto(a.CreateHost(ActorOf(c), r.Name, r.Url, r.Token, r.Maintenance))));
        admin.MapPut("/hosts/{id:long}", (HttpContext c, long id, HostRequest r, AdminService a, Store s) =>
        {
            a.UpdateHost(ActorOf(c), s.GetHost(id) ?? throw PanelProblem.NotFound("host"), r.Name, r.Url, r.Token, r.Maintenance);
            return Results.NoContent();
        });
        admin.MapDelete("/hosts/{id:long}", (HttpContext c, long id, AdminService a, Store s) =>
        {
            a.DeleteHost(ActorOf(c), s.GetHost(id) ?? throw PanelProblem.NotFound("host"));
            return Results.NoContent();
        });
        admin.MapGet("/hosts/{id:long}/health", (long id, AdminService a, Store s, CancellationToken ct) =>
            a.HealthAsync(s.GetHost(id) ?? throw PanelProblem.NotFound("host"), ct));

        admin.MapPost("/plans", (HttpContext c, PlanRequest r, AdminService a) => Results.Created("", new IdDto(a.SavePlan(ActorOf(c), ToPlan(0, r)))));
        admin.MapPut("/plans/{id:long}", (HttpContext c, long id, PlanRequest r, AdminService a, Store s) =>
        {
            _ = s.GetPlan(id) ?? throw PanelProblem.NotFound("plan");
            a.SavePlan(ActorOf(c), ToPlan(id, r));
            return Results.NoContent();
        });
        admin.MapDelete("/plans/{id:long}", (HttpContext c, long id, AdminService a, Store s) =>
        {
            a.DeletePlan(ActorOf(c), s.GetPlan(id) ?? throw PanelProblem.NotFound("plan"));
            return Results.NoContent();
        });

        admin.MapPost("/templates", (HttpContext c, TemplateRequest r, AdminService a) => Results.Created("", new IdDto(a.SaveTemplate(ActorOf(c), ToTemplate(0, r)))));
        admin.MapPut("/templates/{id:long}", (HttpContext c, long id, TemplateRequest r, AdminService a, Store s) =>
        {
            _ = s.GetTemplate(id) ?? throw PanelProblem.NotFound("template");
            a.SaveTemplate(ActorOf(c), ToTemplate(id, r));
            return Results.NoContent();
        });
        admin.MapDelete("/templates/{id:long}", (HttpContext c, long id, AdminService a, Store s) =>
        {
            a.DeleteTemplate(ActorOf(c), s.GetTemplate(id) ?? throw PanelProblem.NotFound("template"));
            return Results.NoContent();
        });

        admin.MapGet("/pools", (Store s) => s.ListPools().Select(p => new { pool = p, used = s.PoolUsed(p.Id) }));
        admin.MapPost("/pools", (HttpContext c, PoolRequest r, AdminService a) =>
            Results.Created("", new IdDto(a.CreatePool(ActorOf(c), new IpPool(0, r.Name ?? "", r.Cidr ?? "", r.Gateway ?? "", r.RangeStart ?? "", r.RangeEnd ?? "", r.HostId)))));
        admin.MapDelete("/pools/{id:long}", (HttpContext c, long id, AdminService a, Store s) =>
        {
            a.DeletePool(ActorOf(c), s.GetPool(id) ?? throw PanelProblem.NotFound("pool"));
            return Results.NoContent();
        });

        admin.MapGet("/users", (Store s) => s.ListUsers().Select(UserDto.From));
        admin.MapPost("/users", (HttpContext c, UserRequest r, AdminService a) =>
            Results.Created("", new IdDto(a.CreateUser(ActorOf(c), r.Username, r.Password, r.Role, r.Email))));
        admin.MapPut("/users/{id:long}", (HttpContext c, long id, UserUpdateRequest r, AdminService a, Store s) =>
        {
            a.UpdateUser(ActorOf(c), s.GetUser(id) ?? throw PanelProblem.NotFound("user"), r.Role, r.Email, r.Disabled, r.Password, r.Unlock);
            return Results.NoContent();
        });
        admin.MapDelete("/users/{id:long}", (HttpContext c, long id, AdminService a, Store s) =>
        {
            a.DeleteUser(ActorOf(c), s.GetUser(id) ?? throw PanelProblem.NotFound("user"));
            return Results.NoContent();
        });

        admin.MapGet("/audit", (int? page, int? pageSize, Store s) =>
        {
            var (p, ps) = (Math.Max(1, page ?? 1), Math.Clamp(pageSize ?? 100, 1, 1000));
            var (items, total) = s.PageAudit(p, ps);
            return new PageDto<AuditEntry>(items, total, p, ps);
        });
        admin.MapGet("/settings", (Store s) => new SettingsRequest(s.TotpMandatory));
        admin.MapPut("/settings", (HttpContext c, SettingsRequest r, Store s) =>
        {
            var u = ActorOf(c);
            s.SetSetting("totp_mandatory", r.TotpMandatory ? "1" : "0");
            s.Audit(u.User.Id, u.User.Username, u.Ip, "settings.update", "settings", $"totp_mandatory={r.TotpMandatory}");
            return Results.NoContent();
        });

        app.MapFallback("/api/{**rest}", () => Results.Problem(statusCode: 404, detail: "no such API endpoint"));
    }

    // ---- helpers shared with the UI

    /// <summary>The caller, or 401. Browser sessions and API tokens both arrive here.</summary>
    internal static User Me(HttpContext c) => CurrentUser.Get(c) ?? throw new PanelProblem(401, "authentication required");

    /// <summary>The caller, if their token may change things (write or admin scope, or a browser session).</summary>
    internal static User Write(HttpContext c)
    {
        var u = Me(c);
        if (CurrentUser.Scope(c) == "read") throw new PanelProblem(403, "this API token has read scope only");
        return u;
    }

    /// <summary>An admin; an API token needs admin scope to change things here (read and write scopes may look).</summary>
    internal static User Admin(HttpContext c)
    {
        var u = Me(c);
        if (!u.IsAdmin) throw new PanelProblem(403, "administrators only");
        if (!HttpMethods.IsGet(c.Request.Method) && CurrentUser.Scope(c) is not ("session" or "admin"))
            throw new PanelProblem(403, "this API token lacks admin scope");
        return u;
    }

    private static int Rank(string scope) => scope switch { "read" => 0, "write" => 1, "admin" => 2, _ => 3 };

    private static Actor ActorOf(HttpContext c) => CurrentUser.Actor(c, Admin(c));

    private static async Task<IResult> Act(HttpContext c, long id, VpsService v, Func<Actor, Vps, Task> op)
    {
        var u = Write(c);
        await op(CurrentUser.Actor(c, u), v.Get(id, u));
        return Results.Ok(VpsDto.From(v.Get(id, u)));
    }

    internal static CreatedToken CreateToken(HttpContext c, User u, string? name, string? scope, Store s)
    {
        Validation.Label("name", name);
        scope ??= "read";
        if (!ApiTokens.Scopes.Contains(scope)) throw PanelProblem.Invalid("scope", "scope must be read, write or admin");
        if (scope == "admin" && !u.IsAdmin) throw PanelProblem.Invalid("scope", "only administrators may create admin tokens");
        if (Rank(scope) > Rank(CurrentUser.Scope(c))) throw new PanelProblem(403, "a token cannot mint a token with more power than itself");
        var (secret, hash) = ApiTokens.NewSecret();
        var id = s.CreateApiToken(u.Id, name!, hash, scope);
        s.Audit(u.Id, u.Username, CurrentUser.Ip(c), "token.create", $"token:{id}:{name}", $"scope={scope}");
        return new CreatedToken(id, name!, scope, ApiTokens.Format(id, secret));
    }

    internal static StatsDto Stats(Vps v, Store s, Sampler sampler, int points)
    {
        var samples = s.Samples(v.Id, points + 1);
        var list = new List<StatsPoint>();
        for (var i = 1; i < samples.Count; i++)
        {
            var (a, b) = (samples[i - 1], samples[i]);
            var dt = (b.At - a.At).TotalSeconds;
            // CPU% of one vCPU: seconds of CPU the domain used per wall second. A restart resets the counter.
            var cpu = b.Running && a.Running && dt > 0 && b.CpuSeconds >= a.CpuSeconds ? Math.Round(100 * (b.CpuSeconds - a.CpuSeconds) / dt, 1) : 0;
            // I/O rates from the byte counters; after a restart (new domain id or a counter that went down) they start from zero.
            double? Rate(Func<IoCounters, long> f)
            {
                if (b.Io is not { } y || dt <= 0) return null;
                long now = f(y);
                long before = a.Io is { } x && x.DomId == y.DomId && f(x) <= now ? f(x) : 0;
                return Math.Round((now - before) / dt, 1);
            }
            list.Add(new StatsPoint(b.At, cpu, b.MemoryMiB, b.Running,
                Rate(x => x.NetRxBytes), Rate(x => x.NetTxBytes), Rate(x => x.DiskReadBytes), Rate(x => x.DiskWriteBytes)));
        }
        return new StatsDto(v.Id, sampler.Interval.TotalSeconds, list, list.Any(p => p.NetRxBytesPerSecond is not null));
    }

    internal static TrafficDto Traffic(Vps v, Store s)
    {
        var t = s.GetTraffic(v.Id, TrafficAccounting.MonthOf(DateTime.UtcNow));
        var quota = (long)(s.GetPlan(v.PlanId)?.TrafficGiB ?? 0) << 30;
        return new TrafficDto(t.Month, t.RxBytes, t.TxBytes, t.RxBytes + t.TxBytes, quota,
            "sent plus received on the server's network interfaces this calendar month (UTC), from the host's counters at each sample");
    }

    private static Plan ToPlan(long id, PlanRequest r) => new(id, r.Name ?? "", r.MemoryMiB, r.Vcpus, r.DiskGiB, r.CpuWeight, r.CpuCap, r.TrafficGiB, r.RateMbps);
    private static OsTemplate ToTemplate(long id, TemplateRequest r) => new(id, r.Name ?? "", r.Type ?? "", r.Kernel ?? "", r.Ramdisk ?? "", r.RootImage ?? "", r.Extra ?? "");

    private static async ValueTask<object?> ProblemFilter(EndpointFilterInvocationContext ctx, EndpointFilterDelegate next)
    {
        try { return await next(ctx); }
        catch (PanelProblem p) { return ToResult(p); }
        catch (XldException e) { return Results.Problem(statusCode: 502, title: "host error", detail: e.Message); }
    }

    internal static IResult ToResult(PanelProblem p) => p.Errors is { } errs
        ? Results.ValidationProblem(errs, detail: p.Message, statusCode: p.Status)
        : Results.Problem(statusCode: p.Status, detail: p.Message);

    private static async Task<IResult> Console(HttpContext c, Vps v, XldClients xld, Store s)
    {
        if (!c.WebSockets.IsWebSocketRequest) return Results.Problem(statusCode: 400, detail: "connect with a WebSocket");
        // Cookies ride along on cross-site WebSocket handshakes: insist the page came from this panel.
        var origin = c.Request.Headers.Origin.ToString();
        if (origin.Length > 0 && origin != $"{c.Request.Scheme}://{c.Request.Host}") return Results.Problem(statusCode: 403, detail: "cross-origin console refused");
        var u = Write(c);
        ClientWebSocket upstream;
        try { upstream = await xld.For(s.GetHost(v.HostId)!).OpenConsoleAsync(v.Name, c.RequestAborted); }
        catch (XldException e) { return Results.Problem(statusCode: 502, detail: e.Message); }
        s.Audit(u.Id, u.Username, CurrentUser.Ip(c), "vps.console", $"vps:{v.Id}:{v.Name}");
        using (upstream)
        using (var down = await c.WebSockets.AcceptWebSocketAsync())
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(c.RequestAborted))
        {
            var a = Pump(upstream, down, cts.Token);
            var b = Pump(down, upstream, cts.Token);
            await Task.WhenAny(a, b);
            cts.Cancel();
            await CloseQuietly(down);
            await CloseQuietly(upstream);
        }
        return Results.Empty;
    }

    private static async Task Pump(WebSocket from, WebSocket to, CancellationToken ct)
    {
        var buf = new byte[16 * 1024];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var r = await from.ReceiveAsync(buf, ct);
                if (r.MessageType == WebSocketMessageType.Close) return;
                await to.SendAsync(buf.AsMemory(0, r.Count), WebSocketMessageType.Binary, r.EndOfMessage, ct);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException) { }
    }

    private static async Task CloseQuietly(WebSocket ws)
    {
        try
        {
            if (ws.State is WebSocketState.Open or WebSocketState.CloseReceived)
                await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", new CancellationTokenSource(2000).Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException) { }
    }
}
