namespace XenSharp.Accel;

/// <summary>
/// A way to run guest code: hardware-assisted (KVM) or a software CPU. The hypervisor is written against
/// these interfaces only, so a domain runs the same whichever back end the host offers.
/// </summary>
public interface IAccelerator : IDisposable
{
    /// <summary>Short name shown to users: "kvm", "emu".</summary>
    string Name { get; }

    /// <summary>What a user should know about how this back end runs guests here, or null (shown by xl info).</summary>
    string? Note => null;

    IVirtualMachine CreateVirtualMachine();

    /// <summary>
    /// What this back end can run, as KVM_GET_SUPPORTED_CPUID says it: <paramref name="entry"/> (a leaf of the VMM's
    /// policy) with every feature flag the back end cannot execute cleared (see <see cref="CpuidFeatures"/>). Descriptive
    /// fields pass unchanged; hypervisor leaves (0x40000000-0x4fffffff) are the VMM's and pass unchanged.
    /// </summary>
    CpuidEntry FilterCpuid(CpuidEntry entry);
}

public interface IVirtualMachine : IDisposable
{
    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="memory"/>, starting at <paramref name="offset"/>, at guest-physical <paramref name="guestPhysical"/>.</summary>
    void MapMemory(int slot, ulong guestPhysical, GuestMemory memory, ulong offset, ulong length, bool readOnly = false);

    void UnmapMemory(int slot);

    IVcpu CreateVcpu(int id);

    /// <summary>Creates the in-kernel PIC/IOAPIC/LAPIC and PIT where the back end has them; returns false where it does not.</summary>
    bool TryCreateInterruptController();

    /// <summary>Raises or lowers a line on the in-kernel interrupt controller.</summary>
    void SetIrqLine(int irq, bool level);
}

/// <summary>
/// One virtual CPU. <see cref="Run"/> and the register accessors are called only from the vCPU's own thread;
/// <see cref="Kick"/> may be called from any thread.
/// </summary>
public interface IVcpu : IDisposable
{
    int Id { get; }

    /// <summary>Runs the guest until the next exit.</summary>
    VcpuExit Run();

    /// <summary>Makes a current or the next <see cref="Run"/> return <see cref="ExitReason.Interrupted"/> soon. Thread-safe.</summary>
    void Kick();

    /// <summary>Supplies the value of the I/O-in or MMIO read that caused the last exit.</summary>
    void CompleteRead(ulong value);

    VcpuRegisters GetRegisters();
    void SetRegisters(in VcpuRegisters regs);
    SpecialRegisters GetSpecialRegisters();
    void SetSpecialRegisters(in SpecialRegisters sregs);

    /// <summary>Sets the CPUID leaves the guest sees from a plain CPUID instruction.</summary>
    void SetCpuid(IReadOnlyList<CpuidEntry> entries);

    void SetMsr(uint index, ulong value);
    ulong GetMsr(uint index);

    /// <summary>Queues an external interrupt (no in-kernel irqchip) for delivery when the guest can take it.</summary>
    void InjectInterrupt(int vector);
}

public readonly record struct CpuidEntry(uint Function, uint Index, uint Eax, uint Ebx, uint Ecx, uint Edx, bool IndexSignificant = false);

/// <summary>The host offers no usable accelerator of this kind. The message says what to do.</summary>
public sealed class AcceleratorUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
