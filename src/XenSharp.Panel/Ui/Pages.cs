using System.Globalization;
using System.Security.Claims;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.DataProtection;
using XenSharp.Panel.Api;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;
using XenSharp.Panel.Services;
using XenSharp.Panel.Xld;
using static XenSharp.Panel.Ui.Html;

namespace XenSharp.Panel.Ui;

/// <summary>The server-rendered UI: pages are GETs, every change is a POST form with an antiforgery token, then a redirect.</summary>
public static class Pages
{
    private static int Int(IFormCollection f, string k, int dflt = 0) => int.TryParse(f[k], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : dflt;
    private static long? LongOrNull(IFormCollection f, string k) => long.TryParse(f[k], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
    private static bool On(IFormCollection f, string k) => f[k] == "1";

    private static void Get(WebApplication app, string pattern, Func<HttpContext, User, Task<IResult>> page, bool admin = false) =>
        app.MapGet(pattern, async (HttpContext ctx) =>
        {
            var u = CurrentUser.Get(ctx);
            if (u is null) return Results.Redirect("/login");
            if (admin && !u.IsAdmin) return NotFound(ctx, u);
            try { return await page(ctx, u); }
            catch (PanelProblem p) when (p.Status == 404) { return NotFound(ctx, u); }
        }).ExcludeFromDescription();

    private static void Post(WebApplication app, string pattern, Func<HttpContext, IFormCollection, User, Task<IResult>> handler, bool admin = false) =>
        app.MapPost(pattern, async (HttpContext ctx) =>
        {
            if (!await ctx.RequestServices.GetRequiredService<IAntiforgery>().IsRequestValidAsync(ctx))
                return Results.Problem(statusCode: 400, detail: "the form expired or did not come from this panel; reload the page and try again");
            var u = CurrentUser.Get(ctx);
            if (u is null) return Results.Redirect("/login");
            if (admin && !u.IsAdmin) return NotFound(ctx, u);
            var form = await ctx.Request.ReadFormAsync();
            try { return await handler(ctx, form, u); }
            catch (PanelProblem p) when (p.Status == 404) { return NotFound(ctx, u); }
            catch (PanelProblem p) { Flash(ctx, p.Message, error: true); }
            catch (XldException e) { Flash(ctx, $"host: {e.Message}", error: true); }
            return Results.Redirect(Back(form));
        }).DisableAntiforgery().ExcludeFromDescription();

    /// <summary>Where a failed form returns to (the page it came from, sent along as a field since we send no Referer).</summary>
    private static string Back(IFormCollection f)
    {
        var b = f["_back"].ToString();
        return b.StartsWith('/') && !b.StartsWith("//") && !b.Contains('\\') ? b : "/";
    }

    private static string BackField(HttpContext ctx) => $"<input type=\"hidden\" name=\"_back\" value=\"{E(ctx.Request.Path + ctx.Request.QueryString)}\">";

    private static IResult NotFound(HttpContext ctx, User? u) =>
        Page(ctx, "Not found", "<p>There is nothing here, or it is not yours.</p><p><a href=\"/\">Back to the dashboard</a></p>", u, 404);

    private static IResult Done(HttpContext ctx, string to, string message)
    {
        Flash(ctx, message);
        return Results.Redirect(to);
    }

    public static void Map(WebApplication app)
    {
        MapAuth(app);
        MapVps(app);
        MapAccount(app);
        MapAdmin(app);
    }

    // ------------------------------------------------------------------ login, setup
    private static async Task SignInAsync(HttpContext ctx, User u, Store store)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, u.Id.ToString(CultureInfo.InvariantCulture)), new(ClaimTypes.Name, u.Username),
            new(ClaimTypes.Role, u.Role), new(PanelClaims.Scope, "session"), new(PanelClaims.Stamp, CurrentUser.StampOf(u)),
        };
        if (store.TotpMandatory && !u.TotpEnabled) claims.Add(new Claim(PanelClaims.Enroll, "1"));
        await ctx.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme,
            new ClaimsPrincipal(new ClaimsIdentity(claims, CookieAuthenticationDefaults.AuthenticationScheme)));
    }

    private static string LoginForm(HttpContext ctx, string? error) =>
        (error is null ? "" : $"<div class=\"flash err\">{E(error)}</div>") +
        Form(ctx, "/login", Input("username", "Username", extra: "autocomplete=\"username\" autofocus") +
                             Input("password", "Password", "password", extra: "autocomplete=\"current-password\"") + Button("Log in", "primary", "login"), "card narrow");

    private static void MapAuth(WebApplication app)
    {
        app.MapGet("/login", (HttpContext ctx, Store s) =>
            !s.AnyAdmin() ? Results.Redirect("/setup") : Page(ctx, "Log in", LoginForm(ctx, null))).ExcludeFromDescription();

        app.MapPost("/login", async (HttpContext ctx, Store s, LoginService login, IAntiforgery af, IDataProtectionProvider dp) =>
        {
            if (!await af.IsRequestValidAsync(ctx)) return Page(ctx, "Log in", LoginForm(ctx, "The form expired, try again."), null, 400);
            var f = await ctx.Request.ReadFormAsync();
            var ip = CurrentUser.Ip(ctx);
            var (outcome, user) = login.CheckPassword(f["username"], f["password"], ip);
            switch (outcome)
            {
                case LoginOutcome.Ok:
                    login.Succeeded(user!, ip);
                    await SignInAsync(ctx, user!, s);
                    return Results.Redirect("/");
                case LoginOutcome.NeedTotp:
                    // The password step is carried to the code step in a short-lived, tamper-proof ticket.
                    var ticket = dp.CreateProtector("login-totp").ToTimeLimitedDataProtector()
                        .Protect(user!.Id.ToString(CultureInfo.InvariantCulture), TimeSpan.FromMinutes(5));
                    return Page(ctx, "Two-factor code", Form(ctx, "/login/totp",
                        $"<input type=\"hidden\" name=\"ticket\" value=\"{E(ticket)}\">" +
                        Input("code", "6-digit code from your authenticator app", extra: "inputmode=\"numeric\" autocomplete=\"one-time-code\" autofocus") +
                        Button("Verify", "primary"), "card narrow"));
                case LoginOutcome.Locked:
                    return Page(ctx, "Log in", LoginForm(ctx, "Too many failed attempts: this account is locked for a while."), null, 429);
                default:
                    return Page(ctx, "Log in", LoginForm(ctx, "Wrong username or password."), null, 401);
            }
        }).RequireRateLimiting("login").DisableAntiforgery().ExcludeFromDescription();

        app.MapPost("/login/totp", async (HttpContext ctx, Store s, LoginService login, IAntiforgery af, IDataProtectionProvider dp) =>
        {
            if (!await af.IsRequestValidAsync(ctx)) return Results.Redirect("/login");
            var f = await ctx.Request.ReadFormAsync();
            long id;
            try { id = long.Parse(dp.CreateProtector("login-totp").ToTimeLimitedDataProtector().Unprotect(f["ticket"].ToString()), CultureInfo.InvariantCulture); }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or FormatException)
            { return Page(ctx, "Log in", LoginForm(ctx, "That step expired; log in again."), null, 400); }
            var user = s.GetUser(id);
            var ip = CurrentUser.Ip(ctx);
            if (user is null || user.LockedUntil > DateTime.UtcNow || !login.CheckTotp(user, f["code"], ip))
                return Page(ctx, "Log in", LoginForm(ctx, "Wrong or expired code; log in again."), null, 401);
            login.Succeeded(user, ip);
            await SignInAsync(ctx, user, s);
            return Results.Redirect("/");
        }).RequireRateLimiting("login").DisableAntiforgery().ExcludeFromDescription();

        app.MapPost("/logout", async (HttpContext ctx, IAntiforgery af) =>
        {
            if (await af.IsRequestValidAsync(ctx)) await ctx.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Results.Redirect("/login");
        }).DisableAntiforgery().ExcludeFromDescription();

        // One-time setup: exists only while there is no admin.
        app.MapGet("/setup", (HttpContext ctx, Store s) => s.AnyAdmin() ? NotFound(ctx, null) : Page(ctx, "First-run setup",
            "<p>Create the first administrator. This page disappears once an admin exists.</p>" +
            Form(ctx, "/setup", Input("username", "Admin username") + Input("password", "Password (10+ characters)", "password") + Button("Create admin", "primary"), "card narrow")))
            .ExcludeFromDescription();
        app.MapPost("/setup", async (HttpContext ctx, Store s, AdminService admin, IAntiforgery af) =>
        {
            if (s.AnyAdmin()) return NotFound(ctx, null);
            if (!await af.IsRequestValidAsync(ctx)) return Results.Redirect("/setup");
            var f = await ctx.Request.ReadFormAsync();
            try
            {
                var id = admin.CreateUser(null, f["username"], f["password"], Roles.Admin, "");
                await SignInAsync(ctx, s.GetUser(id)!, s);
                return Done(ctx, "/", "Administrator created. Next: add a host, a plan and a template.");
            }
            catch (PanelProblem p) { Flash(ctx, p.Message, true); return Results.Redirect("/setup"); }
        }).DisableAntiforgery().ExcludeFromDescription();
    }

    // ------------------------------------------------------------------ dashboard and VPSes
    private static void MapVps(WebApplication app)
    {
        Get(app, "/", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var (mine, total) = s.PageVps(u, "name", false, 1, 8, null);
            var running = mine.Count(v => v.LastSeenRunning == true);
            var body = $"<div class=\"tiles\"><div class=\"tile\"><b>{total}</b><span>{(u.IsAdmin ? "servers in total" : "your servers")}</span></div>" +
                       $"<div class=\"tile\"><b>{running}</b><span>running (of those shown)</span></div>";
            if (u.IsAdmin)
            {
                var c = s.Counts();
                body += $"<div class=\"tile\"><b>{c.Hosts}</b><span>hosts</span></div><div class=\"tile\"><b>{c.Users}</b><span>users</span></div>";
            }
            body += "</div><p><a class=\"btn primary\" href=\"/vps/new\" id=\"new-vps\">New server</a> <a class=\"btn\" href=\"/vps\">All servers</a></p>";
            body += VpsTable(mine, u, null);
            return Task.FromResult(Page(ctx, "Dashboard", body, u));
        });

        Get(app, "/vps", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            return Task.FromResult(Page(ctx, "Servers", VpsListBody(ctx, u, s), u));
        });

        Get(app, "/vps/new", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var plans = s.ListPlans();
            var tpls = s.ListTemplates();
            if (plans.Count == 0 || tpls.Count == 0)
                return Task.FromResult(Page(ctx, "New server", "<p>There are no plans or templates yet" + (u.IsAdmin ? ": <a href=\"/admin/plans\">add a plan</a> and <a href=\"/admin/templates\">a template</a>." : "; ask your provider.") + "</p>", u));
            var inner = BackField(ctx) + Input("name", "Name (lower-case letters, digits, '-')", extra: "pattern=\"[a-z][a-z0-9\\-]{1,31}\"") +
                        Select("planId", "Plan", plans.Select(p => (E(p.Id), $"{p.Name} — {Mib(p.MemoryMiB)}, {p.Vcpus} vCPU, {p.DiskGiB} GiB disk, {p.TrafficGiB} GiB traffic"))) +
                        Select("templateId", "Operating system", tpls.Select(t => (E(t.Id), $"{t.Name} ({t.Type})")));
            if (u.IsAdmin)
            {
                inner += Select("hostId", "Host", new[] { ("", "automatic") }.Concat(s.ListHosts().Where(h => !h.Maintenance).Select(h => (E(h.Id), h.Name))));
                inner += Select("ownerId", "Owner", s.ListUsers().Select(x => (E(x.Id), x.Username)), E(u.Id));
            }
            inner += Check("boot", "Start it now", true) + Button("Create server", "primary", "create");
            return Task.FromResult(Page(ctx, "New server", Form(ctx, "/vps/new", inner, "card"), u));
        });
        Post(app, "/vps/new", async (ctx, f, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var vps = await v.CreateAsync(CurrentUser.Actor(ctx, u), f["name"], LongOrNull(f, "planId") ?? 0, LongOrNull(f, "templateId") ?? 0,
                LongOrNull(f, "hostId"), LongOrNull(f, "ownerId"), On(f, "boot"), ctx.RequestAborted);
            return Done(ctx, $"/vps/{vps.Id}", $"Server {vps.Name} created.");
        });

        Get(app, "/vps/{id:long}", async (ctx, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var vps = v.Get(Id(ctx), u);
            var st = await v.StatusAsync(vps, ctx.RequestAborted);
            return Page(ctx, vps.Name, VpsDetail(ctx, u, vps, st, s), u);
        });
        foreach (var action in new[] { "boot", "shutdown", "reboot", "force-off" })
            Post(app, $"/vps/{{id:long}}/{action}", async (ctx, f, u) =>
            {
                var v = ctx.RequestServices.GetRequiredService<VpsService>();
                var vps = v.Get(Id(ctx), u);
                var a = CurrentUser.Actor(ctx, u);
                switch (action)
                {
                    case "boot": await v.BootAsync(a, vps, ctx.RequestAborted); break;
                    case "shutdown": await v.ShutdownAsync(a, vps, false, ctx.RequestAborted); break;
                    case "reboot": await v.ShutdownAsync(a, vps, true, ctx.RequestAborted); break;
                    default: await v.ForceOffAsync(a, vps, ctx.RequestAborted); break;
                }
                return Done(ctx, $"/vps/{vps.Id}", action switch
                {
                    "boot" => "Starting.", "shutdown" => "Shutdown requested.", "reboot" => "Reboot requested.", _ => "Powered off.",
                });
            });
        Post(app, "/vps/{id:long}/rename", async (ctx, f, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var vps = v.Get(Id(ctx), u);
            await v.RenameAsync(CurrentUser.Actor(ctx, u), vps, f["name"], ctx.RequestAborted);
            return Done(ctx, $"/vps/{vps.Id}", "Renamed.");
        });
        Post(app, "/vps/{id:long}/resize", async (ctx, f, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var vps = v.Get(Id(ctx), u);
            var live = await v.ResizeAsync(CurrentUser.Actor(ctx, u), vps, LongOrNull(f, "planId"), Int(f, "memoryMiB"), Int(f, "vcpus"), ctx.RequestAborted);
            return Done(ctx, $"/vps/{vps.Id}", live ? "Resized: the running server has its new memory now; vCPU changes apply at the next boot." : "Resized: the new size applies at the next boot.");
        });
        Post(app, "/vps/{id:long}/delete", async (ctx, f, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var vps = v.Get(Id(ctx), u);
            if (f["confirm"] != vps.Name) throw new PanelProblem(400, "type the server's name to confirm deleting it");
            await v.DeleteAsync(CurrentUser.Actor(ctx, u), vps, ctx.RequestAborted);
            return Done(ctx, "/vps", $"Server {vps.Name} deleted.");
        });
        Get(app, "/vps/{id:long}/rebuild", (ctx, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var vps = v.Get(Id(ctx), u);
            var body = $"<div class=\"warn\"><b>Rebuilding erases everything on {E(vps.Name)}</b> and starts it fresh from the chosen operating system. It is powered off first.</div>" +
                       Form(ctx, $"/vps/{vps.Id}/rebuild", BackField(ctx) +
                           Select("templateId", "Operating system", s.ListTemplates().Select(t => (E(t.Id), $"{t.Name} ({t.Type})")), E(vps.TemplateId)) +
                           Input("confirm", $"Type {vps.Name} to confirm", extra: "autocomplete=\"off\"") + Button("Rebuild now", "danger", "rebuild"), "card") +
                       $"<p><a href=\"/vps/{vps.Id}\">Cancel</a></p>";
            return Task.FromResult(Page(ctx, $"Rebuild {vps.Name}", body, u));
        });
        Post(app, "/vps/{id:long}/rebuild", async (ctx, f, u) =>
        {
            var v = ctx.RequestServices.GetRequiredService<VpsService>();
            var vps = v.Get(Id(ctx), u);
            await v.RebuildAsync(CurrentUser.Actor(ctx, u), vps, LongOrNull(f, "templateId") ?? 0, f["confirm"], ctx.RequestAborted);
            return Done(ctx, $"/vps/{vps.Id}", "Rebuilt and started.");
        });
    }

    private static long Id(HttpContext ctx) => long.Parse((string)ctx.Request.RouteValues["id"]!, CultureInfo.InvariantCulture);

    internal static string VpsListBody(HttpContext ctx, User u, Store s)
    {
        var q = ctx.Request.Query;
        var sort = Store.VpsSortColumns.ContainsKey(q["sort"].ToString()) ? q["sort"].ToString() : "name";
        var desc = q["desc"] == "1";
        var page = Math.Max(1, int.TryParse(q["page"], out var p) ? p : 1);
        var pageSize = Math.Clamp(int.TryParse(q["size"], out var sz) ? sz : 50, 10, 500);
        var filter = q["q"].ToString();
        var (items, total) = s.PageVps(u, sort, desc, page, pageSize, filter);
        var pages = (int)Math.Max(1, (total + pageSize - 1) / pageSize);
        string Link(int pg, string srt, bool d) => $"/vps?sort={srt}&desc={(d ? 1 : 0)}&page={pg}&size={pageSize}{(filter.Length > 0 ? "&q=" + Uri.EscapeDataString(filter) : "")}";
        var sb = new System.Text.StringBuilder();
        sb.Append("<form method=\"get\" action=\"/vps\" class=\"search\"><input type=\"search\" name=\"q\" placeholder=\"Filter by name\" value=\"").Append(E(filter))
          .Append("\"><input type=\"hidden\" name=\"sort\" value=\"").Append(E(sort)).Append("\"><button class=\"btn\">Filter</button> <a class=\"btn primary\" href=\"/vps/new\">New server</a></form>");
        sb.Append(VpsTable(items, u, (col, label) =>
            $"<a href=\"{E(Link(1, col, col == sort && !desc))}\">{E(label)}{(col == sort ? (desc ? " ▼" : " ▲") : "")}</a>"));
        sb.Append("<nav class=\"pager\">");
        if (page > 1) sb.Append("<a href=\"").Append(E(Link(page - 1, sort, desc))).Append("\">‹ Previous</a>");
        sb.Append(CultureInfo.InvariantCulture, $"<span>Page {page} of {pages} · {total} servers</span>");
        if (page < pages) sb.Append("<a href=\"").Append(E(Link(page + 1, sort, desc))).Append("\">Next ›</a>");
        sb.Append("</nav>");
        return sb.ToString();
    }

    private static string VpsTable(List<Vps> items, User u, Func<string, string, string>? head)
    {
        if (items.Count == 0) return "<p class=\"empty\">No servers yet.</p>";
        string H(string col, string label) => head is null ? E(label) : head(col, label);
        var heads = new List<string> { H("name", "Name"), "Status" };
        if (u.IsAdmin) { heads.Add(H("owner", "Owner")); heads.Add(H("host", "Host")); }
        heads.AddRange([H("plan", "Plan"), H("memory", "Memory"), "vCPUs", "IP", H("created", "Created")]);
        return Table(heads, items.Select(v =>
        {
            var row = new List<string> { $"<a href=\"/vps/{v.Id}\">{E(v.Name)}</a>", Badge(v.LastSeenRunning switch { true => "running", false => "stopped", _ => "unknown" }) };
            if (u.IsAdmin) { row.Add(E(v.OwnerName)); row.Add(E(v.HostName)); }
            row.AddRange([E(v.PlanName), Mib(v.MemoryMiB), E(v.Vcpus), E(v.Ip ?? "—"), Ago(v.CreatedAt)]);
            return row;
        }), "list");
    }

    private static string VpsDetail(HttpContext ctx, User u, Vps v, VpsStatus st, Store s)
    {
        var plan = s.GetPlan(v.PlanId)!;
        var traffic = ApiEndpoints.Traffic(v, s);
        var sb = new System.Text.StringBuilder();
        sb.Append("<div class=\"status-line\">").Append(Badge(st.State)).Append(st.Error is null ? "" : $" <span class=\"muted\">{E(st.Error)}</span>");
        if (st.Running) sb.Append(CultureInfo.InvariantCulture, $" <span class=\"muted\">up {TimeSpan.FromSeconds((int)st.UptimeSeconds)}, {st.CpuSeconds:0.0} CPU-seconds</span>");
        sb.Append("</div><div class=\"actions\">");
        if (!st.Running) sb.Append(Form(ctx, $"/vps/{v.Id}/boot", BackField(ctx) + Button("Boot", "primary", "act-boot"), "inline"));
        else
        {
            sb.Append(Form(ctx, $"/vps/{v.Id}/shutdown", BackField(ctx) + Button("Shut down", "", "act-shutdown"), "inline"));
            sb.Append(Form(ctx, $"/vps/{v.Id}/reboot", BackField(ctx) + Button("Reboot", "", "act-reboot"), "inline"));
            sb.Append(Form(ctx, $"/vps/{v.Id}/force-off", BackField(ctx) + Button("Force off", "danger", "act-force-off"), "inline", "Cut the power to this server? Unsaved data is lost."));
        }
        sb.Append($"<a class=\"btn\" href=\"/vps/{v.Id}/rebuild\" id=\"act-rebuild\">Rebuild…</a></div>");

        sb.Append("<div class=\"grid\"><section class=\"card\"><h2>Details</h2><dl>");
        void Row(string k, string val) => sb.Append("<dt>").Append(E(k)).Append("</dt><dd>").Append(val).Append("</dd>");
        Row("Plan", E(plan.Name)); Row("Memory", Mib(v.MemoryMiB)); Row("vCPUs", E(v.Vcpus)); Row("Disk", $"{plan.DiskGiB} GiB");
        Row("OS template", E(v.TemplateName)); Row("IP address", E(v.Ip ?? "none allocated"));
        if (u.IsAdmin) { Row("Host", E(v.HostName)); Row("Owner", E(v.OwnerName)); }
        Row("Created", Ago(v.CreatedAt));
        sb.Append("</dl></section>");

        var quota = traffic.QuotaBytes;
        var pct = quota > 0 ? Math.Min(100, 100.0 * traffic.UsedBytes / quota) : 0;
        sb.Append("<section class=\"card\"><h2>Traffic this month</h2>")
          .Append(CultureInfo.InvariantCulture, $"<p><b id=\"traffic-used\">{traffic.UsedBytes / (double)(1L << 30):0.00} GiB</b> of {(quota > 0 ? $"{quota >> 30} GiB" : "unlimited")} ({E(traffic.Month)})</p>")
          .Append(CultureInfo.InvariantCulture, $"<div class=\"meter\"><div style=\"width:{pct:0.#}%\"></div></div><p class=\"muted small\">{E(traffic.Note)}</p></section></div>");

        sb.Append("<section class=\"card\"><h2>Graphs</h2><div class=\"graphs\" id=\"graphs\" data-stats=\"/api/v1/vps/").Append(v.Id).Append("/stats\">")
          .Append("<figure><figcaption>CPU % <span class=\"now\" id=\"cpu-now\"></span></figcaption><svg id=\"cpu-graph\" class=\"graph\" viewBox=\"0 0 600 150\" preserveAspectRatio=\"none\" data-points=\"0\"></svg></figure>")
          .Append("<figure><figcaption>Memory MiB <span class=\"now\" id=\"mem-now\"></span></figcaption><svg id=\"mem-graph\" class=\"graph\" viewBox=\"0 0 600 150\" preserveAspectRatio=\"none\" data-points=\"0\"></svg></figure>")
          .Append("<figure><figcaption>Network KiB/s <span class=\"now\" id=\"net-now\"></span></figcaption><svg id=\"net-graph\" class=\"graph\" viewBox=\"0 0 600 150\" preserveAspectRatio=\"none\" data-points=\"0\"></svg></figure>")
          .Append("<figure><figcaption>Disk KiB/s <span class=\"now\" id=\"disk-now\"></span></figcaption><svg id=\"disk-graph\" class=\"graph\" viewBox=\"0 0 600 150\" preserveAspectRatio=\"none\" data-points=\"0\"></svg></figure>")
          .Append("</div><p class=\"muted small\" id=\"io-note\">Network: received + sent; disk: read + written, per second between samples.</p></section>");

        sb.Append("<section class=\"card\"><h2>Console</h2>");
        sb.Append(st.Running
            ? $"<div id=\"console\" class=\"console\" data-ws=\"/api/v1/vps/{v.Id}/console\"></div><p class=\"muted small\">Click the console and type; output streams live from the host.</p>"
            : "<p class=\"muted\">The server is off. Boot it to use the console.</p>");
        sb.Append("</section>");

        sb.Append("<div class=\"grid\"><section class=\"card\"><h2>Rename</h2>")
          .Append(Form(ctx, $"/vps/{v.Id}/rename", BackField(ctx) + Input("name", "New name", value: v.Name) + Button("Rename", "", "rename")))
          .Append("</section><section class=\"card\"><h2>Resize</h2>");
        var resize = BackField(ctx) + Input("memoryMiB", $"Memory MiB (16–{plan.MemoryMiB})", "number", E(v.MemoryMiB), extra: $"min=\"16\" max=\"{plan.MemoryMiB}\"") +
                     Input("vcpus", $"vCPUs (1–{plan.Vcpus})", "number", E(v.Vcpus), extra: $"min=\"1\" max=\"{plan.Vcpus}\"");
        if (u.IsAdmin) resize += Select("planId", "Plan", s.ListPlans().Select(p => (E(p.Id), p.Name)), E(v.PlanId));
        sb.Append(Form(ctx, $"/vps/{v.Id}/resize", resize + Button("Resize", "", "resize"))).Append("<p class=\"muted small\">Memory changes reach a running server at once; vCPU changes take effect at the next boot.</p></section></div>");
        sb.Append("<section class=\"card danger-zone\"><h2>Delete</h2>")
          .Append(Form(ctx, $"/vps/{v.Id}/delete", BackField(ctx) + Input("confirm", $"Type {v.Name} to delete it for good", extra: "autocomplete=\"off\"") + Button("Delete server", "danger")))
          .Append("</section>");
        return sb.ToString();
    }

    // ------------------------------------------------------------------ account: password, TOTP, API tokens
    private static void MapAccount(WebApplication app)
    {
        Get(app, "/account", (ctx, u) => Task.FromResult(Page(ctx, "Your account", AccountBody(ctx, u, null), u)));
        Post(app, "/account/password", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            if (!Passwords.Verify(f["current"].ToString(), u.PasswordHash)) throw new PanelProblem(400, "the current password is wrong");
            if (Passwords.Check(f["password"].ToString()) is { } err) throw new PanelProblem(400, err);
            s.SetPassword(u.Id, Passwords.Hash(f["password"].ToString()));
            s.Audit(u.Id, u.Username, CurrentUser.Ip(ctx), "user.password", $"user:{u.Id}:{u.Username}");
            return Task.FromResult(Done(ctx, "/login", "Password changed; log in again."));
        });
        Post(app, "/account/tokens", (ctx, f, u) =>
        {
            var t = ApiEndpoints.CreateToken(ctx, u, f["name"], f["scope"], ctx.RequestServices.GetRequiredService<Store>());
            // Shown once, on this response only: the panel keeps just a hash.
            return Task.FromResult(Page(ctx, "Your account", AccountBody(ctx, u, t), u));
        });
        Post(app, "/account/tokens/{id:long}/delete", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            if (!s.DeleteApiToken(Id(ctx), u.Id)) throw PanelProblem.NotFound("token");
            s.Audit(u.Id, u.Username, CurrentUser.Ip(ctx), "token.delete", $"token:{Id(ctx)}");
            return Task.FromResult(Done(ctx, "/account", "Token revoked."));
        });
        Get(app, "/account/totp", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            if (u.TotpEnabled) return Task.FromResult(Results.Redirect("/account"));
            var secret = u.TotpSecret ?? Totp.NewSecret();
            if (u.TotpSecret is null) s.SetTotp(u.Id, secret, false);
            var body = (CurrentUser.EnrollPending(ctx) ? "<div class=\"warn\">Your administrator requires a second factor. Set it up to continue.</div>" : "") +
                       "<div class=\"card\"><p>Add this key to your authenticator app (time-based, 6 digits, 30 seconds):</p>" +
                       $"<p class=\"secret\" id=\"totp-secret\">{E(secret)}</p><p class=\"muted small\">{E(Totp.OtpAuthUri("XenSharp Panel", u.Username, secret))}</p>" +
                       Form(ctx, "/account/totp", BackField(ctx) + Input("code", "Code from the app", extra: "inputmode=\"numeric\" autocomplete=\"one-time-code\"") + Button("Turn on", "primary")) + "</div>";
            return Task.FromResult(Page(ctx, "Two-factor authentication", body, u));
        });
        Post(app, "/account/totp", async (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            if (u.TotpSecret is null || !Totp.Verify(u.TotpSecret, f["code"], DateTimeOffset.UtcNow)) throw new PanelProblem(400, "that code is not right; check the clock on your phone");
            s.SetTotp(u.Id, u.TotpSecret, true);
            s.Audit(u.Id, u.Username, CurrentUser.Ip(ctx), "user.totp-on", $"user:{u.Id}:{u.Username}");
            await SignInAsync(ctx, s.GetUser(u.Id)!, s); // drops the enrolment gate
            return Done(ctx, "/account", "Two-factor authentication is on.");
        });
        Post(app, "/account/totp/off", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            if (s.TotpMandatory) throw new PanelProblem(400, "your administrator requires two-factor authentication");
            if (!Passwords.Verify(f["current"].ToString(), u.PasswordHash)) throw new PanelProblem(400, "the password is wrong");
            s.SetTotp(u.Id, null, false);
            s.Audit(u.Id, u.Username, CurrentUser.Ip(ctx), "user.totp-off", $"user:{u.Id}:{u.Username}");
            return Task.FromResult(Done(ctx, "/account", "Two-factor authentication is off."));
        });
    }

    private static string AccountBody(HttpContext ctx, User u, CreatedToken? fresh)
    {
        var s = ctx.RequestServices.GetRequiredService<Store>();
        var sb = new System.Text.StringBuilder("<div class=\"grid\"><section class=\"card\"><h2>Password</h2>");
        sb.Append(Form(ctx, "/account/password", BackField(ctx) + Input("current", "Current password", "password") + Input("password", "New password (10+ characters)", "password") + Button("Change password")));
        sb.Append("</section><section class=\"card\"><h2>Two-factor authentication</h2>");
        sb.Append(u.TotpEnabled
            ? "<p>On.</p>" + Form(ctx, "/account/totp/off", BackField(ctx) + Input("current", "Password", "password") + Button("Turn off", "danger"))
            : "<p>Off.</p><p><a class=\"btn primary\" href=\"/account/totp\">Set up</a></p>");
        sb.Append("</section></div><section class=\"card\"><h2>API tokens</h2>");
        if (fresh is not null)
            sb.Append($"<div class=\"flash ok\">New token <b>{E(fresh.Name)}</b> ({E(fresh.Scope)}). Copy it now, it is not shown again:<br><code id=\"new-token\">{E(fresh.Token)}</code></div>");
        var tokens = s.ListApiTokens(u.Id);
        sb.Append(tokens.Count == 0 ? "<p class=\"empty\">No tokens.</p>" : Table(["Name", "Scope", "Created", "Last used", ""], tokens.Select(t => new[]
        {
            E(t.Name), E(t.Scope), Ago(t.CreatedAt), t.LastUsedAt is { } l ? Ago(l) : "never",
            Form(ctx, $"/account/tokens/{t.Id}/delete", BackField(ctx) + Button("Revoke", "link"), "inline", $"Revoke token {t.Name}?"),
        })));
        var scopes = u.IsAdmin ? ApiTokens.Scopes : ["read", "write"];
        sb.Append(Form(ctx, "/account/tokens", BackField(ctx) + Input("name", "Token name") + Select("scope", "Scope", scopes.Select(x => (x, x))) + Button("Create token"), "row"));
        sb.Append("<p class=\"muted small\">Use as <code>Authorization: Bearer …</code> against <code>/api/v1</code>; the API is described at <a href=\"/openapi/v1.json\">/openapi/v1.json</a>.</p></section>");
        return sb.ToString();
    }

    // ------------------------------------------------------------------ admin
    private static void MapAdmin(WebApplication app)
    {
        Get(app, "/admin/hosts", async (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var a = ctx.RequestServices.GetRequiredService<AdminService>();
            var hosts = s.ListHosts();
            var health = await Task.WhenAll(hosts.Select(h => a.HealthAsync(h, ctx.RequestAborted)));
            var rows = hosts.Zip(health, (h, hh) => new[]
            {
                E(h.Name), E(h.Url),
                hh.Reachable ? Badge("up") + $" <small>{E(hh.Info?.XenVersion)} {E(hh.Info?.Accelerator)}</small>" : Badge("down") + $" <small>{E(hh.Error)}</small>",
                hh.Info is { } i ? $"{i.NrCpus} CPUs, {Mib((long)i.FreeMemoryMiB)} free of {Mib((long)i.TotalMemoryMiB)}" : "—",
                Mib(hh.CommittedMiB) + " committed" + (hh.Reachable ? $"<br><small>{hh.Domains} domains" +
                    (hh.Unmanaged is { Count: > 0 } un ? $", not in the panel: {E(string.Join(", ", un))}" : "") + "</small>" : ""),
                Form(ctx, $"/admin/hosts/{h.Id}/maintenance", BackField(ctx) + $"<input type=\"hidden\" name=\"on\" value=\"{(h.Maintenance ? 0 : 1)}\">" +
                    Button(h.Maintenance ? "In maintenance: reopen" : "Open: set maintenance", "link"), "inline"),
                Form(ctx, $"/admin/hosts/{h.Id}/delete", BackField(ctx) + Button("Delete", "link"), "inline", $"Delete host {h.Name}?"),
            });
            var body = (hosts.Count == 0 ? "<p class=\"empty\">No hosts yet.</p>" : Table(["Name", "xld URL", "Health", "Capacity", "Committed", "Maintenance", ""], rows)) +
                       "<section class=\"card\"><h2>Add a host</h2><p class=\"muted small\">On the host: start xld with <code>--http ADDR:PORT</code> and create a token with <code>xl token-create panel</code>.</p>" +
                       Form(ctx, "/admin/hosts", BackField(ctx) + Input("name", "Name") + Input("url", "xld URL", "url", extra: "placeholder=\"https://host1:8443\"") +
                           Input("token", "Token", "password") + Check("maintenance", "Maintenance mode (no new servers)", false) + Button("Add host", "primary"), "row") + "</section>";
            return Page(ctx, "Hosts", body, u);
        }, admin: true);
        Post(app, "/admin/hosts", (ctx, f, u) =>
        {
            ctx.RequestServices.GetRequiredService<AdminService>().CreateHost(CurrentUser.Actor(ctx, u), f["name"], f["url"], f["token"], On(f, "maintenance"));
            return Task.FromResult(Done(ctx, "/admin/hosts", "Host added."));
        }, admin: true);
        Post(app, "/admin/hosts/{id:long}/maintenance", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var h = s.GetHost(Id(ctx)) ?? throw PanelProblem.NotFound("host");
            ctx.RequestServices.GetRequiredService<AdminService>().UpdateHost(CurrentUser.Actor(ctx, u), h, h.Name, h.Url, null, On(f, "on"));
            return Task.FromResult(Done(ctx, "/admin/hosts", On(f, "on") ? $"{h.Name} is in maintenance: no new servers go there." : $"{h.Name} accepts new servers."));
        }, admin: true);
        Post(app, "/admin/hosts/{id:long}/delete", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            ctx.RequestServices.GetRequiredService<AdminService>().DeleteHost(CurrentUser.Actor(ctx, u), s.GetHost(Id(ctx)) ?? throw PanelProblem.NotFound("host"));
            return Task.FromResult(Done(ctx, "/admin/hosts", "Host deleted."));
        }, admin: true);

        Get(app, "/admin/plans", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var body = Table(["Name", "Memory", "vCPUs", "Disk", "CPU weight", "CPU cap", "Traffic", "Rate", ""], s.ListPlans().Select(p => new[]
                       {
                           E(p.Name), Mib(p.MemoryMiB), E(p.Vcpus), $"{p.DiskGiB} GiB", E(p.CpuWeight), p.CpuCap == 0 ? "none" : $"{p.CpuCap}%",
                           p.TrafficGiB == 0 ? "unlimited" : $"{p.TrafficGiB} GiB", p.RateMbps == 0 ? "unlimited" : $"{p.RateMbps} Mb/s",
                           Form(ctx, $"/admin/plans/{p.Id}/delete", BackField(ctx) + Button("Delete", "link"), "inline", $"Delete plan {p.Name}?"),
                       })) +
                       "<section class=\"card\"><h2>Add a plan</h2>" + Form(ctx, "/admin/plans", BackField(ctx) + Input("name", "Name") +
                           Input("memoryMiB", "Memory MiB", "number", "512") + Input("vcpus", "vCPUs", "number", "1") + Input("diskGiB", "Disk GiB", "number", "10") +
                           Input("cpuWeight", "CPU weight", "number", "256") + Input("cpuCap", "CPU cap % (0 = none)", "number", "0") +
                           Input("trafficGiB", "Traffic GiB/month (0 = unlimited)", "number", "1000") + Input("rateMbps", "Rate Mb/s (0 = unlimited)", "number", "100") +
                           Button("Add plan", "primary"), "row") + "</section>";
            return Task.FromResult(Page(ctx, "Plans", body, u));
        }, admin: true);
        Post(app, "/admin/plans", (ctx, f, u) =>
        {
            ctx.RequestServices.GetRequiredService<AdminService>().SavePlan(CurrentUser.Actor(ctx, u), new Plan(0, f["name"].ToString(), Int(f, "memoryMiB"), Int(f, "vcpus"),
                Int(f, "diskGiB"), Int(f, "cpuWeight", 256), Int(f, "cpuCap"), Int(f, "trafficGiB"), Int(f, "rateMbps")));
            return Task.FromResult(Done(ctx, "/admin/plans", "Plan added."));
        }, admin: true);
        Post(app, "/admin/plans/{id:long}/delete", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            ctx.RequestServices.GetRequiredService<AdminService>().DeletePlan(CurrentUser.Actor(ctx, u), s.GetPlan(Id(ctx)) ?? throw PanelProblem.NotFound("plan"));
            return Task.FromResult(Done(ctx, "/admin/plans", "Plan deleted."));
        }, admin: true);

        Get(app, "/admin/templates", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var body = Table(["Name", "Type", "Kernel", "Ramdisk", "Root image", "Extra", ""], s.ListTemplates().Select(t => new[]
                       {
                           E(t.Name), E(t.Type), $"<code>{E(t.Kernel)}</code>", E(t.Ramdisk), E(t.RootImage), E(t.Extra),
                           Form(ctx, $"/admin/templates/{t.Id}/delete", BackField(ctx) + Button("Delete", "link"), "inline", $"Delete template {t.Name}?"),
                       })) +
                       "<section class=\"card\"><h2>Add a template</h2>" + Form(ctx, "/admin/templates", BackField(ctx) + Input("name", "Name") +
                           Select("type", "Type", [("hvm", "hvm"), ("pv", "pv")]) + Input("kernel", "Kernel path on the host") +
                           Input("ramdisk", "Ramdisk path", required: false) + Input("rootImage", "Root image path", required: false) +
                           Input("extra", "Extra kernel command line", required: false) + Button("Add template", "primary"), "row") + "</section>";
            return Task.FromResult(Page(ctx, "OS templates", body, u));
        }, admin: true);
        Post(app, "/admin/templates", (ctx, f, u) =>
        {
            ctx.RequestServices.GetRequiredService<AdminService>().SaveTemplate(CurrentUser.Actor(ctx, u), new OsTemplate(0, f["name"].ToString(), f["type"].ToString(),
                f["kernel"].ToString(), f["ramdisk"].ToString(), f["rootImage"].ToString(), f["extra"].ToString()));
            return Task.FromResult(Done(ctx, "/admin/templates", "Template added."));
        }, admin: true);
        Post(app, "/admin/templates/{id:long}/delete", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            ctx.RequestServices.GetRequiredService<AdminService>().DeleteTemplate(CurrentUser.Actor(ctx, u), s.GetTemplate(Id(ctx)) ?? throw PanelProblem.NotFound("template"));
            return Task.FromResult(Done(ctx, "/admin/templates", "Template deleted."));
        }, admin: true);

        Get(app, "/admin/pools", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var hosts = s.ListHosts();
            var body = Table(["Name", "CIDR", "Gateway", "Range", "Host", "Used", ""], s.ListPools().Select(p => new[]
                       {
                           E(p.Name), E(p.Cidr), E(p.Gateway), $"{E(p.RangeStart)} – {E(p.RangeEnd)}", E(hosts.FirstOrDefault(h => h.Id == p.HostId)?.Name ?? "any"),
                           E(s.PoolUsed(p.Id)), Form(ctx, $"/admin/pools/{p.Id}/delete", BackField(ctx) + Button("Delete", "link"), "inline", $"Delete pool {p.Name}?"),
                       })) +
                       "<section class=\"card\"><h2>Add an IP pool</h2>" + Form(ctx, "/admin/pools", BackField(ctx) + Input("name", "Name") +
                           Input("cidr", "CIDR", extra: "placeholder=\"192.0.2.0/24\"") + Input("gateway", "Gateway", required: false) +
                           Input("rangeStart", "First address") + Input("rangeEnd", "Last address") +
                           Select("hostId", "Host", new[] { ("", "any host") }.Concat(hosts.Select(h => (E(h.Id), h.Name)))) + Button("Add pool", "primary"), "row") + "</section>";
            return Task.FromResult(Page(ctx, "IP pools", body, u));
        }, admin: true);
        Post(app, "/admin/pools", (ctx, f, u) =>
        {
            ctx.RequestServices.GetRequiredService<AdminService>().CreatePool(CurrentUser.Actor(ctx, u), new IpPool(0, f["name"].ToString(), f["cidr"].ToString(),
                f["gateway"].ToString(), f["rangeStart"].ToString(), f["rangeEnd"].ToString(), LongOrNull(f, "hostId")));
            return Task.FromResult(Done(ctx, "/admin/pools", "Pool added."));
        }, admin: true);
        Post(app, "/admin/pools/{id:long}/delete", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            ctx.RequestServices.GetRequiredService<AdminService>().DeletePool(CurrentUser.Actor(ctx, u), s.GetPool(Id(ctx)) ?? throw PanelProblem.NotFound("pool"));
            return Task.FromResult(Done(ctx, "/admin/pools", "Pool deleted."));
        }, admin: true);

        Get(app, "/admin/users", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var body = Table(["User", "Role", "Email", "2FA", "State", "Created", "Change", ""], s.ListUsers().Select(x => new[]
                       {
                           E(x.Username), E(x.Role), E(x.Email), x.TotpEnabled ? "on" : "off",
                           x.Disabled ? Badge("disabled") : x.LockedUntil > DateTime.UtcNow ? Badge("locked") : Badge("active"), Ago(x.CreatedAt),
                           Form(ctx, $"/admin/users/{x.Id}", BackField(ctx) + Select("role", "", [("client", "client"), ("admin", "admin")], x.Role) +
                               $"<input type=\"hidden\" name=\"email\" value=\"{E(x.Email)}\">" + Check("disabled", "disabled", x.Disabled) + Check("unlock", "unlock", false) +
                               "<input type=\"password\" name=\"password\" placeholder=\"new password\" autocomplete=\"new-password\">" + Button("Save", "link"), "inline"),
                           Form(ctx, $"/admin/users/{x.Id}/delete", BackField(ctx) + Button("Delete", "link"), "inline", $"Delete user {x.Username}?"),
                       })) +
                       "<section class=\"card\"><h2>Add a user</h2>" + Form(ctx, "/admin/users", BackField(ctx) + Input("username", "Username") +
                           Input("password", "Password (10+ characters)", "password") + Input("email", "Email", "email", required: false) +
                           Select("role", "Role", [("client", "client"), ("admin", "admin")]) + Button("Add user", "primary"), "row") + "</section>";
            return Task.FromResult(Page(ctx, "Users", body, u));
        }, admin: true);
        Post(app, "/admin/users", (ctx, f, u) =>
        {
            ctx.RequestServices.GetRequiredService<AdminService>().CreateUser(CurrentUser.Actor(ctx, u), f["username"], f["password"], f["role"], f["email"]);
            return Task.FromResult(Done(ctx, "/admin/users", "User added."));
        }, admin: true);
        Post(app, "/admin/users/{id:long}", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            ctx.RequestServices.GetRequiredService<AdminService>().UpdateUser(CurrentUser.Actor(ctx, u), s.GetUser(Id(ctx)) ?? throw PanelProblem.NotFound("user"),
                f["role"], f["email"], On(f, "disabled"), f["password"], On(f, "unlock"));
            return Task.FromResult(Done(ctx, "/admin/users", "User saved."));
        }, admin: true);
        Post(app, "/admin/users/{id:long}/delete", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            ctx.RequestServices.GetRequiredService<AdminService>().DeleteUser(CurrentUser.Actor(ctx, u), s.GetUser(Id(ctx)) ?? throw PanelProblem.NotFound("user"));
            return Task.FromResult(Done(ctx, "/admin/users", "User deleted."));
        }, admin: true);

        Get(app, "/admin/audit", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var page = Math.Max(1, int.TryParse(ctx.Request.Query["page"], out var p) ? p : 1);
            var (items, total) = s.PageAudit(page, 100);
            var body = "<p class=\"muted\">Append-only: entries are never changed or removed.</p>" +
                       Table(["When (UTC)", "Who", "From", "Action", "Target", "Detail"], items.Select(a => new[]
                       {
                           a.At.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture), E(a.Username), E(a.Ip), $"<code>{E(a.Action)}</code>", E(a.Target), E(a.Detail),
                       }), "list") +
                       $"<nav class=\"pager\">{(page > 1 ? $"<a href=\"/admin/audit?page={page - 1}\">‹ Newer</a>" : "")}<span>{total} entries</span>{(page * 100 < total ? $"<a href=\"/admin/audit?page={page + 1}\">Older ›</a>" : "")}</nav>";
            return Task.FromResult(Page(ctx, "Audit log", body, u));
        }, admin: true);

        Get(app, "/admin/settings", (ctx, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            var body = Form(ctx, "/admin/settings", BackField(ctx) + Check("totpMandatory", "Require two-factor authentication (TOTP) for every user", s.TotpMandatory) +
                                                    Button("Save", "primary"), "card");
            return Task.FromResult(Page(ctx, "Settings", body, u));
        }, admin: true);
        Post(app, "/admin/settings", (ctx, f, u) =>
        {
            var s = ctx.RequestServices.GetRequiredService<Store>();
            s.SetSetting("totp_mandatory", On(f, "totpMandatory") ? "1" : "0");
            s.Audit(u.Id, u.Username, CurrentUser.Ip(ctx), "settings.update", "settings", $"totp_mandatory={On(f, "totpMandatory")}");
            return Task.FromResult(Done(ctx, "/admin/settings", "Settings saved."));
        }, admin: true);
    }
}
