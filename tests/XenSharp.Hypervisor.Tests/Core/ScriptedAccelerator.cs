using System.Collections.Concurrent;
using XenSharp.Accel;

namespace XenSharp.Hypervisor.Tests.Core;

/// <summary>
/// A stand-in accelerator for testing the domain machinery alone: each vCPU replays exits that the test
/// queues, and otherwise waits (as a guest spinning in a loop would) until kicked.
/// </summary>
public sealed class ScriptedAccelerator : IAccelerator
{
    public string Name => "scripted";
    public List<ScriptedVm> Vms { get; } = new();
    public IVirtualMachine CreateVirtualMachine()
    {
        var vm = new ScriptedVm();
        lock (Vms) Vms.Add(vm);
        return vm;
    }
    public CpuidEntry FilterCpuid(CpuidEntry entry) => entry;
    public void Dispose() { }
}

public sealed class ScriptedVm : IVirtualMachine
{
    public ConcurrentDictionary<int, ScriptedVcpu> Vcpus { get; } = new();
    public bool Disposed { get; private set; }
    public void MapMemory(int slot, ulong guestPhysical, GuestMemory memory, ulong offset, ulong length, bool readOnly = false) { }
    public void UnmapMemory(int slot) { }
    public IVcpu CreateVcpu(int id) => Vcpus[id] = new ScriptedVcpu(id);
    public bool TryCreateInterruptController() => false;
    public void SetIrqLine(int irq, bool level) => throw new NotSupportedException();
    public void Dispose() => Disposed = true;
}

public sealed class ScriptedVcpu(int id) : IVcpu
{
    private readonly BlockingCollection<VcpuExit> _exits = new();
    private int _kicked;
    private VcpuRegisters _regs;
    private SpecialRegisters _sregs;
    public int Id => id;
    public int Runs;
    public ulong LastCompletedRead;
    public bool Disposed { get; private set; }

    public void Enqueue(VcpuExit exit) => _exits.Add(exit);

    public VcpuExit Run()
    {
        Interlocked.Increment(ref Runs);
        while (true)
        {
            if (Interlocked.Exchange(ref _kicked, 0) != 0) return new VcpuExit(ExitReason.Interrupted);
            if (_exits.TryTake(out var e, 5)) return e;
        }
    }

    public void Kick() => Interlocked.Exchange(ref _kicked, 1);
    public void CompleteRead(ulong value) => LastCompletedRead = value;
    public VcpuRegisters GetRegisters() => _regs;
    public void SetRegisters(in VcpuRegisters regs) => _regs = regs;
    public SpecialRegisters GetSpecialRegisters() => _sregs;
    public void SetSpecialRegisters(in SpecialRegisters sregs) => _sregs = sregs;
    public void SetCpuid(IReadOnlyList<CpuidEntry> entries) { }
    public void SetMsr(uint index, ulong value) { }
    public ulong GetMsr(uint index) => 0;
    public void InjectInterrupt(int vector) { }
    public void Dispose() => Disposed = true;
}
