namespace XenSharp.Integration.Tests;

/// <summary>xl sched-credit and vcpu-pin reach the host: the domain's CPU cgroup and the vCPU thread's affinity.</summary>
public sealed class SchedulingTests : IClassFixture<XldFixture>
{
    private readonly XldFixture _xld;

    public SchedulingTests(XldFixture xld) => _xld = xld;

    private string Create(string name, string settings = "") => _xld.CreateHvm(name, settings);

    [SkippableFact]
    public void WeightAndCapFromTheConfigAndFromXlReachTheCgroup()
    {
        Skip.IfNot(File.Exists("/sys/fs/cgroup/cpu/cpu.shares"), "no cgroup v1 cpu controller on this host");
        string id = Create("sched-a", "cpu_weight = 512\ncap = 50");
        string dir = Path.Combine("/sys/fs/cgroup/cpu", _xld.CgroupName, $"d{id}");
        Assert.Equal("2048", File.ReadAllText(Path.Combine(dir, "cpu.shares")).Trim());
        Assert.Equal("50000", File.ReadAllText(Path.Combine(dir, "cpu.cfs_quota_us")).Trim());
        XldFixture.WaitUntil(() => File.ReadAllText(Path.Combine(dir, "tasks")).Trim().Length > 0, TimeSpan.FromSeconds(10), () => "the vCPU thread in the group");

        Assert.Equal(0, _xld.Xl("sched-credit", "-d", "sched-a", "-w", "128", "-c", "0").ExitCode);
        Assert.Equal("512", File.ReadAllText(Path.Combine(dir, "cpu.shares")).Trim());
        Assert.Equal("-1", File.ReadAllText(Path.Combine(dir, "cpu.cfs_quota_us")).Trim());
        Assert.Matches(@"sched-a\s+\d+\s+128\s+0", _xld.Xl("sched-credit").Stdout);

        var bad = _xld.Xl("sched-credit", "-d", "sched-a", "-w", "70000");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("out of range", bad.Stderr);
        Assert.Equal(0, _xld.Xl("destroy", "sched-a").ExitCode);
        XldFixture.WaitUntil(() => !Directory.Exists(dir), TimeSpan.FromSeconds(10), () => $"{dir} to be removed");
    }

    [SkippableFact]
    public void PinningSetsTheVcpuThreadsAffinity()
    {
        Skip.If(Environment.ProcessorCount < 2, "pinning needs at least two host CPUs to show");
        string id = Create("pin-a", "cpus = \"1\"");
        Assert.Equal("1", AffinityOf(int.Parse(id)));
        Assert.Contains(" 1 / all", _xld.Xl("vcpu-list", "pin-a").Stdout);
        Assert.Equal(0, _xld.Xl("vcpu-pin", "pin-a", "0", "0").ExitCode);
        Assert.Equal("0", AffinityOf(int.Parse(id)));
        Assert.Equal(0, _xld.Xl("vcpu-pin", "pin-a", "all", "all").ExitCode);
        Assert.Equal($"0-{Environment.ProcessorCount - 1}", AffinityOf(int.Parse(id)));
        Assert.Equal(1, _xld.Xl("vcpu-pin", "pin-a", "0", "0-").ExitCode);
        Assert.Equal(0, _xld.Xl("destroy", "pin-a").ExitCode);
    }

    /// <summary>The Cpus_allowed_list of xld's thread named d&lt;id&gt;v0.</summary>
    private string AffinityOf(int domid)
    {
        string? result = null;
        XldFixture.WaitUntil(() =>
        {
            foreach (var task in Directory.GetDirectories($"/proc/{_xld.XldProcess.Id}/task"))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(task, "comm")).Trim() != $"d{domid}v0") continue;
                    result = File.ReadLines(Path.Combine(task, "status")).First(l => l.StartsWith("Cpus_allowed_list:")).Split(':')[1].Trim();
                    return true;
                }
                catch (IOException) { }
            }
            return false;
        }, TimeSpan.FromSeconds(10), () => $"thread d{domid}v0");
        return result!;
    }
}
