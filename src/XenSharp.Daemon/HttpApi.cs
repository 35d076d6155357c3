using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using XenSharp.Api;

namespace XenSharp.Daemon;

/// <summary>
/// xld's HTTP API for the panel: the same commands as the unix socket, as <c>POST /api/v1/{command}</c> with
/// the arguments as the JSON body, and the console as a WebSocket at <c>GET /api/v1/console/{domain}</c>.
/// Every request needs a bearer token; read-scope tokens may only use commands that change nothing.
/// </summary>
public sealed class HttpApi : IAsyncDisposable
{
    private readonly WebApplication _app;

    public HttpApi(string listen, string? certPath, string? keyPath, ControlApi api, TokenStore tokens, Action<string> log)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            var (host, port) = ParseListen(listen);
            k.Listen(host, port, l =>
            {
                if (certPath is not null)
                    l.UseHttps(System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(certPath, keyPath));
            });
        });
        _app = builder.Build();
        _app.UseWebSockets();

        _app.MapPost("/api/v1/{command}", async (string command, HttpContext http) =>
        {
            var who = Authorize(http, tokens, command);
            if (who.Failure is { } failure) return failure;
            JsonElement? args = null;
            if (http.Request.ContentLength is > 0 || http.Request.Headers.TransferEncoding.Count > 0)
            {
                try
                {
                    args = await JsonSerializer.DeserializeAsync<JsonElement>(http.Request.Body, Protocol.Json, http.RequestAborted);
                }
                catch (JsonException e)
                {
                    return Results.Json(Response.Failure($"malformed JSON body: {e.Message}"), Protocol.Json, statusCode: 400);
                }
            }
            if (command == "console")
                return Results.Json(Response.Failure("the console is a WebSocket: GET /api/v1/console/{domain}"), Protocol.Json, statusCode: 400);
            var outcome = await api.HandleAsync(new Request(command, args), who.Caller!, http.RequestAborted);
            return Results.Json(outcome.Response, Protocol.Json);
        });

        _app.MapGet("/api/v1/console/{domain}", async (string domain, HttpContext http) =>
        {
            var who = Authorize(http, tokens, "console");
            if (who.Failure is { } failure)
            {
                await failure.ExecuteAsync(http);
                return;
            }
            if (!http.WebSockets.IsWebSocketRequest)
            {
                http.Response.StatusCode = 400;
                await http.Response.WriteAsync("expected a WebSocket upgrade");
                return;
            }
            var args = JsonSerializer.SerializeToElement(new DomainArgs(domain), Protocol.Json);
            var outcome = await api.HandleAsync(new Request("console", args), who.Caller!, http.RequestAborted);
            if (!outcome.Response.Ok || outcome.Stream is null)
            {
                http.Response.StatusCode = 404;
                await http.Response.WriteAsJsonAsync(outcome.Response, Protocol.Json);
                return;
            }
            using var ws = await http.WebSockets.AcceptWebSocketAsync();
            await using var stream = WebSocketStream.Create(ws, WebSocketMessageType.Binary, ownsWebSocket: false);
            try
            {
                await outcome.Stream(stream, new LineReader(stream), http.RequestAborted);
            }
            catch (WebSocketException) { }
            if (ws.State == WebSocketState.Open)
                await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "console closed", CancellationToken.None);
        });
        // Prometheus text format, for the panel's graphs and any monitoring system (bearer token, read scope is enough).
        _app.MapGet("/metrics", (HttpContext http) =>
        {
            var who = Authorize(http, tokens, "metrics");
            if (who.Failure is { } failure) return failure;
            return Results.Text(Metrics.Render(api.Toolstack), "text/plain; version=0.0.4");
        });
        log($"HTTP API on {(certPath is null ? "http" : "https")}://{listen}/api/v1/");
    }

    public Task StartAsync() => _app.StartAsync();

    private sealed record Authorization(Caller? Caller, IResult? Failure);

    private static Authorization Authorize(HttpContext http, TokenStore tokens, string command)
    {
        string header = http.Request.Headers.Authorization.ToString();
        var from = http.Connection.RemoteIpAddress?.ToString() ?? "?";
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal) || tokens.Validate(header[7..].Trim()) is not { } token)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return new(null, Results.Json(Response.Failure("a valid bearer token is required (create one with 'xl token-create NAME')"), Protocol.Json, statusCode: 401));
        }
        if (token.Scope == TokenScope.Read && ControlApi.Mutating.Contains(command))
            return new(null, Results.Json(Response.Failure($"token '{token.Name}' is read-only: '{command}' changes the host"), Protocol.Json, statusCode: 403));
        return new(new Caller(-1, -1, $"http token '{token.Name}' from {from}"), null);
    }

    private static (System.Net.IPAddress, int) ParseListen(string listen)
    {
        int colon = listen.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(listen[(colon + 1)..], out int port) || port is < 0 or > 65535)
            throw new ArgumentException($"--http {listen}: expected ADDRESS:PORT, e.g. 127.0.0.1:8750");
        var host = listen[..colon].Trim('[', ']');
        var address = host is "*" or "0.0.0.0" ? System.Net.IPAddress.Any
            : System.Net.IPAddress.TryParse(host, out var a) ? a
            : host == "localhost" ? System.Net.IPAddress.Loopback
            : throw new ArgumentException($"--http {listen}: '{host}' is not an IP address");
        return (address, port);
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
