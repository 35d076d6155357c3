using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

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
