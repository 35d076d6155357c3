using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;

namespace XenSharp.Panel.Tests;

/// <summary>A browser-like client over HttpClient: cookies kept, no redirects followed, antiforgery tokens read from forms.</summary>
internal sealed class FormClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _base;
    public CookieContainer Cookies { get; } = new();

    public FormClient(string baseUrl)
    {
        _base = baseUrl;
        _http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false, UseCookies = true });
    }

    public Task<HttpResponseMessage> Get(string path) => _http.GetAsync(_base + path);

    public async Task<string> Token(string path)
    {
        var html = await (await Get(path)).Content.ReadAsStringAsync();
        return Regex.Match(html, "name=\"__af\" value=\"([^\"]+)\"").Groups[1].Value;
    }

    public async Task<HttpResponseMessage> Post(string path, string? tokenFrom, params (string, string)[] fields)
    {
        var list = fields.ToList();
        if (tokenFrom is not null) list.Add(("__af", await Token(tokenFrom)));
        return await _http.PostAsync(_base + path, new FormUrlEncodedContent(list.Select(f => new KeyValuePair<string, string>(f.Item1, f.Item2))));
    }

    public Task<HttpResponseMessage> Login(string user, string password) => Post("/login", "/login", ("username", user), ("password", password));

    public void Dispose() => _http.Dispose();
}

public sealed class SecurityTests : IAsyncLifetime
{
    private PanelServer _p = null!;
    public async Task InitializeAsync()
    {
        _p = await PanelServer.StartAsync(sampler: false);
        _p.User("root", Roles.Admin); // with no admin, /login sends everyone to /setup
    }
    public async Task DisposeAsync() => await _p.DisposeAsync();

    [Fact]
    public void Totp_matches_the_RFC_6238_SHA1_vectors()
    {
        var key = "12345678901234567890"u8.ToArray();
        // RFC 6238 appendix B, SHA-1, last 6 of the 8 digits.
        Assert.Equal("287082", Totp.Code(key, 59 / 30));
        Assert.Equal("081804", Totp.Code(key, 1111111109 / 30));
        Assert.Equal("050471", Totp.Code(key, 1111111111 / 30));
        Assert.Equal("005924", Totp.Code(key, 1234567890 / 30));
        Assert.Equal("279037", Totp.Code(key, 2000000000 / 30));
        var secret = Totp.Base32Encode(key);
        Assert.Equal("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", secret);
        var t = DateTimeOffset.FromUnixTimeSeconds(1111111109);
        Assert.True(Totp.Verify(secret, "081804", t));
        Assert.True(Totp.Verify(secret, "081804", t.AddSeconds(30)));   // one step of skew
        Assert.False(Totp.Verify(secret, "081804", t.AddSeconds(90)));  // not two
        Assert.False(Totp.Verify(secret, "08180", t));
    }

    [Fact]
    public void Passwords_are_salted_pbkdf2_sha256_with_at_least_210k_iterations()
    {
        var a = Passwords.Hash("correct horse battery");
        var b = Passwords.Hash("correct horse battery");
        Assert.NotEqual(a, b);
        var parts = a.Split('$');
        Assert.Equal("pbkdf2-sha256", parts[0]);
        Assert.True(int.Parse(parts[1]) >= 210_000);
        Assert.True(Passwords.Verify("correct horse battery", a));
        Assert.False(Passwords.Verify("correct horse batterz", a));
    }

    [Fact]
    public async Task Pages_carry_security_headers_and_the_session_cookie_is_httponly_and_strict()
    {
        _p.User("carol", Roles.Client);
        using var c = new FormClient(_p.Url);
        var r = await c.Get("/login");
        var csp = r.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", csp);
        Assert.DoesNotContain("unsafe-inline'; img", csp.Replace("style-src 'self' 'unsafe-inline'", ""));
        Assert.DoesNotContain("script-src 'self' 'unsafe-inline'", csp);
        Assert.Contains("frame-ancestors 'none'", csp);
        Assert.Equal("nosniff", r.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("no-referrer", r.Headers.GetValues("Referrer-Policy").Single());
        Assert.DoesNotContain("<script>", await r.Content.ReadAsStringAsync());

        var login = await c.Login("carol", "correct horse battery");
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var setCookie = login.Headers.GetValues("Set-Cookie").Single(v => v.StartsWith("xsp.session="));
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.OK, (await c.Get("/vps")).StatusCode);
    }

    [Fact]
    public async Task Forms_without_an_antiforgery_token_are_refused()
    {
        var id = _p.User("dave", Roles.Admin);
        using var c = new FormClient(_p.Url);
        Assert.Equal(HttpStatusCode.Redirect, (await c.Login("dave", "correct horse battery")).StatusCode);
        var before = _p.Store.ListPlans().Count;
        var r = await c.Post("/admin/plans", null, ("name", "csrf"), ("memoryMiB", "64"), ("vcpus", "1"), ("diskGiB", "1"));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Equal(before, _p.Store.ListPlans().Count);
        r = await c.Post("/admin/plans", "/admin/plans", ("name", "legit"), ("memoryMiB", "64"), ("vcpus", "1"), ("diskGiB", "1"), ("_back", "/admin/plans"));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal(before + 1, _p.Store.ListPlans().Count);
        Assert.Contains(_p.Store.PageAudit(1, 50).Items, a => a.Action == "plan.create" && a.UserId == id && a.Ip == "127.0.0.1");
    }

    [Fact]
    public async Task Repeated_failures_lock_the_account_even_for_the_right_password()
    {
        _p.User("erin", Roles.Client);
        using var c = new FormClient(_p.Url);
        for (var i = 0; i < 5; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await c.Login("erin", "wrong password!")).StatusCode);
        var r = await c.Login("erin", "correct horse battery");
        Assert.Equal((HttpStatusCode)429, r.StatusCode);
        Assert.Contains("locked", await r.Content.ReadAsStringAsync());
        Assert.Contains(_p.Store.PageAudit(1, 100).Items, a => a.Action == "login.locked");
    }

    [Fact]
    public async Task Login_is_rate_limited_per_address()
    {
        await using var p = await PanelServer.StartAsync(sampler: false, loginPerMinute: 3);
        using var c = new FormClient(p.Url);
        var codes = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++) codes.Add((await c.Login($"nobody{i}", "whatever-password")).StatusCode);
        Assert.Contains((HttpStatusCode)429, codes);
    }

    [Fact]
    public async Task Totp_second_factor_and_mandatory_enrolment()
    {
        var id = _p.User("frank", Roles.Client);
        _p.Store.SetSetting("totp_mandatory", "1");
        try
        {
            using var c = new FormClient(_p.Url);
            Assert.Equal(HttpStatusCode.Redirect, (await c.Login("frank", "correct horse battery")).StatusCode);
            // Until enrolled, everything leads to the enrolment page, and the API refuses the session.
            var r = await c.Get("/vps");
            Assert.Equal("/account/totp", r.Headers.Location?.OriginalString);
            var page = await (await c.Get("/account/totp")).Content.ReadAsStringAsync();
            var secret = Regex.Match(page, "id=\"totp-secret\">([A-Z2-7]+)<").Groups[1].Value;
            Assert.NotEmpty(secret);
            var bad = await c.Post("/account/totp", "/account/totp", ("code", "000000"), ("_back", "/account/totp"));
            Assert.False(_p.Store.GetUser(id)!.TotpEnabled);
            var code = Totp.Code(Totp.Base32Decode(secret), Totp.Step(DateTimeOffset.UtcNow));
            r = await c.Post("/account/totp", "/account/totp", ("code", code), ("_back", "/account/totp"));
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
            Assert.True(_p.Store.GetUser(id)!.TotpEnabled);
            Assert.Equal(HttpStatusCode.OK, (await c.Get("/vps")).StatusCode);

            // Next login: the password alone is not enough.
            using var c2 = new FormClient(_p.Url);
            var step = await c2.Login("frank", "correct horse battery");
            Assert.Equal(HttpStatusCode.OK, step.StatusCode);
            var html = await step.Content.ReadAsStringAsync();
            var ticket = Regex.Match(html, "name=\"ticket\" value=\"([^\"]+)\"").Groups[1].Value;
            var af = Regex.Match(html, "name=\"__af\" value=\"([^\"]+)\"").Groups[1].Value;
            Assert.Equal(HttpStatusCode.Redirect, (await c2.Get("/vps")).StatusCode); // not signed in yet
            var wrong = await c2.Post("/login/totp", null, ("ticket", ticket), ("code", code == "123456" ? "654321" : "123456"), ("__af", af));
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            var ok = await c2.Post("/login/totp", null, ("ticket", ticket), ("code", Totp.Code(Totp.Base32Decode(secret), Totp.Step(DateTimeOffset.UtcNow))), ("__af", af));
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await c2.Get("/vps")).StatusCode);
        }
        finally { _p.Store.SetSetting("totp_mandatory", "0"); }
    }

    [Fact]
    public async Task Setup_page_exists_only_until_an_admin_does()
    {
        await using var p = await PanelServer.StartAsync(sampler: false);
        using var c = new FormClient(p.Url);
        Assert.Equal("/setup", (await c.Get("/login")).Headers.Location?.OriginalString);
        var r = await c.Post("/setup", "/setup", ("username", "boss"), ("password", "short"));
        Assert.False(p.Store.AnyAdmin());
        r = await c.Post("/setup", "/setup", ("username", "boss"), ("password", "a long enough password"));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.True(p.Store.AnyAdmin());
        Assert.Equal(HttpStatusCode.OK, (await c.Get("/admin/hosts")).StatusCode);
        using var other = new FormClient(p.Url);
        Assert.Equal(HttpStatusCode.NotFound, (await other.Get("/setup")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.Post("/setup", null, ("username", "evil"), ("password", "another long password"))).StatusCode);
    }

    [Fact]
    public async Task A_client_gets_404_on_admin_pages_and_on_another_clients_vps_page()
    {
        var a = _p.User("gina", Roles.Client);
        _p.User("hank", Roles.Client);
        var host = _p.Store.CreateHost("h", "http://127.0.0.1:9", "t", false);
        var plan = _p.Store.GetPlan(_p.Store.CreatePlan(new Plan(0, "p", 64, 1, 1, 256, 0, 0, 0)))!;
        var tpl = _p.Store.CreateTemplate(new OsTemplate(0, "t", "hvm", "/k", "", "", ""));
        var vps = _p.Store.CreateVps("gina-vm", a, host, plan, tpl);
        using var c = new FormClient(_p.Url);
        await c.Login("hank", "correct horse battery");
        Assert.Equal(HttpStatusCode.NotFound, (await c.Get($"/vps/{vps}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Get($"/vps/{vps}/rebuild")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Post($"/vps/{vps}/force-off", $"/vps", ("_back", "/vps"))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Get("/admin/users")).StatusCode);
        Assert.DoesNotContain("gina-vm", await (await c.Get("/vps")).Content.ReadAsStringAsync());
    }

    [Fact]
    public void Migrations_are_versioned_wal_is_on_and_backup_copies_a_live_database()
    {
        var db = _p.Store.Db;
        Assert.Equal(Db.Migrations.Length, db.Migrate()); // a second run is a no-op
        using (var c = db.Open())
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode";
            Assert.Equal("wal", (string)cmd.ExecuteScalar()!);
            cmd.CommandText = "PRAGMA user_version";
            Assert.Equal((long)Db.Migrations.Length, (long)cmd.ExecuteScalar()!);
        }
        _p.User("ivan", Roles.Client);
        var file = Path.Combine(_p.Directory, "backup.db");
        db.Backup(file);
        using var b = new SqliteConnection($"Data Source={file};Pooling=false");
        b.Open();
        using var q = b.CreateCommand();
        q.CommandText = "SELECT COUNT(*) FROM users WHERE username='ivan'";
        Assert.Equal(1L, (long)q.ExecuteScalar()!);
    }
}
