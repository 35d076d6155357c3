using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using XenSharp.Api;

namespace XenSharp.Integration.Tests;

/// <summary>
/// Resource figures end to end with a real xld: a PV guest's balloon gives host memory back (the domain's memfd
/// shrinks, as the stats API reports it), and the per-vif/vbd counters reach the stats API, xl top and /metrics.
/// The guest is guests/pv-res.
/// </summary>
public sealed class BalloonAndStatsTests : IClassFixture<XldFixture>
{
    private static readonly string Guest = Path.Combine(Paths.Repo, "guests", "build", "pv-res.elf");
    private readonly XldFixture _xld;

    public BalloonAndStatsTests(XldFixture xld) => _xld = xld;

    private void CreatePv(string name, int memoryMiB, string extra, string settings = "")
    {
        Skip.IfNot(File.Exists(Guest), $"{Guest} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, $"{name}.cfg");
        File.WriteAllText(cfg, $"name=\"{name}\"\ntype=\"pv\"\nkernel=\"{Guest}\"\nmemory={memoryMiB}\nextra=\"{extra}\"\non_poweroff=\"destroy\"\n{settings}\n");
        var r = _xld.Xl("create", cfg);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    private HttpClient Http(string tokenName)
    {
        string token = _xld.Xl("token-create", tokenName, "--scope", "read").Stdout.Trim();
        var http = new HttpClient { BaseAddress = _xld.HttpBase };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    private static async Task<DomainStats> Stats(HttpClient http, string domain)
    {
        using var r = await http.PostAsync("stats", new StringContent(JsonSerializer.Serialize(new StatsArgs(domain), Protocol.Json), Encoding.UTF8, "application/json"));
        var reply = Protocol.Deserialize<Response>(await r.Content.ReadAsStringAsync());
        Assert.True(reply.Ok, reply.Error);
        return Assert.Single(reply.ResultAs<DomainStats[]>()!);
    }

    private void WaitForConsole(string name, string text) =>
        XldFixture.WaitUntil(() => _xld.ConsoleLog(name).Contains(text), TimeSpan.FromSeconds(60), () => $"'{text}' on {name}'s console:\n{_xld.ConsoleLog(name)}\n{_xld.Xl("dmesg").Stdout}");

    [SkippableFact]
    public async Task BalloonDownReturnsHostMemoryAndBalloonUpTakesItAgain()
    {
        using var http = Http("balloon-stats");
        CreatePv("bal-a", memoryMiB: 128, extra: "balloon=64");
        WaitForConsole("bal-a", "PVRES touched 64 MiB");
        ulong touched = (await Stats(http, "bal-a")).AllocatedBytes;
        Assert.True(touched >= 64UL << 20, $"the domain's memfd holds {touched >> 20} MiB after the guest touched 64 MiB");

        _xld.Type("bal-a", "\n");
        WaitForConsole("bal-a", "PVRES down 64 MiB");
        var down = await Stats(http, "bal-a");
        Assert.True(touched - down.AllocatedBytes >= 64UL << 20,
            $"memfd: {touched >> 20} MiB before the balloon, {down.AllocatedBytes >> 20} MiB after giving 64 MiB back");
        Assert.Contains("PVRES pages 16384", _xld.ConsoleLog("bal-a")); // 128 MiB less 64 MiB, in 4 KiB pages

        _xld.Type("bal-a", "\n");
        WaitForConsole("bal-a", "PVRES up 64 MiB");
        var up = await Stats(http, "bal-a");
        Assert.True(up.AllocatedBytes - down.AllocatedBytes >= 64UL << 20, $"memfd: {down.AllocatedBytes >> 20} MiB ballooned, {up.AllocatedBytes >> 20} MiB after taking 64 MiB again");
        Assert.Equal(0, _xld.Xl("destroy", "bal-a").ExitCode);
    }

    [SkippableFact]
    public async Task DeviceCountersReachTheStatsApiTopAndMetrics()
    {
        var img = Path.Combine(_xld.Directory, "stats-disk.img");
        using (var f = File.Create(img)) f.SetLength(4 << 20);
        CreatePv("io-a", memoryMiB: 32, extra: "",
            $"disk = [ \"{img},raw,xvda,rw\" ]\nvif = [ \"mac=00:16:3e:00:00:42,bridge=xsbr-stats\", \"mac=00:16:3e:00:00:43,bridge=xsbr-stats\" ]");
        using var http = Http("io-stats");
        var s = await Stats(http, "io-a");
        Assert.Equal(2, s.Nets);
        Assert.Equal(1, s.Vbds);
        Assert.Equal(["vbd:xvda", "vif:0", "vif:1"], s.Devices.Select(d => $"{d.Kind}:{(d.Kind == "vbd" ? d.Name : d.DevId.ToString())}").Order());
        // No frontend moves data in this guest: the totals are the sums of the (zero) device counters.
        Assert.Equal(s.Devices.Where(d => d.Kind == "vif").Sum(d => d.WriteBytes), s.NetTxBytes);
        Assert.Equal(0, s.VbdReadRequests + s.VbdWriteRequests);
        Assert.True(s.AllocatedBytes > 0 && s.AllocatedBytes <= 32UL << 20);

        // Every domain when none is named.
        using (var r = await http.PostAsync("stats", null))
            Assert.Contains(Protocol.Deserialize<Response>(await r.Content.ReadAsStringAsync()).ResultAs<DomainStats[]>()!, x => x.Name == "io-a");

        var top = _xld.Xl("top", "-b", "-i", "1");
        Assert.Equal(0, top.ExitCode);
        // NETS 2, NETTX(k) 0, NETRX(k) 0, VBDS 1, VBD_OO 0, VBD_RD 0, VBD_WR 0
        Assert.Matches(@"io-a\s+\S+(\s+[\d.]+){7}\s+2\s+0\s+0\s+1\s+0\s+0\s+0", top.Stdout);

        var text = await new HttpClient { DefaultRequestHeaders = { Authorization = http.DefaultRequestHeaders.Authorization } }
            .GetStringAsync($"http://127.0.0.1:{_xld.HttpPort}/metrics");
        Assert.Contains("# TYPE xensharp_domain_net_tx_bytes_total counter", text);
        Assert.Matches(@"xensharp_domain_net_rx_bytes_total\{domain=""io-a"",domid=""\d+"",devid=""1""\} 0", text);
        Assert.Matches(@"xensharp_domain_vbd_write_requests_total\{domain=""io-a"",domid=""\d+"",devid=""51712""\} 0", text);
        Assert.Matches(@"xensharp_domain_memory_allocated_bytes\{domain=""io-a"",domid=""\d+""\} \d+", text);
        Assert.Equal(0, _xld.Xl("destroy", "io-a").ExitCode);
    }
}
