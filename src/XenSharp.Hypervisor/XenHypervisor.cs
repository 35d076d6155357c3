using XenSharp.Accel;

namespace XenSharp.Hypervisor;

/// <summary>What the hypervisor needs to make a domain; the toolstack derives it from xl.cfg.</summary>
public sealed record DomainCreateSpec(string Name, DomainType Type, ulong MemoryBytes, ulong MaxMemoryBytes, int Vcpus, int MaxVcpus, Guid? Uuid = null);

/// <summary>
/// The hypervisor proper: the domain table, host memory accounting, the message log and the accelerator
/// that runs guest code. It knows Xen's semantics; it does not know xl.cfg or the CLI.
/// </summary>
public sealed class XenHypervisor : IDisposable
{
    public const uint ControlDomainId = 0;
    /// <summary>Xen's DOMID_FIRST_RESERVED: ids from here on are special (DOMID_SELF, DOMID_IO, ...).</summary>
    public const uint FirstReservedDomainId = 0x7ff0;

    private readonly object _lock = new();
    private readonly Dictionary<uint, Domain> _domains = new();
    private uint _nextId = 1;

    public IAccelerator Accelerator { get; }
    public HostMemory HostMemory { get; }
    public HypervisorLog Log { get; } = new();
    public Scheduling.CreditScheduler Scheduler { get; }
    public DateTime StartedUtc { get; } = DateTime.UtcNow;

    /// <summary>Raised on a pool thread when a domain shuts down (guest request, crash, or toolstack).</summary>
    public event Action<Domain>? DomainShutdown;

    public XenHypervisor(IAccelerator accelerator, HostMemory hostMemory, Scheduling.CreditScheduler? scheduler = null)
    {
        Accelerator = accelerator;
        HostMemory = hostMemory;
        Scheduler = scheduler ?? new Scheduling.CreditScheduler(null, "no CPU controller configured");
        Log.Write($"XenSharp hypervisor starting: accelerator {accelerator.Name}, {hostMemory.TotalBytes >> 20} MiB for domains");
    }

    /// <summary>
    /// Creates a paused domain with its memory and vCPUs but no platform: the caller (a domain builder)
    /// loads the guest, sets registers, attaches the platform and calls <see cref="Start"/>.
    /// On any failure everything reserved is released.
    /// </summary>
    public Domain CreateDomain(DomainCreateSpec spec)
    {
        if (spec.MemoryBytes == 0 || (spec.MemoryBytes & 0xfff) != 0)
            throw new ArgumentException($"memory of {spec.MemoryBytes} bytes is not a positive whole number of pages");
        if (spec.MaxMemoryBytes < spec.MemoryBytes)
            throw new ArgumentException($"maxmem ({spec.MaxMemoryBytes >> 20} MiB) is below memory ({spec.MemoryBytes >> 20} MiB)");
        if (spec.Vcpus < 1 || spec.MaxVcpus < spec.Vcpus || spec.MaxVcpus > 128)
            throw new ArgumentException($"vcpus={spec.Vcpus}, maxvcpus={spec.MaxVcpus}: need 1 <= vcpus <= maxvcpus <= 128");

        uint id;
        lock (_lock)
        {
            if (_domains.Values.Any(d => d is not null && d.Name == spec.Name && !d.IsDying))
                throw new DomainExistsException($"a domain named '{spec.Name}' already exists");
            id = AllocateIdLocked();
            _domains[id] = null!; // Holds the id while we build outside the lock.
        }

        GuestMemory? memory = null;
        IVirtualMachine? vm = null;
        try
        {
            HostMemory.Reserve(id, spec.Name, spec.MaxMemoryBytes);
            memory = new GuestMemory(spec.MemoryBytes, $"xensharp-d{id}");
            vm = Accelerator.CreateVirtualMachine();
            vm.MapMemory(0, 0, memory, 0, memory.Size);
            var domain = new Domain(this, id, spec.Uuid ?? Guid.NewGuid(), spec.Name, spec.Type, memory, vm, spec.MaxMemoryBytes, spec.MaxVcpus);
            lock (_lock) _domains[id] = domain;
            Log.Write($"d{id} ({spec.Name}): created, {spec.Type.ToString().ToLowerInvariant()}, {spec.MemoryBytes >> 20} MiB, {spec.Vcpus} vcpu(s)");
            return domain;
        }
        catch
        {
            vm?.Dispose();
            memory?.Dispose();
            HostMemory.Release(id);
            lock (_lock) _domains.Remove(id);
            throw;
        }
    }

    /// <summary>Starts the vCPU threads of a fully built domain; it stays paused until unpaused.</summary>
    public void Start(Domain domain) => domain.Start();

    public Domain? Find(uint id)
    {
        lock (_lock) return _domains.TryGetValue(id, out var d) ? d : null;
    }

    public Domain? FindByName(string name)
    {
        lock (_lock) return _domains.Values.FirstOrDefault(d => d is not null && d.Name == name);
    }

    public IReadOnlyList<Domain> Domains
    {
        get { lock (_lock) return _domains.Values.Where(d => d is not null).OrderBy(d => d.Id).ToArray(); }
    }

    /// <summary>Destroys a domain: stops its vCPUs, frees its memory, fds and threads, and forgets it.</summary>
    public void Destroy(Domain domain)
    {
        lock (_lock)
        {
            if (!_domains.TryGetValue(domain.Id, out var d) || !ReferenceEquals(d, domain) || domain.IsDying) return;
            domain.MarkDying();
        }
        try
        {
            domain.StopVcpus();
            // Backends still holding grant mappings let go here, while the guest's memory is still mapped.
            try { DomainDying?.Invoke(domain); }
            catch (Exception e) { Log.Write($"d{domain.Id}: teardown handler failed: {e.Message}"); }
            domain.Dispose();
        }
        finally
        {
            Scheduler.RemoveDomain(domain);
            HostMemory.Release(domain.Id);
            lock (_lock) _domains.Remove(domain.Id);
            Log.Write($"d{domain.Id} ({domain.Name}): destroyed");
            DomainDestroyed?.Invoke(domain);
        }
    }

    /// <summary>Raised (synchronously) when a domain's vCPUs have stopped but before its memory is freed.</summary>
    public event Action<Domain>? DomainDying;

    /// <summary>Raised (synchronously) after a domain's resources are freed.</summary>
    public event Action<Domain>? DomainDestroyed;

    internal void RaiseShutdown(Domain domain)
    {
        try
        {
            DomainShutdown?.Invoke(domain);
        }
        catch (Exception e)
        {
            Log.Write($"d{domain.Id}: shutdown handler failed: {e.Message}");
        }
    }

    /// <summary>Sets the memory the domain should have (its balloon target); the guest acts on it.</summary>
    public void SetTarget(Domain domain, ulong bytes)
    {
        if (bytes > domain.MaxBytes) throw new ArgumentException($"target {bytes >> 20} MiB exceeds maxmem {domain.MaxBytes >> 20} MiB");
        domain.TargetBytes = bytes;
        Log.Write($"d{domain.Id} ({domain.Name}): memory target {bytes >> 20} MiB");
    }

    /// <summary>Changes the domain's maximum memory; its host reservation follows, or nothing changes.</summary>
    public void SetMaximum(Domain domain, ulong bytes)
    {
        HostMemory.Reserve(domain.Id, domain.Name, bytes);
        domain.MaxBytes = bytes;
        Log.Write($"d{domain.Id} ({domain.Name}): maxmem {bytes >> 20} MiB");
    }

    public void Rename(Domain domain, string newName)
    {
        lock (_lock)
        {
            if (_domains.Values.Any(d => d is not null && d != domain && d.Name == newName))
                throw new DomainExistsException($"a domain named '{newName}' already exists");
            domain.Name = newName;
        }
    }

    private uint AllocateIdLocked()
    {
        // Xen hands out increasing ids and wraps below the reserved range, skipping ids in use.
        for (int tries = 0; tries < FirstReservedDomainId; tries++)
        {
            uint id = _nextId;
            _nextId = _nextId + 1 >= FirstReservedDomainId ? 1 : _nextId + 1;
            if (!_domains.ContainsKey(id)) return id;
        }
        throw new InvalidOperationException("no free domain id");
    }

    public void Dispose()
    {
        foreach (var d in Domains) Destroy(d);
        Accelerator.Dispose();
    }
}

public sealed class DomainExistsException(string message) : Exception(message);
