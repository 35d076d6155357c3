namespace XenSharp.Hypervisor.Scheduling;

/// <summary>A domain's credit-scheduler parameters, Xen's way: weight 1–65535 (default 256), cap in percent of one CPU (0 = none).</summary>
public sealed record CreditParameters(int Weight = CpuCgroup.DefaultWeight, int Cap = 0)
{
    public void Validate(int vcpus)
    {
        if (Weight is < 1 or > 65535) throw new ArgumentException($"weight {Weight} is out of range 1-65535");
        if (Cap < 0 || Cap > 100 * vcpus) throw new ArgumentException($"cap {Cap} is out of range 0-{100 * vcpus} for {vcpus} vcpu(s)");
    }
}

/// <summary>
/// Xen's credit scheduler interface on the host's own scheduler: each domain's vCPU threads live in a CPU
/// cgroup whose share and quota carry the weight and cap; pinning is the threads' hard affinity.
/// Without a writable CPU controller, weights and caps are refused with the reason; pinning still works.
/// </summary>
public sealed class CreditScheduler
{
    private readonly CpuCgroup? _cgroup;
    private readonly string _unavailable;
    private readonly Dictionary<uint, CreditParameters> _params = new();
    private readonly object _lock = new();

    public CreditScheduler(CpuCgroup? cgroup, string unavailableReason = "")
    {
        _cgroup = cgroup;
        _unavailable = unavailableReason;
    }

    /// <summary>The host's CPU controller, with this xld's domains under <paramref name="groupName"/>.</summary>
    public static CreditScheduler ForHost(string groupName = "xensharp")
    {
        var cg = CpuCgroup.Detect(out var reason, groupName);
        return new CreditScheduler(cg, reason);
    }

    public bool HasCgroup => _cgroup is not null;
    public string Description => _cgroup?.Description ?? $"none: {_unavailable}";

    public void AddDomain(Domain domain, CreditParameters parameters)
    {
        parameters.Validate(domain.MaxVcpus);
        lock (_lock) _params[domain.Id] = parameters;
        if (_cgroup is null)
        {
            if (parameters != new CreditParameters())
                throw new InvalidOperationException($"cannot apply weight/cap: {_unavailable}");
            return;
        }
        _cgroup.CreateDomain(domain.Id);
        _cgroup.SetWeight(domain.Id, parameters.Weight);
        _cgroup.SetCap(domain.Id, parameters.Cap);
    }

    public CreditParameters Get(Domain domain)
    {
        lock (_lock) return _params.GetValueOrDefault(domain.Id) ?? new CreditParameters();
    }

    public void Set(Domain domain, int? weight, int? cap)
    {
        var p = Get(domain);
        var next = p with { Weight = weight ?? p.Weight, Cap = cap ?? p.Cap };
        next.Validate(domain.MaxVcpus);
        if (_cgroup is null) throw new InvalidOperationException($"cannot apply weight/cap: {_unavailable}");
        if (next.Weight != p.Weight) _cgroup.SetWeight(domain.Id, next.Weight);
        if (next.Cap != p.Cap) _cgroup.SetCap(domain.Id, next.Cap);
        lock (_lock) _params[domain.Id] = next;
    }

    /// <summary>Called on each vCPU thread as it starts: join the domain's group, take the vCPU's pinning.</summary>
    public void OnVcpuThreadStarted(VirtualCpu vcpu)
    {
        if (_cgroup is not null && _params.ContainsKey(vcpu.Domain.Id))
            _cgroup.AddThread(vcpu.Domain.Id, vcpu.HostThreadId);
        if (vcpu.HardAffinity is { } cpus) HostCpus.SetAffinity(vcpu.HostThreadId, cpus);
    }

    public void Pin(VirtualCpu vcpu, IReadOnlyCollection<int> cpus)
    {
        var valid = cpus.Where(c => c >= 0 && c < HostCpus.Count).ToArray();
        if (valid.Length == 0) throw new ArgumentException($"no CPU of {HostCpus.Format(cpus)} exists on this host (it has {HostCpus.Count})");
        vcpu.HardAffinity = valid;
        if (vcpu.HostThreadId != 0) HostCpus.SetAffinity(vcpu.HostThreadId, valid);
    }

    public void RemoveDomain(Domain domain)
    {
        lock (_lock) _params.Remove(domain.Id);
        _cgroup?.RemoveDomain(domain.Id);
    }
}
