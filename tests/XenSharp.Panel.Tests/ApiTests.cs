using System.Data.Common;
using System.Net;
using System.Text.Json;

namespace XenSharp.Panel.Tests;

public sealed class SqliteApiTests(ApiFixture f) : ApiTests(f), IClassFixture<ApiFixture>;

/// <summary>Skipped, with the reason, where no PostgreSQL server can be started (see <see cref="PgServer"/>).</summary>
public sealed class PostgresApiTests(PostgresApiFixture f) : ApiTests(f), IClassFixture<PostgresApiFixture>;

/// <summary>The authorization matrix and input validation of the REST API, against the real panel on Kestrel, on each database.</summary>
public abstract class ApiTests(ApiFixture f)
{
    private static async Task<JsonElement> Problem(HttpResponseMessage r, HttpStatusCode expected)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(expected == r.StatusCode, $"expected {(int)expected}, got {(int)r.StatusCode}: {text}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement;
    }

    [SkippableTheory]
    [InlineData("GET", "/api/v1/vps")]
    [InlineData("GET", "/api/v1/me")]
    [InlineData("POST", "/api/v1/vps")]
    [InlineData("GET", "/api/v1/vps/1")]
    [InlineData("POST", "/api/v1/vps/1/reboot")]
    [InlineData("GET", "/api/v1/admin/hosts")]
    [InlineData("GET", "/api/v1/admin/audit")]
    [InlineData("POST", "/api/v1/admin/plans")]
    public async Task Anonymous_gets_401_with_a_problem_body(string method, string path)
    {
        var r = await f.Send(null, new HttpMethod(method), path, method == "POST" ? new { } : null);
        await Problem(r, HttpStatusCode.Unauthorized);
        var bad = await f.Send("xsp_1_deadbeef", new HttpMethod(method), path, method == "POST" ? new { } : null);
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
    }

    [SkippableFact]
    public async Task A_client_sees_only_its_own_VPS_and_gets_404_for_anothers()
    {
        var id = await f.CreateVps(f.AliceToken, "alice-web");
        Assert.True(f.Xld.Has("alice-web"));

        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AdminToken, HttpMethod.Get, $"/api/v1/vps/{id}")).StatusCode);

        // Bob: every route on Alice's VPS answers 404, exactly as for an id that does not exist.
        foreach (var (m, path) in new[]
                 {
                     ("GET", ""), ("DELETE", ""), ("POST", "/boot"), ("POST", "/shutdown"), ("POST", "/reboot"), ("POST", "/force-off"),
                     ("POST", "/rename"), ("POST", "/resize"), ("POST", "/rebuild"), ("GET", "/stats"), ("GET", "/traffic"), ("GET", "/config"),
                 })
        {
            object? body = m == "POST" ? path switch
            {
                "/rename" => new { name = "stolen" }, "/rebuild" => new { templateId = f.TemplateId, confirm = "alice-web" }, "/resize" => new { memoryMiB = 32 }, _ => new { },
            } : null;
            var r = await f.Send(f.BobToken, new HttpMethod(m), $"/api/v1/vps/{id}{path}", body);
            var p = await Problem(r, HttpStatusCode.NotFound);
            Assert.Equal("VPS not found", p.GetProperty("detail").GetString());
            var none = await f.Send(f.BobToken, new HttpMethod(m), $"/api/v1/vps/999999{path}", body);
            Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        }
        Assert.True(f.Xld.Has("alice-web"), "Bob's requests must not reach the host");
        Assert.Equal("alice-web", f.Panel.Store.AllVps().Single(v => v.Id == id).Name);

        var bobList = JsonDocument.Parse(await (await f.Send(f.BobToken, HttpMethod.Get, "/api/v1/vps")).Content.ReadAsStringAsync()).RootElement;
        Assert.DoesNotContain(bobList.GetProperty("items").EnumerateArray(), v => v.GetProperty("id").GetInt64() == id);
        var adminList = JsonDocument.Parse(await (await f.Send(f.AdminToken, HttpMethod.Get, "/api/v1/vps?pageSize=500")).Content.ReadAsStringAsync()).RootElement;
        Assert.Contains(adminList.GetProperty("items").EnumerateArray(), v => v.GetProperty("id").GetInt64() == id);
    }

    [SkippableFact]
    public async Task Clients_get_403_on_admin_endpoints_and_read_tokens_cannot_change_things()
    {
        foreach (var path in new[] { "/api/v1/admin/hosts", "/api/v1/admin/users", "/api/v1/admin/audit", "/api/v1/admin/pools" })
            await Problem(await f.Send(f.AliceToken, HttpMethod.Get, path), HttpStatusCode.Forbidden);
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/admin/plans", new { name = "free", memoryMiB = 1024, vcpus = 1, diskGiB = 1 }), HttpStatusCode.Forbidden);

        var before = f.VpsCount;
        await Problem(await f.Send(f.AliceReadToken, HttpMethod.Post, "/api/v1/vps", new { name = "readonly", planId = f.PlanId, templateId = f.TemplateId }), HttpStatusCode.Forbidden);
        Assert.Equal(before, f.VpsCount);
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceReadToken, HttpMethod.Get, "/api/v1/vps")).StatusCode);

        // An admin's write-scope token may read admin data but not change it; an admin-scope token may.
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AdminWriteToken, HttpMethod.Get, "/api/v1/admin/hosts")).StatusCode);
        await Problem(await f.Send(f.AdminWriteToken, HttpMethod.Post, "/api/v1/admin/plans", new { name = "w", memoryMiB = 64, vcpus = 1, diskGiB = 1 }), HttpStatusCode.Forbidden);
        // A client cannot mint an admin token, nor may a write token mint one.
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/tokens", new { name = "x", scope = "admin" }), HttpStatusCode.BadRequest);
        await Problem(await f.Send(f.AdminWriteToken, HttpMethod.Post, "/api/v1/tokens", new { name = "x", scope = "admin" }), HttpStatusCode.Forbidden);
        // The host's xld token never appears in the API.
        Assert.DoesNotContain(FakeXld.Token, await (await f.Send(f.AdminToken, HttpMethod.Get, "/api/v1/admin/hosts")).Content.ReadAsStringAsync());
    }

    [SkippableTheory]
    [InlineData("Bad_Name", "name")]
    [InlineData("", "name")]
    [InlineData("a", "name")]
    [InlineData("-leading", "name")]
    [InlineData("waytoolongname-waytoolongname-waytoolong", "name")]
    public async Task Bad_VPS_names_are_refused_and_nothing_is_created(string name, string field)
    {
        var before = f.VpsCount;
        var commands = f.Xld.Commands.Count(c => c == "create");
        var p = await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", new { name, planId = f.PlanId, templateId = f.TemplateId }), HttpStatusCode.BadRequest);
        Assert.True(p.GetProperty("errors").TryGetProperty(field, out _), p.ToString());
        Assert.Equal(before, f.VpsCount);
        Assert.Equal(commands, f.Xld.Commands.Count(c => c == "create"));
    }

    [SkippableFact]
    public async Task Unknown_plan_or_template_malformed_json_and_duplicates_are_400()
    {
        var before = f.VpsCount;
        var p = await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", new { name = "noplan", planId = 9999, templateId = f.TemplateId }), HttpStatusCode.BadRequest);
        Assert.Contains("plan", p.GetProperty("detail").GetString());
        p = await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", new { name = "notpl", planId = f.PlanId, templateId = 9999 }), HttpStatusCode.BadRequest);
        Assert.Contains("template", p.GetProperty("detail").GetString());
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", "{\"name\": \"x\", \"planId\": \"many\""), HttpStatusCode.BadRequest);
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", new { name = "clienthost", planId = f.PlanId, templateId = f.TemplateId, hostId = f.HostId }), HttpStatusCode.BadRequest);
        Assert.Equal(before, f.VpsCount);
        await f.CreateVps(f.AliceToken, "dup-name");
        await Problem(await f.Send(f.BobToken, HttpMethod.Post, "/api/v1/vps", new { name = "dup-name", planId = f.PlanId, templateId = f.TemplateId }), HttpStatusCode.BadRequest);
        Assert.Equal(before + 1, f.VpsCount);
    }

    [SkippableTheory]
    [InlineData(0, 1, 10)]
    [InlineData(64, 0, 10)]
    [InlineData(64, 1, 0)]
    [InlineData(-5, 1, 10)]
    public async Task Bad_plan_sizes_are_refused(int mem, int vcpus, int disk)
    {
        var before = f.Panel.Store.ListPlans().Count;
        await Problem(await f.Send(f.AdminToken, HttpMethod.Post, "/api/v1/admin/plans", new { name = $"bad{mem}{vcpus}{disk}", memoryMiB = mem, vcpus, diskGiB = disk }), HttpStatusCode.BadRequest);
        Assert.Equal(before, f.Panel.Store.ListPlans().Count);
    }

    [SkippableTheory]
    [InlineData("hvm", "relative/kernel")]
    [InlineData("hvm", "/boot/vm\"linuz")]
    [InlineData("kvm", "/boot/vmlinuz")]
    [InlineData("pv", "")]
    public async Task Bad_templates_are_refused(string type, string kernel)
    {
        var before = f.Panel.Store.ListTemplates().Count;
        await Problem(await f.Send(f.AdminToken, HttpMethod.Post, "/api/v1/admin/templates", new { name = "badtpl", type, kernel }), HttpStatusCode.BadRequest);
        Assert.Equal(before, f.Panel.Store.ListTemplates().Count);
    }

    [SkippableTheory]
    [InlineData("192.0.2.0/33", "192.0.2.1", "192.0.2.5")]
    [InlineData("192.0.2.1/24", "192.0.2.1", "192.0.2.5")]
    [InlineData("198.51.100.0/24", "198.51.100.9", "198.51.100.2")]
    [InlineData("198.51.100.0/24", "198.51.101.1", "198.51.101.5")]
    [InlineData("not-a-cidr", "1.2.3.4", "1.2.3.5")]
    public async Task Bad_ip_pools_are_refused(string cidr, string start, string end)
    {
        var before = f.Panel.Store.ListPools().Count;
        await Problem(await f.Send(f.AdminToken, HttpMethod.Post, "/api/v1/admin/pools", new { name = "badpool", cidr, rangeStart = start, rangeEnd = end }), HttpStatusCode.BadRequest);
        Assert.Equal(before, f.Panel.Store.ListPools().Count);
    }

    [SkippableFact]
    public async Task A_boot_the_host_refuses_leaves_nothing_behind()
    {
        var before = f.VpsCount;
        f.Xld.FailCreate = true;
        try
        {
            var p = await Problem(await f.Send(f.AliceToken, HttpMethod.Post, "/api/v1/vps", new { name = "doomed", planId = f.PlanId, templateId = f.TemplateId }), HttpStatusCode.BadGateway);
            Assert.Contains("nothing was created", p.GetProperty("detail").GetString());
        }
        finally { f.Xld.FailCreate = false; }
        Assert.Equal(before, f.VpsCount);
        using var c = f.Panel.Store.Db.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM ip_addresses a LEFT JOIN vps v ON v.id = a.vps_id WHERE v.id IS NULL";
        Assert.Equal(0L, (long)cmd.ExecuteScalar()!);
    }

    [SkippableFact]
    public async Task Lifecycle_actions_reach_the_host_and_resize_rechecks_the_plan()
    {
        var id = await f.CreateVps(f.AliceToken, "life");
        var cfg = await (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{id}/config")).Content.ReadAsStringAsync();
        Assert.Contains("memory = 64", cfg);
        Assert.Contains("kernel = \"/opt/guests/hvm-hello.elf\"", cfg);
        Assert.Contains("vif = [ 'ip=192.0.2.", cfg);

        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/reboot")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/force-off")).StatusCode);
        Assert.False(f.Xld.Has("life"));
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/boot")).StatusCode);
        Assert.True(f.Xld.Has("life"));

        Assert.Contains("maxmem = 64", await (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{id}/config")).Content.ReadAsStringAsync());
        int MemSets() => f.Xld.Commands.Count(c => c == "mem-set");
        int memSets = MemSets();
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 128 }), HttpStatusCode.BadRequest);
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 8 }), HttpStatusCode.BadRequest);
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { vcpus = 3 }), HttpStatusCode.BadRequest);
        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { planId = f.PlanId + 100 }), HttpStatusCode.BadRequest);
        Assert.Equal(memSets, MemSets()); // refused on the panel: the host was never asked
        // The VPS runs: the new memory reaches it at once (mem-set), within the plan.
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 32, vcpus = 1 })).StatusCode);
        Assert.Equal(32, f.Panel.Store.AllVps().Single(v => v.Id == id).MemoryMiB);
        Assert.Equal(memSets + 1, MemSets());
        Assert.Equal(32, f.Xld.MemoryOf("life"));
        // And back up to the plan's limit, live.
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 64 })).StatusCode);
        Assert.Equal(64, f.Xld.MemoryOf("life"));
        // The host refuses: the panel reports it and keeps the old size.
        f.Xld.RefuseMemSet = true;
        try { await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 48 }), HttpStatusCode.Conflict); }
        finally { f.Xld.RefuseMemSet = false; }
        Assert.Equal(64, f.Panel.Store.AllVps().Single(v => v.Id == id).MemoryMiB);
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 32 })).StatusCode);

        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/rebuild", new { templateId = f.TemplateId }), HttpStatusCode.BadRequest);
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/rebuild", new { templateId = f.TemplateId, confirm = "life" })).StatusCode);

        await Problem(await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/rename", new { name = "Not OK" }), HttpStatusCode.BadRequest);
        Assert.Equal(HttpStatusCode.OK, (await f.Send(f.AliceToken, HttpMethod.Post, $"/api/v1/vps/{id}/rename", new { name = "life2" })).StatusCode);
        Assert.True(f.Xld.Has("life2"));

        var traffic = JsonDocument.Parse(await (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{id}/traffic")).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(traffic.GetProperty("rxBytes").GetInt64() + traffic.GetProperty("txBytes").GetInt64(), traffic.GetProperty("usedBytes").GetInt64());
        Assert.Equal(100L << 30, traffic.GetProperty("quotaBytes").GetInt64());

        Assert.Equal(HttpStatusCode.NoContent, (await f.Send(f.AliceToken, HttpMethod.Delete, $"/api/v1/vps/{id}")).StatusCode);
        Assert.False(f.Xld.Has("life2"));
        var actions = f.Panel.Store.PageAudit(1, 1000).Items.Where(a => a.Target.StartsWith($"vps:{id}:")).Select(a => a.Action).ToList();
        foreach (var a in new[] { "vps.create", "vps.boot", "vps.reboot", "vps.force-off", "vps.resize", "vps.rebuild", "vps.rename", "vps.delete" })
            Assert.Contains(a, actions);
    }

    [SkippableFact]
    public async Task Maintenance_hosts_take_no_new_VPSes()
    {
        var h2 = await ApiFixture.Id(await f.Send(f.AdminToken, HttpMethod.Post, "/api/v1/admin/hosts", new { name = "host2", url = f.Xld.Url, token = FakeXld.Token, maintenance = true }));
        await Problem(await f.Send(f.AdminToken, HttpMethod.Post, "/api/v1/vps", new { name = "onmaint", planId = f.PlanId, templateId = f.TemplateId, hostId = h2 }), HttpStatusCode.BadRequest);
        var health = JsonDocument.Parse(await (await f.Send(f.AdminToken, HttpMethod.Get, $"/api/v1/admin/hosts/{f.HostId}/health")).Content.ReadAsStringAsync()).RootElement;
        Assert.True(health.GetProperty("reachable").GetBoolean(), health.ToString());
        Assert.Equal(4096, health.GetProperty("info").GetProperty("totalMemoryMiB").GetInt32());
        Assert.Equal(HttpStatusCode.NoContent, (await f.Send(f.AdminToken, HttpMethod.Delete, $"/api/v1/admin/hosts/{h2}")).StatusCode);
    }

    [SkippableFact]
    public async Task Stats_come_from_the_sampler()
    {
        var id = await f.CreateVps(f.AliceToken, "graphs");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        JsonElement s;
        do
        {
            await Task.Delay(500);
            s = JsonDocument.Parse(await (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{id}/stats")).Content.ReadAsStringAsync()).RootElement;
        } while (s.GetProperty("points").GetArrayLength() < 2 && DateTime.UtcNow < deadline);
        var pts = s.GetProperty("points").EnumerateArray().ToList();
        Assert.True(pts.Count >= 2);
        Assert.Equal(64, pts[^1].GetProperty("memoryMiB").GetInt32());
        Assert.InRange(pts[^1].GetProperty("cpuPercent").GetDouble(), 10, 40); // the fake burns 25% of a CPU
        // Disk and network rates from the host's byte counters (the fake: 10 kB/s in, 5 kB/s out, 40 kB/s read, 2 kB/s written).
        Assert.True(s.GetProperty("ioReported").GetBoolean());
        Assert.InRange(pts[^1].GetProperty("netRxBytesPerSecond").GetDouble(), 5000, 15000);
        Assert.InRange(pts[^1].GetProperty("netTxBytesPerSecond").GetDouble(), 2500, 7500);
        Assert.InRange(pts[^1].GetProperty("diskReadBytesPerSecond").GetDouble(), 20000, 60000);
        Assert.InRange(pts[^1].GetProperty("diskWriteBytesPerSecond").GetDouble(), 1000, 3000);
        // The same counters feed the month's traffic: received plus sent, against the plan's 100 GiB.
        var traffic = JsonDocument.Parse(await (await f.Send(f.AliceToken, HttpMethod.Get, $"/api/v1/vps/{id}/traffic")).Content.ReadAsStringAsync()).RootElement;
        Assert.True(traffic.GetProperty("usedBytes").GetInt64() > 0, traffic.ToString());
        Assert.Equal(traffic.GetProperty("rxBytes").GetInt64() + traffic.GetProperty("txBytes").GetInt64(), traffic.GetProperty("usedBytes").GetInt64());
        Assert.True(traffic.GetProperty("rxBytes").GetInt64() > traffic.GetProperty("txBytes").GetInt64());
    }

    [SkippableFact]
    public async Task The_audit_log_cannot_be_changed_even_with_SQL()
    {
        f.Panel.Store.Audit(null, "test", "127.0.0.1", "test.entry", "x");
        using var c = f.Panel.Store.Db.Open();
        foreach (var sql in new[] { "UPDATE audit_log SET action='forged'", "DELETE FROM audit_log" })
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            var e = Assert.ThrowsAny<DbException>(() => cmd.ExecuteNonQuery());
            Assert.Contains("append-only", e.Message);
        }
        var entries = JsonDocument.Parse(await (await f.Send(f.AdminToken, HttpMethod.Get, "/api/v1/admin/audit")).Content.ReadAsStringAsync()).RootElement;
        Assert.True(entries.GetProperty("total").GetInt64() > 0);
    }

    [SkippableFact]
    public async Task OpenApi_document_describes_the_API()
    {
        var r = await ApiFixture.Http.GetAsync(f.Panel.Url + "/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        var paths = doc.GetProperty("paths");
        foreach (var p in new[] { "/api/v1/vps", "/api/v1/vps/{id}", "/api/v1/vps/{id}/reboot", "/api/v1/vps/{id}/rebuild", "/api/v1/admin/hosts", "/api/v1/admin/plans", "/api/v1/admin/audit", "/api/v1/tokens" })
            Assert.True(paths.TryGetProperty(p, out _), $"missing {p}");
        Assert.DoesNotContain(paths.EnumerateObject(), p => !p.Name.StartsWith("/api/v1/"));
    }
}
