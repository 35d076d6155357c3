using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using XenSharp.Panel.Data;

namespace XenSharp.Panel.Tests;

/// <summary>One panel and one fake xld shared by the API tests, seeded with an admin, two clients and their tokens.</summary>
public class ApiFixture : IAsyncLifetime
{
    protected virtual DbKind Kind => DbKind.Sqlite;
    private PanelServer? _panel;
    private string? _skipReason;

    /// <summary>The panel; in a test, a database that cannot run here turns into a skip with the reason.</summary>
    public PanelServer Panel => _panel ?? throw new SkipException(_skipReason ?? "the panel did not start");
    public FakeXld Xld { get; } = new();
    public long AdminId, AliceId, BobId, HostId, PlanId, TemplateId;
    public string AdminToken = "", AdminWriteToken = "", AliceToken = "", AliceReadToken = "", BobToken = "";

    public async Task InitializeAsync()
    {
        try { _panel = await PanelServer.StartAsync(sampleSeconds: 0.5, kind: Kind); }
        catch (SkipException e) { _skipReason = e.Message; return; }
        await Xld.StartAsync();
        AdminId = Panel.User("root", Roles.Admin);
        AliceId = Panel.User("alice", Roles.Client);
        BobId = Panel.User("bob", Roles.Client);
        AdminToken = Panel.Token(AdminId, "admin");
        AdminWriteToken = Panel.Token(AdminId, "write");
        AliceToken = Panel.Token(AliceId, "write");
        AliceReadToken = Panel.Token(AliceId, "read");
        BobToken = Panel.Token(BobId, "write");
        HostId = await Id(await Send(AdminToken, HttpMethod.Post, "/api/v1/admin/hosts", new { name = "host1", url = Xld.Url, token = FakeXld.Token }));
        PlanId = await Id(await Send(AdminToken, HttpMethod.Post, "/api/v1/admin/plans", new { name = "small", memoryMiB = 64, vcpus = 2, diskGiB = 10, trafficGiB = 100 }));
        TemplateId = await Id(await Send(AdminToken, HttpMethod.Post, "/api/v1/admin/templates", new { name = "hello", type = "hvm", kernel = "/opt/guests/hvm-hello.elf" }));
        await Send(AdminToken, HttpMethod.Post, "/api/v1/admin/pools", new { name = "pool1", cidr = "192.0.2.0/24", gateway = "192.0.2.1", rangeStart = "192.0.2.10", rangeEnd = "192.0.2.20" });
    }

    public async Task DisposeAsync()
    {
        if (_panel is not null) await _panel.DisposeAsync();
        await Xld.DisposeAsync();
    }

    public static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    public async Task<HttpResponseMessage> Send(string? token, HttpMethod method, string path, object? body = null)
    {
        var req = new HttpRequestMessage(method, Panel.Url + path);
        if (token is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) req.Content = body is string s ? new StringContent(s, System.Text.Encoding.UTF8, "application/json") : JsonContent.Create(body);
        return await Http.SendAsync(req);
    }

    public static async Task<long> Id(HttpResponseMessage r)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{(int)r.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
    }

    public async Task<long> CreateVps(string token, string name, bool boot = true)
    {
        var r = await Send(token, HttpMethod.Post, "/api/v1/vps", new { name, planId = PlanId, templateId = TemplateId, boot });
        return await Id(r);
    }

    public long VpsCount => Panel.Store.AllVps().Count;
}

/// <summary>The same panel on a throwaway PostgreSQL database.</summary>
public sealed class PostgresApiFixture : ApiFixture
{
    protected override DbKind Kind => DbKind.Postgres;
}
