using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Dom0.Xenbus;
using XenSharp.Dom0.Xenstore;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Dom0.Tests.Xenbus;

/// <summary>An accelerator whose vCPUs never run: the guests here are simulated frontends driven by the test.</summary>
internal sealed class InertAccelerator : IAccelerator
{
    public string Name => "inert";
    public IVirtualMachine CreateVirtualMachine() => new Vm();
    public CpuidEntry FilterCpuid(CpuidEntry entry) => entry;
    public void Dispose() { }

    private sealed class Vm : IVirtualMachine
    {
        public void MapMemory(int slot, ulong guestPhysical, GuestMemory memory, ulong offset, ulong length, bool readOnly = false) { }
        public void UnmapMemory(int slot) { }
        public IVcpu CreateVcpu(int id) => new InertVcpu(id);
        public bool TryCreateInterruptController() => false;
        public void SetIrqLine(int irq, bool level) { }
        public void Dispose() { }
    }

    private sealed class InertVcpu(int id) : IVcpu
    {
        public int Id { get; } = id;
        public VcpuExit Run() { Thread.Sleep(1); return new VcpuExit(ExitReason.Interrupted); }
        public void Kick() { }
        public void CompleteRead(ulong value) { }
        public VcpuRegisters GetRegisters() => default;
        public void SetRegisters(in VcpuRegisters regs) { }
        public SpecialRegisters GetSpecialRegisters() => default;
        public void SetSpecialRegisters(in SpecialRegisters sregs) { }
        public void SetCpuid(IReadOnlyList<CpuidEntry> entries) { }
        public void SetMsr(uint index, ulong value) { }
        public ulong GetMsr(uint index) => 0;
        public void InjectInterrupt(int vector) { }
        public void Dispose() { }
    }
}

/// <summary>A hypervisor with inert PV domains, a xenstore and a dom0 client.</summary>
internal sealed class BackendHarness : IDisposable
{
    public XenHypervisor Hv { get; } = new(new InertAccelerator(), new HostMemory(64UL << 30, 1UL << 30));
    public XenstoreStore Store { get; } = new();
    public XenstoreClient Xs { get; }

    private readonly List<XenstoreClient> _guestClients = [];

    public BackendHarness() => Xs = new XenstoreClient(Store);

    /// <summary>A xenstore connection with domain <paramref name="domid"/>'s identity (unprivileged), as its xenbus would have.</summary>
    public XenstoreClient GuestClient(uint domid)
    {
        var c = new XenstoreClient(Store, domid);
        lock (_guestClients) _guestClients.Add(c);
        return c;
    }

    public SimGuest NewGuest(ulong mib = 16)
    {
        var d = Hv.CreateDomain(new DomainCreateSpec($"g-{Guid.NewGuid():N}", DomainType.Pv, mib << 20, mib << 20, 1, 1));
        d.AddVcpu(0).StartsOnline = true;
        var pv = new PvDomainState(d);
        pv.Grants.Grow(8); // as a guest does with GNTTABOP_setup_table
        return new SimGuest(this, d, pv);
    }

    public static void WaitUntil(Func<bool> cond, int ms = 5000, string? what = null)
    {
        var end = Environment.TickCount64 + ms;
        while (!cond())
        {
            if (Environment.TickCount64 > end) throw new TimeoutException("timed out waiting for " + (what ?? "condition"));
            Thread.Sleep(2);
        }
    }

    public void Dispose()
    {
        lock (_guestClients) foreach (var c in _guestClients) c.Dispose();
        Xs.Dispose();
        Hv.Dispose();
    }
}

/// <summary>A simulated frontend's domain: grants pages to dom0, shares rings, allocates event channels.</summary>
internal sealed class SimGuest(BackendHarness h, Domain d, PvDomainState pv)
{
    private uint _nextGref = 8;
    private ulong _nextPfn = 64;
    public BackendHarness Harness { get; } = h;
    public Domain Domain { get; } = d;
    public PvDomainState Pv { get; } = pv;
    public uint Id => Domain.Id;
    private Dom0.Xenstore.XenstoreClient? _xs;
    /// <summary>The guest's own (unprivileged) xenstore connection: frontends write through it.</summary>
    public Dom0.Xenstore.XenstoreClient Xs => _xs ??= Harness.GuestClient(Id);

    public Span<byte> Page(ulong pfn) => Domain.Memory.Frame(pfn);

    public ulong AllocPage()
    {
        ulong p = _nextPfn++;
        Page(p).Clear();
        return p;
    }

    /// <summary>Grants frame <paramref name="pfn"/> to dom0; returns the reference.</summary>
    public uint Grant(ulong pfn, bool ro = false)
    {
        uint g = _nextGref++;
        Pv.Grants.SeedEntry(g, 0, (uint)pfn, ro);
        return g;
    }

    public uint AllocPortForDom0()
    {
        Assert.Equal(0, Pv.Events.AllocUnbound(DomId.Self, 0, out uint port));
        return port;
    }

    public void Send(uint port) => Assert.Equal(0, Pv.Events.Send(port));

    public bool Pending(uint port) => (Pv.SharedInfo.ReadUInt64(2048 + port / 64 * 8) & (1UL << (int)(port % 64))) != 0;
    public void ClearPending(uint port)
    {
        ulong a = 2048 + port / 64 * 8;
        Pv.SharedInfo.WriteUInt64(a, Pv.SharedInfo.ReadUInt64(a) & ~(1UL << (int)(port % 64)));
    }
}

/// <summary>The front end of a one-page ring in a simulated guest.</summary>
internal sealed class FrontRing
{
    private readonly SimGuest _g;
    public ulong Pfn { get; }
    public uint Gref { get; }
    public int EntrySize { get; }
    public uint Size { get; }
    public uint ReqProdPvt;
    public uint RspCons;

    public FrontRing(SimGuest g, int entrySize)
    {
        _g = g;
        Pfn = g.AllocPage();
        Gref = g.Grant(Pfn);
        EntrySize = entrySize;
        Size = BackRing.RingSizeFor(entrySize);
        // SHARED_RING_INIT: req_event = rsp_event = 1.
        ReqEvent = 1;
        RspEvent = 1;
    }

    private Span<byte> P => _g.Page(Pfn);
    public uint ReqProd { get => MemoryMarshal.Read<uint>(P); set => MemoryMarshal.Write(P, in value); }
    public uint ReqEvent { get => MemoryMarshal.Read<uint>(P[4..]); set => MemoryMarshal.Write(P[4..], in value); }
    public uint RspProd => MemoryMarshal.Read<uint>(P[8..]);
    public uint RspEvent { get => MemoryMarshal.Read<uint>(P[12..]); set => MemoryMarshal.Write(P[12..], in value); }

    public Span<byte> Entry(uint idx) => P.Slice(64 + (int)(idx & (Size - 1)) * EntrySize, EntrySize);

    public void Put<T>(T req) where T : unmanaged
    {
        var e = Entry(ReqProdPvt++);
        e.Clear();
        MemoryMarshal.Write(e, in req);
    }

    /// <summary>RING_PUSH_REQUESTS_AND_CHECK_NOTIFY.</summary>
    public bool Push()
    {
        uint old = ReqProd, nw = ReqProdPvt;
        Interlocked.MemoryBarrier();
        ReqProd = nw;
        Interlocked.MemoryBarrier();
        return nw - ReqEvent < nw - old;
    }

    public T Take<T>() where T : unmanaged => MemoryMarshal.Read<T>(Entry(RspCons++));

    public bool HasResponse => RspProd != RspCons;

    /// <summary>Waits for a response and consumes it (re-arming rsp_event as RING_FINAL_CHECK_FOR_RESPONSES does).</summary>
    public T WaitResponse<T>(int ms = 5000) where T : unmanaged
    {
        BackendHarness.WaitUntil(() => HasResponse, ms, "a response");
        var r = Take<T>();
        RspEvent = RspCons + 1;
        return r;
    }
}
