using System.Net.Http.Headers;

namespace XenSharp.Integration.Tests;

/// <summary>xl mem-set / mem-max, xl top and the Prometheus endpoint against a real xld.</summary>
public sealed class ResourceTests : IClassFixture<XldFixture>
{
    private readonly XldFixture _xld;

    public ResourceTests(XldFixture xld) => _xld = xld;

    private string Create(string name) => _xld.CreateHvm(name, "maxmem=64", memoryMiB: 32);

    [SkippableFact]
    public void MemSetAndMemMaxChangeTargetsWithinLimits()
    {
        string id = Create("mem-a");
        Assert.Equal(0, _xld.Xl("mem-set", "mem-a", "48").ExitCode);
        Assert.Equal("49152", _xld.Xl("xenstore-read", $"/local/domain/{id}/memory/target").Stdout.Trim());
        Assert.Equal("48", _xld.Xl("list", "mem-a").Stdout.Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]);

        var over = _xld.Xl("mem-set", "mem-a", "128m");
        Assert.Equal(1, over.ExitCode);
        Assert.Contains("above domain", over.Stderr);
        Assert.Equal(1, _xld.Xl("mem-set", "mem-a", "12x").ExitCode);

        long free0 = long.Parse(System.Text.RegularExpressions.Regex.Match(_xld.Xl("info").Stdout, @"free_memory\s+: (\d+)").Groups[1].Value);
        Assert.Equal(0, _xld.Xl("mem-max", "mem-a", "1g").ExitCode);
        long free1 = long.Parse(System.Text.RegularExpressions.Regex.Match(_xld.Xl("info").Stdout, @"free_memory\s+: (\d+)").Groups[1].Value);
        Assert.Equal(1024 - 64, free0 - free1);
        Assert.Equal("1048576", _xld.Xl("xenstore-read", $"/local/domain/{id}/memory/static-max").Stdout.Trim());
        var below = _xld.Xl("mem-max", "mem-a", "16");
        Assert.Equal(1, below.ExitCode);
        Assert.Contains("below domain", below.Stderr);
        var huge = _xld.Xl("mem-max", "mem-a", "64t");
        Assert.Equal(1, huge.ExitCode);
        Assert.Contains("host memory is free", huge.Stderr);
        Assert.Equal(0, _xld.Xl("destroy", "mem-a").ExitCode);
    }

    [SkippableFact]
    public void TopInBatchModePrintsFramesWithXentopsColumns()
    {
        Create("top-a");
        var r = _xld.Xl("top", "-b", "-i", "2", "-d", "0.5");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(2, r.Stdout.Split('\n').Count(l => l.TrimStart().StartsWith("NAME  STATE   CPU(sec) CPU(%)")));
        Assert.Matches(@"top-a\s+[-rbpscd]{6}\s+\d+\s+[\d.]+\s+32768", r.Stdout);
        Assert.Equal(0, _xld.Xl("destroy", "top-a").ExitCode);
    }

    [SkippableFact]
    public async Task MetricsAreServedInPrometheusFormat()
    {
        Create("metrics-a");
        string token = _xld.Xl("token-create", "metrics", "--scope", "read").Stdout.Trim();
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var text = await http.GetStringAsync($"http://127.0.0.1:{_xld.HttpPort}/metrics");
        Assert.Contains("# TYPE xensharp_domain_cpu_seconds_total counter", text);
        Assert.Matches(@"xensharp_domain_memory_target_bytes\{domain=""metrics-a"",domid=""\d+""\} 33554432", text);
        Assert.Matches(@"xensharp_host_free_memory_bytes \d+", text);
        Assert.Equal(0, _xld.Xl("destroy", "metrics-a").ExitCode);
    }

    [SkippableFact]
    public void VcpuSetWritesAvailabilityWithinMaxvcpusForPvOnly()
    {
        var kernel = Path.Combine(Paths.Repo, "guests", "build", "pv-test.elf");
        Skip.IfNot(File.Exists(kernel), $"{kernel} is not built (run make -C guests)");
        var cfg = Path.Combine(_xld.Directory, "vs-pv.cfg");
        // The test kernel blocks in its event loop (reason 9 is not a shutdown it knows), so the domain stays up.
        File.WriteAllText(cfg, $"name=\"vs-pv\"\ntype=\"pv\"\nkernel=\"{kernel}\"\nextra=\"reason=0\"\nmemory=32\nvcpus=2\nmaxvcpus=3\non_poweroff=\"preserve\"\n");
        Assert.Equal(0, _xld.Xl("create", "-p", cfg).ExitCode);
        string id = _xld.DomainId("vs-pv");
        string Avail(int n) => _xld.Xl("xenstore-read", $"/local/domain/{id}/cpu/{n}/availability").Stdout.Trim();
        // vcpus=2: the second vCPU is online for the guest to bring up, though PV secondaries start down.
        Assert.Equal(["online", "online", "offline"], new[] { Avail(0), Avail(1), Avail(2) });
        Assert.Equal(0, _xld.Xl("vcpu-set", "vs-pv", "1").ExitCode);
        Assert.Equal(["online", "offline", "offline"], new[] { Avail(0), Avail(1), Avail(2) });
        Assert.Equal(0, _xld.Xl("vcpu-set", "vs-pv", "3").ExitCode);
        Assert.Equal(["online", "online", "online"], new[] { Avail(0), Avail(1), Avail(2) });
        Assert.Equal(0, _xld.Xl("vcpu-set", "vs-pv", "2").ExitCode);
        Assert.Equal(["online", "online", "offline"], new[] { Avail(0), Avail(1), Avail(2) });
        var over = _xld.Xl("vcpu-set", "vs-pv", "4");
        Assert.Equal(1, over.ExitCode);
        Assert.Contains("1 to 3 vCPUs", over.Stderr);
        Assert.Equal(2, _xld.Xl("vcpu-set", "vs-pv", "two").ExitCode);
        Assert.Equal(0, _xld.Xl("destroy", "vs-pv").ExitCode);

        Create("vs-hvm");
        var hvm = _xld.Xl("vcpu-set", "vs-hvm", "1");
        Assert.Equal(1, hvm.ExitCode);
        Assert.Contains("HVM", hvm.Stderr);
        Assert.Equal(0, _xld.Xl("destroy", "vs-hvm").ExitCode);
    }
}
