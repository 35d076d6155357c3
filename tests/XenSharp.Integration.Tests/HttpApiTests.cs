using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace XenSharp.Integration.Tests;

/// <summary>xld's HTTP API as the panel uses it: bearer tokens from xl, the same commands, the console over a WebSocket.</summary>
public sealed class HttpApiTests : IClassFixture<XldFixture>
{
    private readonly XldFixture _xld;

    public HttpApiTests(XldFixture xld) => _xld = xld;

    private string Token(string name, string scope = "admin") => _xld.HttpToken(name, scope);

    private HttpClient Client(string? token) => _xld.HttpClient(token);

    private static Task<(HttpStatusCode, JsonElement)> Post(HttpClient c, string command, object? body = null) => XldFixture.Post(c, command, body);

    [Fact]
    public async Task RequestsWithoutAValidTokenAreRefused()
    {
        var (status, _) = await Post(Client(null), "list");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        (status, _) = await Post(Client("xst_forged"), "list");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
    }

    [Fact]
    public async Task AnAdminTokenListsDomainsAndItsCallsAreAudited()
    {
        var c = Client(Token("it-admin"));
        var (status, json) = await Post(c, "list");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.Equal("Domain-0", json.GetProperty("result")[0].GetProperty("name").GetString());

        (_, json) = await Post(c, "pause", new { domain = "nobody" });
        Assert.False(json.GetProperty("ok").GetBoolean());
        Assert.Contains("no domain named", json.GetProperty("error").GetString());
        var log = File.ReadAllText(Path.Combine(_xld.LogDirectory, "xld.log"));
        Assert.Contains("http token 'it-admin' from 127.0.0.1: pause", log);
    }

    [Fact]
    public async Task AReadTokenCannotChangeAnythingAndRevokedTokensStopWorking()
    {
        var token = Token("it-read", "read");
        var c = Client(token);
        Assert.Equal(HttpStatusCode.OK, (await Post(c, "info")).Item1);
        Assert.Equal(HttpStatusCode.Forbidden, (await Post(c, "destroy", new { domain = "x" })).Item1);
        Assert.Contains("it-read", _xld.Xl("token-list").Stdout);
        Assert.Equal(0, _xld.Xl("token-revoke", "it-read").ExitCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Post(c, "info")).Item1);
        Assert.DoesNotContain("it-read", _xld.Xl("token-list").Stdout);
    }

    [Fact]
    public async Task TokenManagementIsNotAvailableOverHttp()
    {
        var (_, json) = await Post(Client(Token("it-admin2")), "token-create", new { name = "sneaky" });
        Assert.False(json.GetProperty("ok").GetBoolean());
        Assert.Contains("only available on xld's unix socket", json.GetProperty("error").GetString());
    }

    [Fact]
    public async Task MalformedBodiesGet400()
    {
        using var r = await Client(Token("it-admin3")).PostAsync("list", new StringContent("{not json", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
    }

    [SkippableFact]
    public async Task TheConsoleStreamsOverAWebSocket()
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, "ws.cfg");
        File.WriteAllText(cfg, $"name=\"ws\"\ntype=\"hvm\"\nkernel=\"{Paths.HvmGuest}\"\nmemory=16\n");
        Assert.Equal(0, _xld.Xl("create", cfg).ExitCode);
        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", "Bearer " + Token("it-ws"));
        try
        {
            await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{_xld.HttpPort}/api/v1/console/ws"), CancellationToken.None);
        }
        catch (WebSocketException e)
        {
            throw new InvalidOperationException($"{e.Message}\nxl list:\n{_xld.Xl("list").Stdout}\nxl dmesg:\n{_xld.Xl("dmesg").Stdout}\nxld:\n{_xld.XldOutput}", e);
        }
        var seen = new StringBuilder();
        var buf = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        bool sentHello = false;
        while (!seen.ToString().Contains("hello from the guest"))
        {
            var r = await ws.ReceiveAsync(buf, cts.Token);
            seen.Append(Encoding.UTF8.GetString(buf, 0, r.Count));
            if (!sentHello && seen.ToString().Contains("ready"))
            {
                await ws.SendAsync("hello\r"u8.ToArray(), WebSocketMessageType.Binary, true, cts.Token);
                sentHello = true;
            }
        }
        Assert.Equal(0, _xld.Xl("destroy", "ws").ExitCode);
    }
}
