using XenSharp.Accel;

namespace XenSharp.Hypervisor.Hvm;

/// <summary>
/// The emulated platform of an HVM domain: port I/O devices (COM1, power control, i8042 reset), and
/// MMIO with nothing behind it. Unclaimed ports and addresses behave as on a PC (reads all-ones, writes
/// dropped) and are reported once each in the hypervisor log.
/// The minimal platform has no interrupt controller: a halted vCPU wakes when console input arrives or the
/// power button is pressed, as if an interrupt had been taken and returned from.
/// </summary>
public sealed class HvmPlatform : IDomainPlatform
{
    private readonly Domain _domain;
    private readonly HashSet<ulong> _reportedUnclaimed = new();

    public IoBus Io { get; } = new();
    public PowerControl Power { get; }
    public Uart16550 Com1 { get; }

    public HvmPlatform(Domain domain)
    {
        _domain = domain;
        Power = new PowerControl(reason => domain.Shutdown(reason));
        // No in-kernel irqchip: KVM then hands HLT to us, with the same semantics as the software CPU.
        Com1 = new Uart16550(HvmLayout.Com1, domain.Console, irqLine: null);
        Io.Register(HvmLayout.Com1, 8, Com1);
        Io.Register(PowerControl.Pm1aControlPort, 3, Power);
        Io.Register(PowerControl.I8042DataPort, 1, Power);
        Io.Register(PowerControl.I8042CommandPort, 1, Power);
        Io.Register(0x80, 1, new PostCodePort());
        domain.Console.InputAvailable += WakeAll;
        Power.ButtonPressed += WakeAll;
    }

    private void WakeAll()
    {
        foreach (var v in _domain.Vcpus) v.Wake();
    }

    public ExitAction HandleExit(VirtualCpu vcpu, in VcpuExit exit)
    {
        switch (exit.Reason)
        {
            case ExitReason.Io:
                if (exit.IsWrite)
                {
                    if (!Io.Write((ushort)exit.Address, exit.Size, exit.Data)) ReportUnclaimed("port", exit.Address);
                }
                else
                {
                    if (Io.Find((ushort)exit.Address) is null) ReportUnclaimed("port", exit.Address);
                    vcpu.Cpu.CompleteRead(Io.Read((ushort)exit.Address, exit.Size));
                }
                return _domain.ShutdownReason is null ? ExitAction.Continue : ExitAction.Stop;
            case ExitReason.Mmio:
                ReportUnclaimed("mmio", exit.Address);
                if (!exit.IsWrite) vcpu.Cpu.CompleteRead(exit.Size >= 8 ? ulong.MaxValue : (1UL << (exit.Size * 8)) - 1);
                return ExitAction.Continue;
            case ExitReason.Halt:
                return ExitAction.Block;
            case ExitReason.SystemEvent:
                _domain.Shutdown(ShutdownReason.Poweroff);
                return ExitAction.Stop;
            default:
                _domain.Crash($"vcpu{vcpu.Id}: unexpected exit {exit}");
                return ExitAction.Stop;
        }
    }

    public void BeforeEntry(VirtualCpu vcpu) { }

    public bool HasPendingWork(VirtualCpu vcpu) => _domain.Console.PendingInput > 0 || Power.IsButtonLatched;

    private void ReportUnclaimed(string kind, ulong address)
    {
        bool first;
        lock (_reportedUnclaimed) first = _reportedUnclaimed.Add(address | (kind == "mmio" ? 1UL << 63 : 0));
        if (first) _domain.Hypervisor.Log.Write($"d{_domain.Id}: access to unclaimed {kind} 0x{address:x} (reads all-ones, writes ignored)");
    }

    public void Dispose()
    {
        _domain.Console.InputAvailable -= WakeAll;
        Power.ButtonPressed -= WakeAll;
    }

    /// <summary>Port 0x80: BIOS POST codes. Writes are accepted and dropped; it exists so firmware does not flood the log.</summary>
    private sealed class PostCodePort : IPortDevice
    {
        public ulong Read(ushort port, int size) => 0xff;
        public void Write(ushort port, int size, ulong value) { }
    }
}
