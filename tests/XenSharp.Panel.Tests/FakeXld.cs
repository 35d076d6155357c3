using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace XenSharp.Panel.Tests;

/// <summary>
/// A stand-in for xld's HTTP API, for the fast API tests: the contract's commands over in-memory domains whose
/// CPU time grows with the clock, and a console WebSocket that replays a boot banner and echoes typing.
/// </summary>
public sealed class FakeXld : IAsyncDisposable
{
    private sealed record Dom(uint Id, string Name, int Memory, int Vcpus, DateTime Started, string Config, int MaxMemory);

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, Dom> _doms = new();
    private uint _nextId = 1;
    public const string Token = "fake-xld-token";
    public string Url { get; private set; } = "";
    public bool FailCreate { get; set; }
    /// <summary>Refuse every mem-set, as a host whose domain has a lower maxmem would.</summary>
    public bool RefuseMemSet { get; set; }
    public ConcurrentQueue<string> Commands { get; } = new();
    /// <summary>Refuse every disk-create, as a host out of space would.</summary>
    public bool FailDiskCreate { get; set; }
    /// <summary>Every disk-create and disk-delete, in order, with its arguments.</summary>
    public ConcurrentQueue<DiskCall> DiskCalls { get; } = new();
    private readonly ConcurrentDictionary<string, long> _disks = new();
    public const string DiskDir = "/fake/disks";
    public string? LastConfig { get; private set; }
    private static string? LastConfigStatic;

    public FakeXld()
    {
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        b.WebHost.UseUrls("http://127.0.0.1:0");
        _app = b.Build();
        _app.UseWebSockets();
        _app.MapPost("/api/v1/{command}", async (string command, HttpContext http) =>
        {
            if (http.Request.Headers.Authorization != $"Bearer {Token}") return Results.Json(new { ok = false, error = "bad token" }, statusCode: 401);
            var args = http.Request.ContentLength is > 0 || http.Request.Headers.TransferEncoding.Count > 0 ? await JsonSerializer.DeserializeAsync<JsonElement>(http.Request.Body) : default;
            Commands.Enqueue(command);
            string Arg(string n) => args.ValueKind == JsonValueKind.Object && args.TryGetProperty(n, out var v) ? v.ToString() : "";
            return command switch
            {
                "version" => Ok(new { protocol = 1, xld = "fake" }),
                "info" => Ok(new { host = "fake", release = "6.1", machine = "x86_64", nrCpus = 2, totalMemoryMiB = 4096, freeMemoryMiB = 3000, xenVersion = "4.19-fake", accelerator = "software", uptimeSeconds = 100 }),
                "list" => Ok(_doms.Values.OrderBy(d => d.Id).Select(d => new
                {
                    name = d.Name, id = d.Id, memoryMiB = d.Memory, maxMemoryMiB = d.Memory, vcpus = d.Vcpus, state = "r-----",
                    cpuSeconds = (DateTime.UtcNow - d.Started).TotalSeconds * 0.25, type = "hvm", uuid = Guid.Empty, uptimeSeconds = (DateTime.UtcNow - d.Started).TotalSeconds,
                })),
                "create" => Guard(() => Create(Arg("configText"))),
                // Counters that grow with the domain's uptime: 10 kB/s received, 5 kB/s sent, 40 kB/s read, 2 kB/s written.
                "stats" => Ok(_doms.Values.OrderBy(d => d.Id).Select(d => (d, t: (DateTime.UtcNow - d.Started).TotalSeconds) is var (dd, t) ? new
                {
                    name = dd.Name, id = dd.Id, cpuSeconds = t * 0.25, allocatedBytes = (long)dd.Memory << 20, nets = 1, netTxBytes = (long)(t * 5000),
                    netRxBytes = (long)(t * 10000), vbds = 1, vbdReadBytes = (long)(t * 40000), vbdWriteBytes = (long)(t * 2000), atUtc = DateTime.UtcNow,
                } : null)),
                "mem-set" => !_doms.TryGetValue(Arg("domain"), out var m) ? Fail($"no domain {Arg("domain")}")
                    : RefuseMemSet ? Fail("memory target is above the domain's maxmem (simulated)")
                    : int.Parse(Arg("size").TrimEnd('m')) is var mib && mib > m.MaxMemory ? Fail($"memory target {mib} MiB is above maxmem {m.MaxMemory} MiB")
                    : Set(m with { Memory = mib }),
                "destroy" or "shutdown" when Arg("reboot") == "true" || Arg("reboot") == "True" =>
                    _doms.TryGetValue(Arg("domain"), out var d) ? Set(d with { Started = DateTime.UtcNow }) : Fail($"no domain {Arg("domain")}"),
                "destroy" or "shutdown" => _doms.TryRemove(Arg("domain"), out _) ? Ok(null) : Fail($"no domain {Arg("domain")}"),
                "disk-create" => CreateDisk(new DiskCall(command, Arg("name"), long.Parse(Arg("sizeBytes")), args.TryGetProperty("template", out var t) ? t.GetString() : null,
                    args.TryGetProperty("replace", out var rp) && rp.GetBoolean())),
                "disk-delete" => DeleteDisk(new DiskCall(command, Arg("name"), 0, null, false)),
                "disk-list" => Ok(_disks.OrderBy(d => d.Key).Select(d => new { name = d.Key, path = DiskPath(d.Key), sizeBytes = d.Value, allocatedBytes = 0 })),
                "rename" => _doms.TryRemove(Arg("domain"), out var r) ? Set(r with { Name = Arg("newName") }) : Fail("no such domain"),
                _ => Fail($"unknown command {command}"),
            };
        });
        _app.MapGet("/api/v1/console/{domain}", async (string domain, HttpContext http) =>
        {
            if (http.Request.Headers.Authorization != $"Bearer {Token}" || !_doms.ContainsKey(domain)) { http.Response.StatusCode = 404; return; }
            using var ws = await http.WebSockets.AcceptWebSocketAsync();
            await ws.SendAsync(Encoding.ASCII.GetBytes("XenSharp HVM test guest\r\nready\r\n"), WebSocketMessageType.Binary, true, http.RequestAborted);
            var buf = new byte[1024];
            while (ws.State == WebSocketState.Open)
            {
                WebSocketReceiveResult r;
                try { r = await ws.ReceiveAsync(buf, http.RequestAborted); } catch (Exception) { return; }
                if (r.MessageType == WebSocketMessageType.Close) return;
                await ws.SendAsync(buf.AsMemory(0, r.Count), WebSocketMessageType.Binary, true, http.RequestAborted);
            }
        });
    }

    private static IResult Guard(Func<IResult> f)
    {
        try { return f(); } catch (Exception e) { return Fail(e.Message + " in config: " + LastConfigStatic); }
    }

    private static IResult Ok(object? result) => Results.Json(new { ok = true, result });
    private static IResult Fail(string e) => Results.Json(new { ok = false, error = e });
    private IResult Set(Dom d) { _doms[d.Name] = d; return Ok(null); }

    private IResult Create(string cfg)
    {
        LastConfig = cfg; LastConfigStatic = cfg;
        if (FailCreate) return Fail("out of memory (simulated)");
        var name = Regex.Match(cfg, "name = \"([^\"]+)\"").Groups[1].Value;
        if (_doms.ContainsKey(name)) return Fail($"domain {name} exists");
        var mem = int.Parse(Regex.Match(cfg, @"memory = (\d+)").Groups[1].Value);
        var max = Regex.Match(cfg, @"maxmem = (\d+)") is { Success: true } mm ? int.Parse(mm.Groups[1].Value) : mem;
        var d = new Dom(Interlocked.Increment(ref _nextId), name, mem, int.Parse(Regex.Match(cfg, @"vcpus = (\d+)").Groups[1].Value), DateTime.UtcNow, cfg, max);
        _doms[name] = d;
        return Ok(new { domainId = d.Id, name, warnings = Array.Empty<string>() });
    }

    public sealed record DiskCall(string Command, string Name, long SizeBytes, string? Template, bool Replace);

    public static string DiskPath(string name) => $"{DiskDir}/{name}.img";

    private IResult CreateDisk(DiskCall c)
    {
        DiskCalls.Enqueue(c);
        if (FailDiskCreate) return Fail("no space left on the disk directory (simulated)");
        if (!c.Replace && _disks.ContainsKey(c.Name)) return Fail($"disk '{c.Name}' exists ({DiskPath(c.Name)}); ask for replace to overwrite it");
        _disks[c.Name] = c.SizeBytes;
        return Ok(new { name = c.Name, path = DiskPath(c.Name), sizeBytes = c.SizeBytes, allocatedBytes = 0 });
    }

    private IResult DeleteDisk(DiskCall c)
    {
        DiskCalls.Enqueue(c);
        return _disks.TryRemove(c.Name, out _) ? Ok(null) : Fail($"no such disk '{c.Name}' ({DiskPath(c.Name)})");
    }

    public bool HasDisk(string name) => _disks.ContainsKey(name);
    /// <summary>Deletes a disk behind the panel's back, as an admin on the host might.</summary>
    public void LoseDisk(string name) => _disks.TryRemove(name, out _);
    /// <summary>The config the running domain was created from.</summary>
    public string ConfigOf(string name) => _doms[name].Config;

    public bool Has(string name) => _doms.ContainsKey(name);
    public int MemoryOf(string name) => _doms[name].Memory;

    public async Task StartAsync()
    {
        await _app.StartAsync();
        Url = _app.Urls.First();
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
