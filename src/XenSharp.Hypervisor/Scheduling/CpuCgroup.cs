namespace XenSharp.Hypervisor.Scheduling;

/// <summary>
/// The host's CPU controller, as xld can use it: cgroup v1 (<c>cpu.shares</c>, <c>cpu.cfs_quota_us</c>, a thread
/// id written to <c>tasks</c>) or v2 (<c>cpu.weight</c>, <c>cpu.max</c>, threaded cgroups). Each domain gets a child
/// group <c>xensharp/d&lt;id&gt;</c> holding its vCPU threads.
/// </summary>
public abstract class CpuCgroup
{
    /// <summary>Xen's credit scheduler default weight; the host's default share maps onto it.</summary>
    public const int DefaultWeight = 256;
    public const int CfsPeriodMicroseconds = 100_000;

    public abstract string Description { get; }
    public abstract string Root { get; }

    public string DomainPath(uint domid) => Path.Combine(Root, $"d{domid}");

    public abstract void CreateDomain(uint domid);
    public abstract void SetWeight(uint domid, int weight);
    /// <summary><paramref name="capPercent"/> is in percent of one host CPU; 0 means no cap.</summary>
    public abstract void SetCap(uint domid, int capPercent);
    public abstract void AddThread(uint domid, int tid);

    public virtual void RemoveDomain(uint domid)
    {
        string path = DomainPath(domid);
        if (TryRemove(path)) return;
        // A joined vCPU thread can stay in the group's tasks for a moment while the kernel finishes its exit, and
        // rmdir says EBUSY until then: retry off the caller's thread for a while (the next xld start cleans the rest).
        _ = Task.Run(async () =>
        {
            for (int i = 0; i < 50 && !TryRemove(path); i++) await Task.Delay(100);
        });
    }

    private static bool TryRemove(string path)
    {
        try
        {
            Directory.Delete(path);
            return true;
        }
        catch (DirectoryNotFoundException) { return true; }
        catch (IOException) { return false; }
    }

    /// <summary>Finds a writable CPU controller, or returns null with the reason.</summary>
    public static CpuCgroup? Detect(out string reason, string groupName = "xensharp", string v1Mount = "/sys/fs/cgroup/cpu", string v2Mount = "/sys/fs/cgroup")
    {
        if (File.Exists(Path.Combine(v1Mount, "cpu.shares")))
        {
            var root = Path.Combine(v1Mount, groupName);
            try
            {
                Directory.CreateDirectory(root);
                reason = "";
                return new CpuCgroupV1(root);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                reason = $"cgroup v1 cpu controller at {v1Mount} is not writable ({e.Message})";
                return null;
            }
        }
        foreach (var mount in new[] { v2Mount, Path.Combine(v2Mount, "unified") })
        {
            var controllers = Path.Combine(mount, "cgroup.controllers");
            if (!File.Exists(controllers)) continue;
            if (!File.ReadAllText(controllers).Split(' ', '\n').Contains("cpu"))
            {
                reason = $"cgroup v2 at {mount} has no cpu controller enabled";
                continue;
            }
            try
            {
                var v2 = CpuCgroupV2.Create(mount, groupName);
                reason = "";
                return v2;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                reason = $"cgroup v2 at {mount} is not usable for threads ({e.Message})";
                return null;
            }
        }
        reason = "neither a cgroup v1 cpu hierarchy nor a cgroup v2 cpu controller is mounted";
        return null;
    }

    protected static void Write(string path, string value) => File.WriteAllText(path, value);
}

internal sealed class CpuCgroupV1(string root) : CpuCgroup
{
    public override string Description => $"cgroup v1 ({root})";
    public override string Root => root;

    public override void CreateDomain(uint domid) => Directory.CreateDirectory(DomainPath(domid));

    // The host's default share (1024) stands for Xen's default weight (256).
    public override void SetWeight(uint domid, int weight) =>
        Write(Path.Combine(DomainPath(domid), "cpu.shares"), Math.Max(2L, (long)weight * 1024 / DefaultWeight).ToString());

    public override void SetCap(uint domid, int capPercent)
    {
        Write(Path.Combine(DomainPath(domid), "cpu.cfs_period_us"), CfsPeriodMicroseconds.ToString());
        Write(Path.Combine(DomainPath(domid), "cpu.cfs_quota_us"), capPercent == 0 ? "-1" : ((long)capPercent * CfsPeriodMicroseconds / 100).ToString());
    }

    public override void AddThread(uint domid, int tid) => Write(Path.Combine(DomainPath(domid), "tasks"), tid.ToString());
}

internal sealed class CpuCgroupV2 : CpuCgroup
{
    private readonly string _root;

    private CpuCgroupV2(string root) => _root = root;

    public override string Description => $"cgroup v2 ({_root})";
    public override string Root => _root;

    /// <summary>
    /// v2 places threads only within a threaded subtree of the process's own group: xld moves itself into
    /// <c>xensharp/</c> and makes each domain's group threaded.
    /// </summary>
    public static CpuCgroupV2 Create(string mount, string groupName)
    {
        var root = Path.Combine(mount, groupName);
        Directory.CreateDirectory(root);
        Write(Path.Combine(mount, "cgroup.subtree_control"), "+cpu");
        Write(Path.Combine(root, "cgroup.procs"), Environment.ProcessId.ToString());
        Write(Path.Combine(root, "cgroup.subtree_control"), "+cpu");
        return new CpuCgroupV2(root);
    }

    public override void CreateDomain(uint domid)
    {
        Directory.CreateDirectory(DomainPath(domid));
        Write(Path.Combine(DomainPath(domid), "cgroup.type"), "threaded");
    }

    // cpu.weight's default is 100 (range 1-10000) where Xen's is 256 (range 1-65535).
    public override void SetWeight(uint domid, int weight) =>
        Write(Path.Combine(DomainPath(domid), "cpu.weight"), Math.Clamp((long)weight * 100 / DefaultWeight, 1, 10000).ToString());

    public override void SetCap(uint domid, int capPercent) =>
        Write(Path.Combine(DomainPath(domid), "cpu.max"), capPercent == 0 ? $"max {CfsPeriodMicroseconds}" : $"{(long)capPercent * CfsPeriodMicroseconds / 100} {CfsPeriodMicroseconds}");

    public override void AddThread(uint domid, int tid) => Write(Path.Combine(DomainPath(domid), "cgroup.threads"), tid.ToString());
}
