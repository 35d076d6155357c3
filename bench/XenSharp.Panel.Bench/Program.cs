using System.Diagnostics;
using System.Net.Http.Headers;
using XenSharp.Panel;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;

// Page-load budget: the server-rendered VPS list with 500 VPSes (all on one page) against a baseline measured in
// the same run, the same query returned as JSON by the API. Goal: the HTML page under 300 ms.
const int Vpses = 500, Warmup = 20, Runs = 100;
var dir = Path.Combine(Path.GetTempPath(), "xsp-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(dir);
var app = PanelApp.Build(["--urls", "http://127.0.0.1:0", $"--ConnectionStrings:Panel=Data Source={dir}/panel.db", "--Panel:Sampler=false",
    "--Logging:LogLevel:Default=Warning"]);
await app.StartAsync();
var url = app.Urls.First().TrimEnd('/');
var store = app.Services.GetRequiredService<Store>();

var sw = Stopwatch.StartNew();
var admin = store.CreateUser("admin", Passwords.Hash("benchmark-password"), Roles.Admin, "");
var owners = Enumerable.Range(0, 50).Select(i => store.CreateUser($"client{i:D2}", "x", Roles.Client, "")).ToArray();
var hosts = Enumerable.Range(0, 5).Select(i => store.CreateHost($"host{i}", $"http://127.0.0.1:{9 + i}", "t", false)).ToArray();
var plans = new[] { 512, 1024, 2048, 4096 }.Select((m, i) => store.GetPlan(store.CreatePlan(new Plan(0, $"plan{i}", m, 1 + i, 10 * (i + 1), 256, 0, 1000, 100)))!).ToArray();
var tpl = store.CreateTemplate(new OsTemplate(0, "debian", "pv", "/boot/vmlinuz", "/boot/initrd.img", "/srv/images/debian.img", "console=hvc0"));
store.CreatePool(new IpPool(0, "pool", "10.0.0.0/16", "10.0.0.1", "10.0.1.0", "10.0.3.255", null));
var ids = new List<long>();
for (var i = 0; i < Vpses; i++) ids.Add(store.CreateVps($"vps-{i:D4}", owners[i % owners.Length], hosts[i % hosts.Length], plans[i % plans.Length], tpl));
// A day's worth of samples at one a minute for each VPS, as a busy panel would hold.
for (var round = 0; round < 1440; round += 24)
    store.AddSamples(ids.Select(id => (id, round * 0.5, 512L, true)));
Console.WriteLine($"seeded {Vpses} VPSes, {owners.Length} clients, {hosts.Length} hosts and {ids.Count * 60} samples in {sw.ElapsedMilliseconds} ms");

var (secret, hash) = ApiTokens.NewSecret();
var token = ApiTokens.Format(store.CreateApiToken(admin, "bench", hash, "admin"), secret);
using var http = new HttpClient();
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

async Task<(double Median, double P95, int Bytes)> Measure(string path)
{
    var times = new List<double>();
    var bytes = 0;
    for (var i = 0; i < Warmup + Runs; i++)
    {
        var t = Stopwatch.StartNew();
        using var r = await http.GetAsync(url + path);
        var body = await r.Content.ReadAsStringAsync();
        t.Stop();
        if (!r.IsSuccessStatusCode) throw new InvalidOperationException($"{path}: {(int)r.StatusCode}");
        bytes = body.Length;
        if (i >= Warmup) times.Add(t.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    return (times[times.Count / 2], times[(int)(times.Count * 0.95)], bytes);
}

var json = await Measure($"/api/v1/vps?pageSize={Vpses}&sort=name");
var html = await Measure($"/vps?size={Vpses}&sort=name");
Console.WriteLine($"baseline  GET /api/v1/vps (JSON, {Vpses} rows): median {json.Median:0.0} ms, p95 {json.P95:0.0} ms, {json.Bytes / 1024} KiB");
Console.WriteLine($"page      GET /vps (HTML, {Vpses} rows):        median {html.Median:0.0} ms, p95 {html.P95:0.0} ms, {html.Bytes / 1024} KiB");
Console.WriteLine($"ratio page/baseline (median): {html.Median / json.Median:0.00}x; budget 300 ms: {(html.P95 < 300 ? "met" : "MISSED")} (p95 {html.P95:0.0} ms)");
await app.StopAsync();
await app.DisposeAsync();
Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
Directory.Delete(dir, true);
return html.P95 < 300 ? 0 : 1;
