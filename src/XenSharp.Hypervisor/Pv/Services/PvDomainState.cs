using System.Runtime.CompilerServices;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv;

/// <summary>Options for a PV domain's services state (the builder / platform fills them).</summary>
public sealed record PvDomainOptions
{
    /// <summary>The guest's RDTSC (host TSC plus the accelerator's offset). Default: the host TSC.</summary>
    public Func<ulong>? ReadGuestTsc { get; init; }
    public ulong? TscHz { get; init; }
    public bool? TscStable { get; init; }
    /// <summary>Grant frames the guest may set up (Xen's max_grant_frames; libxl's default is 32).</summary>
    public int MaxGrantFrames { get; init; } = 32;
    /// <summary>The hypercall table; default <see cref="HypercallTable.CreateDefault"/> (shared: build it once and pass it).</summary>
    public HypercallTable? Hypercalls { get; init; }
}

/// <summary>
/// The services half's per-domain PV state: the shared_info page and other special frames, event channels,
/// the grant table, the clock and timers, the console/xenstore ring info, ballooning state, and the
/// unimplemented-hypercall counters. One per PV domain; find it with <see cref="Of"/>.
/// </summary>
public sealed class PvDomainState : IDisposable
{
    private static readonly ConditionalWeakTable<Domain, PvDomainState> s_states = new();

    private readonly object _lock = new();
    private readonly Dictionary<int, PvVcpuState> _vcpus = new();
    private readonly Dictionary<ulong, long> _unimplemented = new();
    private readonly HashSet<string> _loggedOnce = new();
    private readonly ulong[] _populated;
    private long _populatedCount;
    private bool _disposed;

    public PvDomainState(Domain domain, PvDomainOptions? options = null)
    {
        options ??= new PvDomainOptions();
        Domain = domain;
        Hypercalls = options.Hypercalls ?? HypercallTable.CreateDefault();
        ulong ramFrames = domain.Memory.FrameCount;
        ulong firstSpecial = Math.Max(ramFrames, domain.MaxBytes >> 12);
        SpecialFrames = new SpecialFrames(firstSpecial);

        SharedInfo = new GuestMemory(4096, $"xensharp-d{domain.Id}-shared-info");
        DummyPage = new GuestMemory(4096, $"xensharp-d{domain.Id}-dummy-vcpu-info");
        SharedInfoMfn = SpecialFrames.Allocate(SharedInfo, 0, 1, writable: true, "shared_info");
        // As the builder does: every vcpu_info starts with events masked.
        for (int i = 0; i < X86_64Layout.LegacyMaxVcpus; i++) SharedInfo.WriteByte((ulong)i * 64 + 1, 1);

        _populated = new ulong[(ramFrames + 63) / 64];
        for (ulong f = 0; f < ramFrames; f++) _populated[f / 64] |= 1UL << (int)(f % 64);
        _populatedCount = (long)ramFrames;

        ConsoleLog = new Services.ConsoleLog(domain.Hypervisor.Log, domain.Id);
        Clock = new PvClock(options.ReadGuestTsc, options.TscHz, options.TscStable);
        Clock.PublishWallclock(SharedInfo);
        Events = new EventChannels(this);
        Grants = new GrantTable(this, options.MaxGrantFrames);
        Timers = new PvTimers(this);
        lock (s_states) s_states.AddOrUpdate(domain, this);
        foreach (var v in domain.Vcpus) Vcpu(v.Id);
        Timers.Start();
        domain.Hypervisor.DomainDestroyed += OnDomainDestroyed;
    }

    /// <summary>The services state of a PV domain, or null for HVM domains or before it is created.</summary>
    public static PvDomainState? Of(Domain domain)
    {
        lock (s_states) return s_states.TryGetValue(domain, out var s) ? s : null;
    }

    public Domain Domain { get; }
    public uint DomainId => Domain.Id;
    public HypercallTable Hypercalls { get; }
    public SpecialFrames SpecialFrames { get; }
    /// <summary>The shared_info page (hypervisor memory, not guest RAM) and its MFN for start_info.shared_info (machine address = MFN × 4096).</summary>
    public GuestMemory SharedInfo { get; }
    public ulong SharedInfoMfn { get; }
    internal GuestMemory DummyPage { get; }
    public PvClock Clock { get; }
    public EventChannels Events { get; }
    public GrantTable Grants { get; }
    public PvTimers Timers { get; }

    // ------------------------------------------------------------ values supplied by the builder / CPU half

    /// <summary>start_info.console.domU.{mfn,evtchn} and store_{mfn,evtchn}, as the builder set them up.</summary>
    public ulong ConsoleMfn { get; set; }
    public uint ConsoleEvtchn { get; set; }
    public ulong StoreMfn { get; set; }
    public uint StoreEvtchn { get; set; }

    /// <summary>XENMEM_machphys_mapping: where the CPU half placed the read-only M2P. Default: Xen's 64-bit layout.</summary>
    public XenMachphysMapping MachphysMapping { get; set; } = new()
    {
        VStart = X86_64Layout.Mach2PhysVirtStart,
        VEnd = X86_64Layout.Mach2PhysVirtEnd,
        MaxMfn = X86_64Layout.Mach2PhysNrEntries - 1,
    };

    /// <summary>XENVER_platform_parameters.virt_start: the start of the hypervisor hole.</summary>
    public ulong HypervisorVirtStart { get; set; } = X86_64Layout.HypervisorVirtStart;

    /// <summary>Validates a VCPUOP_initialise context (CPU-specific checks: selectors, CR3, callbacks). Returns 0 or -errno. Default: accept.</summary>
    public Func<PvVcpuState, VcpuGuestContext, int>? ValidateInitialContext { get; set; }

    /// <summary>The kernel command line XENVER_commandline would return for dom0 (domU gets "&lt;denied&gt;").</summary>
    public string HypervisorCommandLine { get; set; } = "";

    /// <summary>vm_assist bits enabled by the guest (bit n = VMASST_TYPE n); the CPU half reads writable_pagetables etc. here.</summary>
    public ulong VmAssist { get => Interlocked.Read(ref _vmAssist); internal set => Interlocked.Exchange(ref _vmAssist, value); }
    private ulong _vmAssist;

    /// <summary>PHYSDEVOP_pirq_eoi_gmfn_v{1,2}: the frame the guest registered (no PIRQs exist for a domU, so nothing is written).</summary>
    public ulong PirqEoiGmfn { get; internal set; }

    /// <summary>SCHEDOP_shutdown_code: the code reported with the next shutdown.</summary>
    public byte? ShutdownCode { get; internal set; }

    /// <summary>CONSOLEIO_write output, into the hypervisor log.</summary>
    public Services.ConsoleLog ConsoleLog { get; private set; } = null!;

    /// <summary>The PV console ring backend serving this domain, when attached.</summary>
    public Services.PvConsoleBackend? ConsoleBackend { get; set; }

    // ------------------------------------------------------------ vCPUs

    /// <summary>The services state of vCPU <paramref name="id"/>; null when the domain has no such vCPU.</summary>
    public PvVcpuState? Vcpu(int id)
    {
        lock (_lock)
        {
            if (_vcpus.TryGetValue(id, out var s)) return s;
            var v = Domain.Vcpus.FirstOrDefault(x => x.Id == id);
            if (v is null) return null;
            s = new PvVcpuState(this, v);
            _vcpus[id] = s;
            _vcpuSnapshot = _vcpus.Values.OrderBy(x => x.Id).ToArray();
            return s;
        }
    }

    public PvVcpuState Vcpu(VirtualCpu vcpu) => Vcpu(vcpu.Id) ?? throw new ArgumentException($"d{DomainId} has no vCPU {vcpu.Id}");

    private volatile PvVcpuState[] _vcpuSnapshot = [];

    /// <summary>The services state of every vCPU created so far (all of them once the domain is built). Lock-free.</summary>
    public IReadOnlyList<PvVcpuState> AllVcpus => _vcpuSnapshot;

    // ------------------------------------------------------------ memory (identity p2m: PFN == MFN for RAM)

    /// <summary>True for a guest RAM frame that is currently populated (not ballooned out).</summary>
    public bool IsPopulatedRam(ulong pfn)
    {
        if (pfn >= Domain.Memory.FrameCount) return false;
        return (Volatile.Read(ref _populated[pfn / 64]) & (1UL << (int)(pfn % 64))) != 0;
    }

    /// <summary>Xen's tot_pages: populated RAM frames.</summary>
    public long PopulatedPages => Interlocked.Read(ref _populatedCount);
    /// <summary>Xen's max_pages.</summary>
    public ulong MaxPages => Domain.MaxBytes >> 12;

    internal bool TryDepopulate(ulong pfn) => TryDepopulate(pfn, 1);

    /// <summary>
    /// Balloons out <paramref name="count"/> frames from <paramref name="pfn"/> when every one of them is populated RAM:
    /// they leave the domain's tot_pages and their pages go back to the host (one hole punched in the memfd), so host
    /// free memory rises by their size. False, with nothing changed, when any of them is not populated.
    /// </summary>
    internal bool TryDepopulate(ulong pfn, ulong count)
    {
        lock (_lock)
        {
            for (ulong p = 0; p < count; p++)
                if (!IsPopulatedRam(pfn + p)) return false;
            for (ulong p = pfn; p < pfn + count; p++)
                _populated[p / 64] &= ~(1UL << (int)(p % 64));
            _populatedCount -= (long)count;
        }
        Domain.Memory.Discard(pfn << 12, count << 12);
        return true;
    }

    internal bool TryPopulate(ulong pfn)
    {
        lock (_lock)
        {
            if (pfn >= Domain.Memory.FrameCount || IsPopulatedRam(pfn)) return false;
            if ((ulong)_populatedCount >= MaxPages) return false;
            _populated[pfn / 64] |= 1UL << (int)(pfn % 64);
            _populatedCount++;
            return true;
        }
    }

    internal ulong? FindUnpopulated()
    {
        lock (_lock)
        {
            for (int w = 0; w < _populated.Length; w++)
            {
                if (_populated[w] == ulong.MaxValue) continue;
                for (int b = 0; b < 64; b++)
                {
                    ulong pfn = (ulong)w * 64 + (ulong)b;
                    if (pfn >= Domain.Memory.FrameCount) return null;
                    if ((_populated[w] & (1UL << b)) == 0) return pfn;
                }
            }
            return null;
        }
    }

    // ------------------------------------------------------------ logging

    /// <summary>Counts a hypercall number without a handler; the first of each number is logged (xl dmesg).</summary>
    public void NoteUnimplemented(ulong nr, string name)
    {
        bool first;
        lock (_lock)
        {
            _unimplemented.TryGetValue(nr, out long n);
            _unimplemented[nr] = n + 1;
            first = n == 0;
        }
        if (first) Domain.Hypervisor.Log.Write($"d{DomainId}: unimplemented {name} (nr {nr}) -> -ENOSYS");
    }

    /// <summary>Number of -ENOSYS calls per unimplemented hypercall number.</summary>
    public IReadOnlyDictionary<ulong, long> UnimplementedCounts
    {
        get { lock (_lock) return new Dictionary<ulong, long>(_unimplemented); }
    }

    /// <summary>Logs <paramref name="message"/> the first time <paramref name="key"/> is seen for this domain.</summary>
    public void LogOnce(string key, string message)
    {
        lock (_lock) if (!_loggedOnce.Add(key)) return;
        Domain.Hypervisor.Log.Write($"d{DomainId}: {message}");
    }

    private void OnDomainDestroyed(Domain d)
    {
        if (ReferenceEquals(d, Domain)) Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        Domain.Hypervisor.DomainDestroyed -= OnDomainDestroyed;
        Timers.Dispose();
        ConsoleBackend?.Dispose();
        Events.CloseAll();
        Grants.Dispose();
        SharedInfo.Dispose();
        DummyPage.Dispose();
    }
}
