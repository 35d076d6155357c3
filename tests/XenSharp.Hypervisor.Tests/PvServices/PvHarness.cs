using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.PvServices;

/// <summary>An accelerator whose vCPUs never run: enough for pure hypervisor-logic tests. Counts kicks.</summary>
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
}

internal sealed class InertVcpu(int id) : IVcpu
{
    private int _kicks;
    public int Id { get; } = id;
    public int Kicks => Volatile.Read(ref _kicks);
    /// <summary>Set to make the next Run return an I/O exit (a stand-in for "the guest made a hypercall").</summary>
    public volatile bool ExitOnce;
    public VcpuExit Run()
    {
        if (ExitOnce)
        {
            ExitOnce = false;
            return new VcpuExit(ExitReason.Io, 0x1234);
        }
        Thread.Sleep(1);
        return new VcpuExit(ExitReason.Interrupted);
    }
    public void Kick() => Interlocked.Increment(ref _kicks);
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

/// <summary>A hypervisor with PV domains built on the inert accelerator; guest VA == guest-physical address.</summary>
internal sealed class PvHarness : IDisposable
{
    public const ulong Scratch = 0x100000;
    public XenHypervisor Hv { get; }
    private static readonly HypercallTable s_table = HypercallTable.CreateDefault();

    public PvHarness()
    {
        Hv = new XenHypervisor(new InertAccelerator(), new HostMemory(64UL << 30, 1UL << 30));
    }

    public TestDomain NewDomain(string name = "guest", int vcpus = 2, ulong mib = 16, ulong maxMib = 16)
    {
        var d = Hv.CreateDomain(new DomainCreateSpec($"{name}-{Guid.NewGuid():N}", DomainType.Pv, mib << 20, maxMib << 20, vcpus, vcpus));
        for (int i = 0; i < vcpus; i++) d.AddVcpu(i).StartsOnline = i == 0;
        var pv = new PvDomainState(d, new PvDomainOptions { Hypercalls = s_table });
        return new TestDomain(this, d, pv);
    }

    public void Dispose() => Hv.Dispose();
}

internal sealed class TestDomain(PvHarness h, Domain domain, PvDomainState pv)
{
    public PvHarness Harness { get; } = h;
    public Domain Domain { get; } = domain;
    public PvDomainState Pv { get; } = pv;
    public GuestMemory Ram => Domain.Memory;
    public LinearGuestVirtualMemory Va { get; } = new(domain.Memory);

    public PvHypercallContext Ctx(int vcpu = 0) => new(Pv, Pv.Vcpu(vcpu)!, Va);

    public long Call(int nr, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, int vcpu = 0) =>
        Pv.Hypercalls.Dispatch(Ctx(vcpu), (ulong)nr, new HypercallArgs(a1, a2, a3, a4, a5));

    public void Put<T>(ulong gpa, T value) where T : unmanaged => MemoryMarshal.Write(Ram.Span(gpa, Marshal.SizeOf<T>()), in value);
    public T Get<T>(ulong gpa) where T : unmanaged => MemoryMarshal.Read<T>(Ram.Span(gpa, Marshal.SizeOf<T>()));

    /// <summary>Runs an op struct through a hypercall (arg at the scratch area) and returns (rc, struct after).</summary>
    public (long Rc, T Out) Op<T>(int nr, int cmd, T arg, int vcpu = 0) where T : unmanaged
    {
        Put(PvHarness.Scratch, arg);
        long rc = Call(nr, (ulong)cmd, PvHarness.Scratch, vcpu: vcpu);
        return (rc, Get<T>(PvHarness.Scratch));
    }

    public (long Rc, T Out) Evtchn<T>(int cmd, T arg) where T : unmanaged => Op(Hypercall.EventChannelOp, cmd, arg);

    // shared_info bits
    public bool Pending(uint port) => (Pv.SharedInfo.ReadUInt64(2048 + port / 64 * 8) & (1UL << (int)(port % 64))) != 0;
    public bool Masked(uint port) => (Pv.SharedInfo.ReadUInt64(2560 + port / 64 * 8) & (1UL << (int)(port % 64))) != 0;
    public void SetMask(uint port, bool on)
    {
        ulong a = 2560 + port / 64 * 8;
        ulong w = Pv.SharedInfo.ReadUInt64(a);
        Pv.SharedInfo.WriteUInt64(a, on ? w | (1UL << (int)(port % 64)) : w & ~(1UL << (int)(port % 64)));
    }
    public byte UpcallPending(int vcpu) => Pv.SharedInfo.ReadByte((ulong)vcpu * 64);
    public byte UpcallMask(int vcpu) => Pv.SharedInfo.ReadByte((ulong)vcpu * 64 + 1);
    public ulong PendingSel(int vcpu) => Pv.SharedInfo.ReadUInt64((ulong)vcpu * 64 + 8);

    /// <summary>What a guest's upcall handler does: clear upcall_pending and the selector, clear pending bits.</summary>
    public void GuestAcknowledgeAll(int vcpu)
    {
        Pv.SharedInfo.WriteByte((ulong)vcpu * 64, 0);
        Pv.SharedInfo.WriteUInt64((ulong)vcpu * 64 + 8, 0);
        for (ulong w = 0; w < 64; w++) Pv.SharedInfo.WriteUInt64(2048 + w * 8, 0);
    }

    public int Kicks(int vcpu) => ((InertVcpu)Domain.Vcpus[vcpu].Cpu).Kicks;

    public uint BindVirq(uint virq, uint vcpu)
    {
        var (rc, o) = Evtchn(EvtchnOp.BindVirq, new EvtchnBindVirq { Virq = virq, Vcpu = vcpu });
        Assert.Equal(0, rc);
        return o.Port;
    }
}
