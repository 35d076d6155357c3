using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using XenSharp.Panel.Data;

namespace XenSharp.Panel.Tests;

/// <summary>The panel's REST API and console relay against the real xld booting the real HVM test guest.</summary>
[Collection("e2e")]
public sealed class RealXldTests(E2eFixture f)
{
    private async Task<HttpResponseMessage> Send(string token, HttpMethod m, string path, object? body = null)
    {
        var req = new HttpRequestMessage(m, f.Panel.Url + path);
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) req.Content = JsonContent.Create(body);
        return await ApiFixture.Http.SendAsync(req);
    }

    [SkippableFact]
    public async Task Create_boot_console_typing_and_teardown_through_the_panel_api()
    {
        Skip.If(f.SkipReason is not null, f.SkipReason);
        var token = f.Panel.Token(f.AliceId, "write");
        var r = await Send(token, HttpMethod.Post, "/api/v1/vps", new { name = "api-guest", planId = f.PlanId, templateId = f.TemplateId });
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Created, text + "\nxld: " + f.Xld.Output);
        var id = JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
        Assert.Contains("api-guest", f.Xld.Xl("list"));

        // The console through the panel: the guest's banner (history first), then an answer to typed input.
        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        await ws.ConnectAsync(new Uri(f.Panel.Url.Replace("http:", "ws:") + $"/api/v1/vps/{id}/console"), CancellationToken.None);
        var seen = new StringBuilder();
        await ReadUntil(ws, seen, "ready", TimeSpan.FromSeconds(120));
        await ws.SendAsync(Encoding.ASCII.GetBytes("hello\r"), WebSocketMessageType.Binary, true, CancellationToken.None);
        await ReadUntil(ws, seen, "hello from the guest", TimeSpan.FromSeconds(60));

        var other = f.Panel.Token(f.BobId, "write");
        Assert.Equal(HttpStatusCode.NotFound, (await Send(other, HttpMethod.Get, $"/api/v1/vps/{id}")).StatusCode);

        var st = JsonDocument.Parse(await (await Send(token, HttpMethod.Get, $"/api/v1/vps/{id}")).Content.ReadAsStringAsync()).RootElement.GetProperty("status");
        Assert.True(st.GetProperty("running").GetBoolean(), st.ToString());
        Assert.Equal(HttpStatusCode.OK, (await Send(token, HttpMethod.Post, $"/api/v1/vps/{id}/force-off")).StatusCode);
        Assert.DoesNotContain("api-guest", f.Xld.Xl("list"));
        Assert.Equal(HttpStatusCode.NoContent, (await Send(token, HttpMethod.Delete, $"/api/v1/vps/{id}")).StatusCode);
    }

    [SkippableFact]
    public async Task Host_health_reports_capacity_and_domains_made_outside_the_panel()
    {
        Skip.If(f.SkipReason is not null, f.SkipReason);
        var cfg = Path.Combine(f.Xld.Dir, "by-hand.cfg");
        await File.WriteAllTextAsync(cfg, $"name = \"by-hand\"\ntype = \"hvm\"\nkernel = \"{Repo.HvmGuest}\"\nmemory = 16\n");
        f.Xld.Xl("create", cfg);
        try
        {
            var admin = f.Panel.Token(f.AdminId, "read");
            var h = JsonDocument.Parse(await (await Send(admin, HttpMethod.Get, $"/api/v1/admin/hosts/{f.HostId}/health")).Content.ReadAsStringAsync()).RootElement;
            Assert.True(h.GetProperty("reachable").GetBoolean(), h.ToString());
            Assert.True(h.GetProperty("info").GetProperty("totalMemoryMiB").GetInt64() > 0);
            Assert.Contains("by-hand", h.GetProperty("unmanaged").EnumerateArray().Select(e => e.GetString()));
        }
        finally { f.Xld.Xl("destroy", "by-hand"); }
    }

    [SkippableFact]
    public async Task Live_resize_reaches_the_running_domain_and_io_counters_are_sampled()
    {
        Skip.If(f.SkipReason is not null, f.SkipReason);
        var s = f.Panel.Store;
        var plan = s.GetPlan(s.CreatePlan(new Plan(0, "roomy", 48, 1, 1, 256, 0, 50, 0)))!;
        var id = s.CreateVps("resize-guest", f.AliceId, f.HostId, plan, f.TemplateId);
        var token = f.Panel.Token(f.AliceId, "write");
        var boot = await Send(token, HttpMethod.Post, $"/api/v1/vps/{id}/boot");
        Assert.True(boot.StatusCode == HttpStatusCode.OK, await boot.Content.ReadAsStringAsync() + "\nxld: " + f.Xld.Output);
        string Mem() => f.Xld.Xl("list", "resize-guest").Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[2];
        Assert.Equal("48", Mem());

        // Down and back up while it runs: xld's mem-set, within the plan's 48 MiB (the domain's maxmem).
        Assert.Equal(HttpStatusCode.OK, (await Send(token, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 32 })).StatusCode);
        Assert.Equal("32", Mem());
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(token, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 64 })).StatusCode);
        Assert.Equal("32", Mem());
        Assert.Equal(HttpStatusCode.OK, (await Send(token, HttpMethod.Post, $"/api/v1/vps/{id}/resize", new { memoryMiB = 48 })).StatusCode);
        Assert.Equal("48", Mem());

        // The sampler reads xld's stats: the graphs have I/O rates (zero here: the HVM guest has no vifs or vbds).
        var deadline = DateTime.UtcNow.AddSeconds(30);
        JsonElement st;
        do
        {
            await Task.Delay(500);
            st = JsonDocument.Parse(await (await Send(token, HttpMethod.Get, $"/api/v1/vps/{id}/stats")).Content.ReadAsStringAsync()).RootElement;
        } while (!st.GetProperty("ioReported").GetBoolean() && DateTime.UtcNow < deadline);
        Assert.True(st.GetProperty("ioReported").GetBoolean(), st.ToString());
        Assert.Equal(0, st.GetProperty("points").EnumerateArray().Last().GetProperty("netRxBytesPerSecond").GetDouble());

        Assert.Equal(HttpStatusCode.OK, (await Send(token, HttpMethod.Post, $"/api/v1/vps/{id}/force-off")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await Send(token, HttpMethod.Delete, $"/api/v1/vps/{id}")).StatusCode);
    }

    internal static async Task ReadUntil(ClientWebSocket ws, StringBuilder seen, string want, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buf = new byte[4096];
        while (!seen.ToString().Contains(want))
        {
            WebSocketReceiveResult r;
            try { r = await ws.ReceiveAsync(buf, cts.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"no '{want}' on the console; saw: {seen}"); }
            if (r.MessageType == WebSocketMessageType.Close) throw new InvalidOperationException($"console closed before '{want}'; saw: {seen}");
            seen.Append(Encoding.UTF8.GetString(buf, 0, r.Count));
        }
    }
}
