using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace XenSharp.Panel.Xld;

/// <summary>The shapes of xld's HTTP API that the panel reads (mirrors XenSharp.Api's Protocol without linking it: the panel ships apart from hosts).</summary>
public sealed record XldDomain(string Name, uint Id, ulong MemoryMiB, ulong MaxMemoryMiB, int Vcpus, string State, double CpuSeconds,
    string Type, string Uuid, string? ShutdownReason, double UptimeSeconds);

/// <summary>
/// One domain's row of xld's <c>stats</c>: running totals since the domain was built (they restart with it; a new
/// <see cref="Id"/> says so). Net directions are the guest's: Tx is what the VPS sent.
/// </summary>
public sealed record XldStats(string Name, uint Id, double CpuSeconds, ulong AllocatedBytes, int Nets, long NetTxBytes, long NetRxBytes,
    int Vbds, long VbdReadBytes, long VbdWriteBytes, DateTime AtUtc);

public sealed record XldHostInfo(string Host, string Release, int NrCpus, ulong TotalMemoryMiB, ulong FreeMemoryMiB, string XenVersion, string Accelerator, double UptimeSeconds);

/// <summary>A VPS disk in the host's disk directory (xld's disk-create / disk-list).</summary>
public sealed record XldDisk(string Name, string Path, long SizeBytes, long AllocatedBytes);

public sealed record XldCreateResult(uint DomainId, string Name, IReadOnlyList<string> Warnings);

/// <summary>An error xld reported ({"ok":false}) or a failure to reach it; the message is shown to the user.</summary>
public sealed class XldException(string message, bool unreachable = false) : Exception(message)
{
    public bool Unreachable { get; } = unreachable;
}

/// <summary>One host's xld over HTTP(S) with its bearer token.</summary>
public sealed class XldClient(HttpClient http, Uri baseUri, string token)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    private sealed record Reply(bool Ok, JsonElement? Result, string? Error);

    public async Task<JsonElement?> CallAsync(string command, object? args, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, $"api/v1/{command}"))
        {
            // Buffered, so the request carries a Content-Length rather than a chunked body.
            Content = new StringContent(JsonSerializer.Serialize(args ?? new { }, Json), System.Text.Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        HttpResponseMessage resp;
        try { resp = await http.SendAsync(req, ct); }
        catch (HttpRequestException e) { throw new XldException($"host unreachable: {e.Message}", unreachable: true); }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested) { throw new XldException("host did not answer in time", unreachable: true); }
        using (resp)
        {
            if (resp.StatusCode == System.Net.HttpStatusCode.Unauthorized) throw new XldException("host rejected the panel's token (401)", unreachable: true);
            if (resp.StatusCode == System.Net.HttpStatusCode.Forbidden) throw new XldException("the panel's token on this host lacks admin scope (403)");
            Reply? reply;
            try { reply = await resp.Content.ReadFromJsonAsync<Reply>(Json, ct); }
            catch (JsonException) { throw new XldException($"host answered {(int)resp.StatusCode} without a JSON reply", unreachable: true); }
            if (reply is null) throw new XldException("empty reply from host");
            if (!reply.Ok) throw new XldException(reply.Error ?? "xld reported an error");
            return reply.Result;
        }
    }

    public async Task<T> CallAsync<T>(string command, object? args, CancellationToken ct) =>
        (await CallAsync(command, args, ct)) is { } r && r.ValueKind != JsonValueKind.Null
            ? r.Deserialize<T>(Json) ?? throw new XldException($"{command}: empty result")
            : throw new XldException($"{command}: no result");

    public async Task<string> VersionAsync(CancellationToken ct) => (await CallAsync("version", null, ct))?.ToString() ?? "";
    public Task<XldHostInfo> InfoAsync(CancellationToken ct) => CallAsync<XldHostInfo>("info", null, ct);
    public Task<List<XldDomain>> ListAsync(CancellationToken ct) => CallAsync<List<XldDomain>>("list", null, ct);
    public Task<XldCreateResult> CreateAsync(string configText, string configPath, CancellationToken ct) =>
        CallAsync<XldCreateResult>("create", new { configText, configPath, overrides = Array.Empty<string>(), paused = false, workingDirectory = "/" }, ct);
    public Task DestroyAsync(string domain, CancellationToken ct) => CallAsync("destroy", new { domain }, ct);
    public Task ShutdownAsync(string domain, bool reboot, CancellationToken ct) =>
        CallAsync("shutdown", new { domain, reboot, wait = false, force = false, timeoutSeconds = 60 }, ct);
    public Task RenameAsync(string domain, string newName, CancellationToken ct) => CallAsync("rename", new { domain, newName }, ct);
    /// <summary>Every domain's resource counters (xld's <c>stats</c>).</summary>
    public Task<List<XldStats>> StatsAsync(CancellationToken ct) => CallAsync<List<XldStats>>("stats", null, ct);
    /// <summary>The running domain's new memory target (<c>xl mem-set</c>): the guest's balloon driver follows it.</summary>
    public Task MemSetAsync(string domain, int memoryMiB, CancellationToken ct) =>
        CallAsync("mem-set", new { domain, size = $"{memoryMiB}m" }, ct);

    /// <summary>
    /// Makes the host's disk <paramref name="name"/>: a sparse copy of <paramref name="template"/> (a path on the host)
    /// grown to <paramref name="sizeBytes"/>, or an empty one; <paramref name="replace"/> overwrites an existing disk.
    /// </summary>
    public Task<XldDisk> DiskCreateAsync(string name, long sizeBytes, string? template, bool replace, CancellationToken ct) =>
        CallAsync<XldDisk>("disk-create", new { name, sizeBytes, template, replace }, ct);
    public Task DiskDeleteAsync(string name, CancellationToken ct) => CallAsync("disk-delete", new { name }, ct);
    public Task<List<XldDisk>> DiskListAsync(CancellationToken ct) => CallAsync<List<XldDisk>>("disk-list", null, ct);

    /// <summary>Opens xld's console WebSocket for <paramref name="domain"/>.</summary>
    public async Task<ClientWebSocket> OpenConsoleAsync(string domain, CancellationToken ct)
    {
        var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        var b = new UriBuilder(new Uri(baseUri, $"api/v1/console/{Uri.EscapeDataString(domain)}"));
        b.Scheme = b.Scheme == "https" ? "wss" : "ws";
        try { await ws.ConnectAsync(b.Uri, ct); }
        catch (WebSocketException e) { ws.Dispose(); throw new XldException($"console unavailable: {e.Message}", unreachable: true); }
        return ws;
    }
}

/// <summary>Hands out an <see cref="XldClient"/> per host over one shared HttpClient.</summary>
public sealed class XldClients(IHttpClientFactory factory)
{
    public XldClient For(Data.XenHost host)
    {
        var url = host.Url.EndsWith('/') ? host.Url : host.Url + "/";
        return new XldClient(factory.CreateClient("xld"), new Uri(url), host.Token);
    }
}
