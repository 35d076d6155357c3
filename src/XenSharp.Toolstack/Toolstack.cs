using System.Collections.Concurrent;
using XenSharp.Api;
using XenSharp.Dom0.Console;
using XenSharp.Dom0.Xenstore;
using XenSharp.Dom0.Xenbus;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Hvm;
using XenSharp.Toolstack.Config;
using XenSharp.Hypervisor.Scheduling;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Toolstack;

public sealed record ToolstackOptions(string StateDirectory, string LogDirectory)
{
    public string ConsoleLogDirectory => Path.Combine(LogDirectory, "console");
    public string DomainConfigDirectory => Path.Combine(StateDirectory, "domains");
}

/// <summary>
/// The toolstack (libxl's role): builds domains from plans, carries out on_poweroff/on_reboot/on_crash,
/// asks guests to shut down, and reports domains and the host in xl's terms. Front ends (xld's API, and
/// through it xl and the panel) call only this.
/// </summary>
public sealed class Toolstack : IDisposable
{
    private readonly ConcurrentDictionary<uint, ManagedDomain> _managed = new();
    private readonly ToolstackOptions _options;
    // One dom0 connection to xenstored; a connection carries one request at a time, so callers take _xsLock.
    private readonly XenstoreClient _xs;
    private readonly object _xsLock = new();

    public XenHypervisor Hypervisor { get; }

    /// <summary>dom0's xenstored: the toolstack writes each domain's nodes there.</summary>
    public XenstoreStore Store { get; }

    /// <summary>dom0's block and network backends (blkback, netback, the software switch).</summary>
    public BackendManager Backends { get; }

    public Toolstack(XenHypervisor hypervisor, ToolstackOptions options, XenstoreStore? store = null)
    {
        Hypervisor = hypervisor;
        _options = options;
        Store = store ?? new XenstoreStore();
        _xs = new XenstoreClient(Store);
        Backends = new BackendManager(new XenstoreClient(Store)) { Log = m => hypervisor.Log.Write(m) };
        hypervisor.DomainDying += d => Backends.DetachAll(d.Id);
        Directory.CreateDirectory(options.StateDirectory);
        Directory.CreateDirectory(options.LogDirectory);
        hypervisor.DomainShutdown += OnDomainShutdown;
        hypervisor.DomainDestroyed += OnDomainDestroyed;
    }

    /// <summary>Receives the time each phase of <see cref="Create"/> took (for benchmarks and the log).</summary>
    public Action<string, TimeSpan>? PhaseTimer { get; set; }

    /// <summary>Builds and starts a domain; it runs unless <paramref name="paused"/>.</summary>
    public Domain Create(DomainPlan plan, bool paused)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Phase(string name)
        {
            PhaseTimer?.Invoke(name, clock.Elapsed);
            clock.Restart();
        }
        Domain domain;
        IDomainControl control;
        PvRings? rings = null;
        PvDomainParts? pvParts = null;
        switch (plan.Type)
        {
            case XenSharp.Hypervisor.DomainType.Hvm:
                var (d, platform) = HvmDomainBuilder.Build(Hypervisor, plan);
                domain = d;
                control = new HvmDomainControl(platform);
                break;
            case XenSharp.Hypervisor.DomainType.Pv:
                var (pvDomain, parts) = PvDomainBuilder.Build(Hypervisor, plan);
                domain = pvDomain;
                rings = new PvRings(parts.Build.XenstorePfn, parts.StorePort, parts.Build.ConsolePfn, parts.ConsolePort);
                control = new PvDomainControl(this, domain);
                pvParts = parts;
                break;
            default:
                throw new ToolstackException($"type=\"{plan.Type.ToString().ToLowerInvariant()}\" domains cannot be built yet by this XenSharp version");
        }
        Phase("build");

        ManagedDomain managed;
        try
        {
            ApplyScheduling(domain, plan);
            Phase("scheduler");
            lock (_xsLock) DomainStoreLayout.Write(_xs, domain, plan, rings);
            if (pvParts is not null)
            {
                ConnectStore(domain, pvParts);
                AttachDevices(domain, plan);
            }
            Phase("xenstore");
            var logger = new ConsoleLogger(domain.Console, _options.ConsoleLogDirectory, plan.Name);
            managed = new ManagedDomain(domain, plan, control, logger);
            _managed[domain.Id] = managed;
            Phase("console");
            Hypervisor.Start(domain);
            if (!paused) domain.Unpause();
            Phase("start");
            // Off the create path: the fsyncs cost milliseconds, and the record matters only while the domain lives
            // (its vCPUs are threads of this process, so a crash of ours ends it too).
            _ = Task.Run(() =>
            {
                try
                {
                    AtomicFile.WriteAllText(Path.Combine(_options.DomainConfigDirectory, $"{plan.Uuid}.cfg"), plan.ConfigText);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Hypervisor.Log.Write($"d{domain.Id}: cannot record its config: {e.Message}");
                }
            });
        }
        catch
        {
            Hypervisor.Destroy(domain);
            throw;
        }
        return domain;
    }

    /// <summary>cpu_weight and cap through the host's CPU controller; cpus= as each vCPU thread's hard affinity.</summary>
    private void ApplyScheduling(Domain domain, DomainPlan plan)
    {
        Hypervisor.Scheduler.AddDomain(domain, new CreditParameters(plan.Config.CpuWeight ?? CpuCgroup.DefaultWeight, plan.Config.Cap ?? 0));
        foreach (var v in domain.Vcpus)
            if (plan.Config.Cpus?.ForVcpu(v.Id) is { } affinity)
                Hypervisor.Scheduler.Pin(v, affinity.Resolve(HostCpus.Count));
    }

    public Domain Resolve(string nameOrId)
    {
        var d = uint.TryParse(nameOrId, out uint id) ? Hypervisor.Find(id) : Hypervisor.FindByName(nameOrId);
        if (d is null && uint.TryParse(nameOrId, out id) && id == XenHypervisor.ControlDomainId)
            throw new ToolstackException("Domain-0 is the host itself: that operation does not apply to it");
        if (d is null && nameOrId == "Domain-0")
            throw new ToolstackException("Domain-0 is the host itself: that operation does not apply to it");
        return d ?? throw new ToolstackException($"no domain named or numbered '{nameOrId}'");
    }

    public DomainPlan? PlanOf(Domain domain) => _managed.TryGetValue(domain.Id, out var m) ? m.Plan : null;

    public void Destroy(Domain domain) => Hypervisor.Destroy(domain);

    /// <summary>
    /// Asks the guest to power off or reboot (PV: control/shutdown in xenstore; minimal HVM: the power button).
    /// The guest acts on its own time; <see cref="WaitForShutdownAsync"/> follows it.
    /// </summary>
    public void RequestShutdown(Domain domain, bool reboot)
    {
        if (domain.ShutdownReason is not null) throw new ToolstackException($"domain {domain.Id} ({domain.Name}) has already shut down");
        if (!_managed.TryGetValue(domain.Id, out var m)) throw new ToolstackException($"domain {domain.Id} is not managed by this toolstack");
        m.Control.RequestShutdown(reboot ? ShutdownReason.Reboot : ShutdownReason.Poweroff);
        Hypervisor.Log.Write($"d{domain.Id} ({domain.Name}): {(reboot ? "reboot" : "shutdown")} requested");
    }

    /// <summary>Completes when the domain has shut down (and, unless preserved, been destroyed), or false on timeout.</summary>
    public async Task<bool> WaitForShutdownAsync(Domain domain, TimeSpan timeout, CancellationToken cancel = default)
    {
        if (!_managed.TryGetValue(domain.Id, out var m)) return true;
        var done = await Task.WhenAny(m.Finished.Task, Task.Delay(timeout, cancel));
        return done == m.Finished.Task;
    }

    public IReadOnlyList<DomainSummary> List()
    {
        var rows = new List<DomainSummary> { ControlDomainSummary() };
        foreach (var d in Hypervisor.Domains)
        {
            _managed.TryGetValue(d.Id, out var m);
            rows.Add(new DomainSummary(d.Name, d.Id, d.TargetBytes >> 20, d.MaxBytes >> 20, d.Vcpus.Count(v => v.Online || v.Started || v.StartsOnline),
                d.StateFlags, d.CpuTime.TotalSeconds, d.Type.ToString().ToLowerInvariant(), d.Uuid.ToString(),
                d.ShutdownReason?.ToString().ToLowerInvariant(), (DateTime.UtcNow - d.CreatedUtc).TotalSeconds, m?.Plan.ConfigText));
        }
        return rows;
    }

    private DomainSummary ControlDomainSummary()
    {
        var self = System.Diagnostics.Process.GetCurrentProcess();
        return new DomainSummary("Domain-0", XenHypervisor.ControlDomainId, Hypervisor.HostMemory.HostReservationBytes >> 20,
            Hypervisor.HostMemory.HostReservationBytes >> 20, Environment.ProcessorCount, "r-----", self.TotalProcessorTime.TotalSeconds,
            "control", "00000000-0000-0000-0000-000000000000", null, (DateTime.UtcNow - Hypervisor.StartedUtc).TotalSeconds);
    }

    private void OnDomainShutdown(Domain domain)
    {
        if (!_managed.TryGetValue(domain.Id, out var m)) return;
        var reason = domain.ShutdownReason ?? ShutdownReason.Crash;
        var action = m.Plan.ActionFor(reason);
        Hypervisor.Log.Write($"d{domain.Id} ({domain.Name}): on_{ReasonKey(reason)} = {ActionName(action)}");
        switch (action)
        {
            case ActionOnShutdown.Preserve:
                m.Finished.TrySetResult();
                break;
            case ActionOnShutdown.Destroy:
            case ActionOnShutdown.CoredumpDestroy:
                Hypervisor.Destroy(domain);
                break;
            case ActionOnShutdown.Restart:
            case ActionOnShutdown.CoredumpRestart:
            case ActionOnShutdown.SoftReset:
                Hypervisor.Destroy(domain);
                Restart(m.Plan);
                break;
            case ActionOnShutdown.RenameRestart:
                // The old domain stays for inspection under a new name; a fresh one takes the original name.
                Rename(domain, $"{m.Plan.Name}-{domain.Id}");
                m.Finished.TrySetResult();
                Restart(m.Plan);
                break;
        }
    }

    /// <summary>
    /// Serves the PV guest's xenstore ring: the store port the builder allocated is bound to dom0, the guest's
    /// kicks feed the ring, and the domain is introduced (firing @introduceDomain), as xenstored's INTRODUCE does.
    /// </summary>
    private void ConnectStore(Domain domain, PvDomainParts parts)
    {
        XenstoreRing? ring = null;
        var channel = parts.Services.Events.BindInterdomainFromDom0(parts.StorePort, _ => ring?.GuestNotified());
        ring = new XenstoreRing(domain.Memory, parts.Build.XenstorePfn, channel.Notify);
        Store.IntroduceDomain(domain.Id, ring, parts.StorePort, parts.Build.XenstorePfn);
    }

    /// <summary>The config's disk= and vif= entries, through dom0's backends, before the guest first runs.</summary>
    private void AttachDevices(Domain domain, DomainPlan plan)
    {
        foreach (var disk in plan.Config.Disks) AttachDisk(domain, disk);
        foreach (var vif in plan.Config.Vifs) AttachNic(domain, vif);
    }

    /// <summary>Attaches a DISKSPEC's image in the format it names (format= or a qcow2: prefix; never probed).</summary>
    public DiskInfo AttachDisk(Domain domain, DiskSpec disk)
    {
        if (disk.Format is not (DiskFormat.Raw or DiskFormat.Qcow2))
            throw new ToolstackException($"disk {disk.Vdev}: format {DiskSpec.FormatName(disk.Format)} is not supported ({XenSharp.Dom0.Block.DiskImageFormats.SupportedText})");
        try
        {
            return Backends.AttachDisk(domain, disk.Target, disk.Vdev, disk.Access == DiskAccess.ReadOnly, DiskSpec.FormatName(disk.Format), disk.IsCdrom);
        }
        catch (XenSharp.Dom0.Block.DiskImageException e) { throw new ToolstackException($"disk {disk.Vdev}: {e.Message}"); }
    }

    public NicInfo AttachNic(Domain domain, VifSpec vif) =>
        Backends.AttachNic(domain, vif.Mac, vif.Bridge, vif.Rate?.ToString(), vif.DevId is { } id ? (uint)id : null);

    /// <summary>Writes control/shutdown, as libxl does to ask a PV guest to power off or reboot.</summary>
    internal void WriteControlShutdown(Domain domain, string value)
    {
        lock (_xsLock) _xs.Write($"{DomainStoreLayout.DomainPath(domain.Id)}/control/shutdown", value);
    }

    /// <summary>
    /// <c>xl mem-set</c>: the domain's new target. It is written to memory/target (kB), which the guest's balloon
    /// driver watches; the guest then gives pages back or takes them. Refused above maxmem.
    /// </summary>
    public void SetMemoryTarget(Domain domain, ulong bytes)
    {
        if (bytes < 16UL << 20) throw new ToolstackException($"memory target {bytes >> 20} MiB is below the 16 MiB a guest needs");
        if (bytes > domain.MaxBytes)
            throw new ToolstackException($"memory target {bytes >> 20} MiB is above domain {domain.Id}'s maxmem of {domain.MaxBytes >> 20} MiB (raise it with xl mem-max)");
        Hypervisor.SetTarget(domain, bytes);
        lock (_xsLock) _xs.Write($"{DomainStoreLayout.DomainPath(domain.Id)}/memory/target", (bytes >> 10).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary><c>xl mem-max</c>: the most the domain may balloon up to; the host reservation follows, or the change is refused.</summary>
    public void SetMaximumMemory(Domain domain, ulong bytes)
    {
        if (bytes < domain.TargetBytes)
            throw new ToolstackException($"maxmem {bytes >> 20} MiB is below domain {domain.Id}'s current target of {domain.TargetBytes >> 20} MiB (lower it with xl mem-set first)");
        Hypervisor.SetMaximum(domain, bytes);
        lock (_xsLock) _xs.Write($"{DomainStoreLayout.DomainPath(domain.Id)}/memory/static-max", (bytes >> 10).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// <c>xl vcpu-set</c>: asks the guest to run <paramref name="count"/> vCPUs. As Xen's toolstack does for PV guests,
    /// this writes <c>cpu/N/availability</c>; the guest's hotplug watcher brings CPUs up (VCPUOP_up) or takes them down.
    /// </summary>
    public void SetVcpuCount(Domain domain, int count)
    {
        if (domain.Type != XenSharp.Hypervisor.DomainType.Pv)
            throw new ToolstackException($"domain {domain.Id} is {domain.Type.ToString().ToUpperInvariant()}: vCPU hot-plug needs ACPI CPU hot-plug, which XenSharp's HVM platform does not emulate");
        if (count < 1 || count > domain.MaxVcpus)
            throw new ToolstackException($"domain {domain.Id} can have 1 to {domain.MaxVcpus} vCPUs (maxvcpus); {count} asked");
        lock (_xsLock)
            for (int i = 0; i < domain.MaxVcpus; i++)
                _xs.Write($"{DomainStoreLayout.DomainPath(domain.Id)}/cpu/{i}/availability", i < count ? "online" : "offline");
    }

    /// <summary>Renames a domain in the hypervisor and in xenstore.</summary>
    public void Rename(Domain domain, string newName)
    {
        Hypervisor.Rename(domain, newName);
        lock (_xsLock) DomainStoreLayout.Rename(_xs, domain);
    }

    private void Restart(DomainPlan plan)
    {
        try
        {
            var d = Create(plan, paused: false);
            Hypervisor.Log.Write($"d{d.Id} ({plan.Name}): restarted");
        }
        catch (Exception e)
        {
            Hypervisor.Log.Write($"{plan.Name}: restart failed: {e.Message}");
        }
    }

    private void OnDomainDestroyed(Domain domain)
    {
        try
        {
            // Release first: the domain's store connection goes, so removing its nodes fires no watch at a dead ring.
            if (Store.IsDomainIntroduced(domain.Id)) Store.ReleaseDomain(domain.Id);
            lock (_xsLock) DomainStoreLayout.Remove(_xs, domain);
        }
        catch (XenstoreException e)
        {
            Hypervisor.Log.Write($"d{domain.Id}: removing its xenstore nodes failed: {e.Message}");
        }
        if (_managed.TryRemove(domain.Id, out var m))
        {
            m.Logger.Dispose();
            m.Finished.TrySetResult();
        }
    }

    internal static string ReasonKey(ShutdownReason r) => r switch
    {
        ShutdownReason.Poweroff => "poweroff",
        ShutdownReason.Reboot => "reboot",
        ShutdownReason.Crash => "crash",
        ShutdownReason.Watchdog => "watchdog",
        ShutdownReason.SoftReset => "soft_reset",
        _ => "suspend",
    };

    internal static string ActionName(ActionOnShutdown a) => a.ToXl();
    public void Dispose()
    {
        Hypervisor.DomainShutdown -= OnDomainShutdown;
        foreach (var d in Hypervisor.Domains) Hypervisor.Destroy(d);
        _xs.Dispose();
        Backends.Dispose();
    }

    private sealed record ManagedDomain(Domain Domain, DomainPlan Plan, IDomainControl Control, ConsoleLogger Logger)
    {
        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>How the toolstack asks a particular kind of guest to shut down.</summary>
internal interface IDomainControl
{
    void RequestShutdown(ShutdownReason reason);
}

internal sealed class HvmDomainControl(HvmPlatform platform) : IDomainControl
{
    public void RequestShutdown(ShutdownReason reason) => platform.Power.PressButton(reason);
}

/// <summary>A PV guest learns of a shutdown request from control/shutdown in xenstore (Linux: drivers/xen/manage.c).</summary>
internal sealed class PvDomainControl(Toolstack toolstack, Domain domain) : IDomainControl
{
    public void RequestShutdown(ShutdownReason reason) =>
        toolstack.WriteControlShutdown(domain, reason == ShutdownReason.Reboot ? "reboot" : "poweroff");
}
