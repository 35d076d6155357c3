using XenSharp.Accel;

namespace XenSharp.Hypervisor;

/// <summary>
/// A domain: its identity, its memory, its vCPUs and its platform (PV or HVM), with Xen's lifecycle:
/// created paused, running/blocked, paused, shut down with a reason, dying, destroyed.
/// </summary>
public sealed class Domain : IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly XenHypervisor _hypervisor;
    private readonly object _lock = new();
    private readonly List<VirtualCpu> _vcpus = new();
    private IDomainPlatform? _platform;
    private int _pauseCount;
    private bool _started;
    private int _shutdownSignalled;

    public uint Id { get; }
    public Guid Uuid { get; }
    public string Name { get; internal set; }
    public DomainType Type { get; }
    public GuestMemory Memory { get; }
    public IVirtualMachine Machine { get; }
    public DomainConsole Console { get; } = new();
    public DateTime CreatedUtc { get; } = DateTime.UtcNow;

    /// <summary>Memory the domain is meant to have now (Xen's target), and the most it may ever have.</summary>
    public ulong TargetBytes { get; internal set; }
    public ulong MaxBytes { get; internal set; }
    public int MaxVcpus { get; }

    public ShutdownReason? ShutdownReason { get; private set; }
    public int ShutdownCode { get; private set; } = -1;
    public string? CrashDetail { get; private set; }
    public bool IsDying { get; private set; }
    public bool IsPaused { get { lock (_lock) return _pauseCount > 0; } }
    public IReadOnlyList<VirtualCpu> Vcpus { get { lock (_lock) return _vcpus.ToArray(); } }

    public IDomainPlatform Platform => _platform ?? throw new InvalidOperationException($"domain {Id} has no platform yet");
    public bool HasPlatform => Volatile.Read(ref _platform) is not null;
    public XenHypervisor Hypervisor => _hypervisor;

    internal Domain(XenHypervisor hypervisor, uint id, Guid uuid, string name, DomainType type, GuestMemory memory, IVirtualMachine machine, ulong maxBytes, int maxVcpus)
    {
        _hypervisor = hypervisor;
        Id = id;
        Uuid = uuid;
        Name = name;
        Type = type;
        Memory = memory;
        Machine = machine;
        TargetBytes = memory.Size;
        MaxBytes = maxBytes;
        MaxVcpus = maxVcpus;
        _pauseCount = 1; // Domains are born paused, as on Xen; the toolstack unpauses once built.
    }

    /// <summary>Adds vCPU <paramref name="id"/>; the builder sets its registers before the domain is started.</summary>
    public VirtualCpu AddVcpu(int id)
    {
        lock (_lock)
        {
            if (_started) throw new InvalidOperationException("vCPUs are added before the domain starts");
            var v = new VirtualCpu(this, id, Machine.CreateVcpu(id));
            _vcpus.Add(v);
            return v;
        }
    }

    public void AttachPlatform(IDomainPlatform platform)
    {
        if (Interlocked.CompareExchange(ref _platform, platform, null) is not null)
            throw new InvalidOperationException($"domain {Id} already has a platform");
    }

    /// <summary>Starts the vCPU threads (parked, since the domain is paused until <see cref="Unpause"/>).</summary>
    internal void Start()
    {
        lock (_lock)
        {
            if (_started) return;
            _started = true;
            foreach (var v in _vcpus) v.RequestPauseNoWait();
            foreach (var v in _vcpus.Where(v => v.StartsOnline)) v.Start();
        }
    }

    /// <summary>Brings an offline vCPU up (the guest's VCPUOP_up); it runs unless the domain is paused.</summary>
    public void BringUp(VirtualCpu vcpu)
    {
        lock (_lock)
        {
            if (!_started || vcpu.Started) return;
            if (_pauseCount > 0) vcpu.RequestPauseNoWait();
            vcpu.Start();
        }
    }

    public void Pause()
    {
        VirtualCpu[] vcpus;
        lock (_lock)
        {
            ThrowIfDying();
            _pauseCount++;
            vcpus = _vcpus.ToArray();
        }
        foreach (var v in vcpus)
            if (!v.RequestPause(StopTimeout))
                _hypervisor.Log.Write($"d{Id}v{v.Id}: did not stop within {StopTimeout.TotalSeconds} s of a pause request");
    }

    public void Unpause()
    {
        VirtualCpu[] vcpus;
        lock (_lock)
        {
            ThrowIfDying();
            if (_pauseCount == 0) throw new InvalidOperationException($"domain {Id} ({Name}) is not paused");
            if (--_pauseCount > 0) return;
            vcpus = _vcpus.ToArray();
        }
        foreach (var v in vcpus) v.ReleasePause();
    }

    /// <summary>
    /// The guest (or the toolstack) shuts the domain down: every vCPU stops, and the toolstack is told once,
    /// on a pool thread, so that its on_poweroff/on_reboot/on_crash action may destroy this domain.
    /// </summary>
    public void Shutdown(ShutdownReason reason, int code = -1)
    {
        if (Interlocked.Exchange(ref _shutdownSignalled, 1) != 0) return;
        ShutdownReason = reason;
        ShutdownCode = code;
        _hypervisor.Log.Write($"d{Id} ({Name}): shutdown, reason {reason.ToString().ToLowerInvariant()}{(CrashDetail is null ? "" : ": " + CrashDetail)}");
        foreach (var v in Vcpus) v.Stop();
        ThreadPool.QueueUserWorkItem(_ => _hypervisor.RaiseShutdown(this));
    }

    /// <summary>Crashes the domain alone: used when the guest did something it cannot survive, or our emulation failed.</summary>
    public void Crash(string detail)
    {
        if (ShutdownReason is null) CrashDetail = detail;
        Shutdown(XenSharp.Hypervisor.ShutdownReason.Crash);
    }

    internal void MarkDying()
    {
        lock (_lock) IsDying = true;
    }

    /// <summary>Stops every vCPU thread and waits for it. Called by the hypervisor when destroying.</summary>
    internal void StopVcpus()
    {
        var vcpus = Vcpus;
        foreach (var v in vcpus) v.Stop();
        foreach (var v in vcpus)
            if (!v.Join(StopTimeout))
                _hypervisor.Log.Write($"d{Id}v{v.Id}: thread did not exit within {StopTimeout.TotalSeconds} s");
    }

    /// <summary>Xen's six-letter state, as <c>xl list</c> prints it: r b p s c d.</summary>
    public string StateFlags
    {
        get
        {
            var vcpus = Vcpus;
            bool shut = ShutdownReason is not null;
            bool crashed = ShutdownReason == XenSharp.Hypervisor.ShutdownReason.Crash;
            bool paused = IsPaused && !shut;
            bool running = !paused && !shut && vcpus.Any(v => v.RunState == VcpuRunState.Running);
            bool blocked = !paused && !shut && !running && vcpus.Any(v => v.RunState == VcpuRunState.Blocked);
            return string.Concat(running ? "r" : "-", blocked ? "b" : "-", paused ? "p" : "-",
                shut && !crashed ? "s" : "-", crashed ? "c" : "-", IsDying ? "d" : "-");
        }
    }

    public TimeSpan CpuTime => Vcpus.Aggregate(TimeSpan.Zero, (t, v) => t + v.CpuTime);

    private void ThrowIfDying()
    {
        if (IsDying) throw new InvalidOperationException($"domain {Id} ({Name}) is being destroyed");
    }

    public void Dispose()
    {
        StopVcpus();
        _platform?.Dispose();
        foreach (var v in Vcpus) v.Dispose();
        Machine.Dispose();
        Memory.Dispose();
    }
}
