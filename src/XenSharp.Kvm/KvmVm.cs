using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>
/// One KVM virtual machine: memory slots backed by <see cref="GuestMemory"/>, vCPUs, and the optional in-kernel
/// interrupt controllers. Disposing it disposes its vCPUs first.
/// </summary>
public sealed unsafe class KvmVm : IVirtualMachine
{
    /// <summary>Where the VMX real-mode helpers go (as QEMU places them): one identity-map page and then three TSS pages, just below 4 GiB - 16 MiB.</summary>
    public const ulong IdentityMapAddress = 0xfeffc000, TssAddress = IdentityMapAddress + 0x1000;

    private readonly KvmFileDescriptor _fd;
    private readonly Lock _gate = new();
    private readonly Dictionary<int, (ulong Gpa, ulong Size, nint Host, uint Flags, GuestMemory Memory)> _slots = new();
    private readonly List<KvmVcpu> _vcpus = new();
    private bool _disposed;

    internal KvmSystem System { get; }

    /// <summary>Whether TryCreateInterruptController created the in-kernel irqchip / PIT.</summary>
    public bool HasIrqchip { get; private set; }
    public bool HasPit { get; private set; }

    internal KvmVm(KvmSystem system)
    {
        System = system;
        _fd = system.CreateVmFd();
        try
        {
            // VMX (kvm_intel) needs guest-physical room for its real-mode TSS and EPT identity map; SVM and PVM do not.
            if (Directory.Exists("/sys/module/kvm_intel"))
            {
                ulong identity = IdentityMapAddress;
                if (System.CheckExtension(KvmCap.SET_IDENTITY_MAP_ADDR) > 0)
                    KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_IDENTITY_MAP_ADDR, &identity), "KVM_SET_IDENTITY_MAP_ADDR", $"0x{identity:x}");
                if (System.CheckExtension(KvmCap.SET_TSS_ADDR) > 0)
                    KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_TSS_ADDR, unchecked((nint)TssAddress)), "KVM_SET_TSS_ADDR", $"0x{TssAddress:x}");
            }
        }
        catch
        {
            _fd.Dispose();
            throw;
        }
    }

    internal KvmFileDescriptor Handle => _fd;

    public IReadOnlyList<KvmVcpu> Vcpus { get { lock (_gate) return _vcpus.ToArray(); } }

    public void MapMemory(int slot, ulong guestPhysical, GuestMemory memory, ulong offset, ulong length, bool readOnly = false)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (slot < 0) throw new ArgumentOutOfRangeException(nameof(slot), slot, "slot must be non-negative");
        if (length == 0) throw new ArgumentOutOfRangeException(nameof(length), "length must be non-zero; use UnmapMemory to remove a slot");
        if (((guestPhysical | offset | length) & 0xfff) != 0)
            throw new ArgumentException($"slot {slot}: guest-physical 0x{guestPhysical:x}, offset 0x{offset:x} and length 0x{length:x} must be 4 KiB aligned");
        if (!memory.Contains(offset, length))
            throw new ArgumentOutOfRangeException(nameof(length), $"slot {slot}: [0x{offset:x}, +0x{length:x}) lies outside guest memory of {memory.Size} bytes");
        if (readOnly && System.CheckExtension(KvmCap.READONLY_MEM) <= 0)
            throw new NotSupportedException("read-only memory slots need KVM_CAP_READONLY_MEM, which this KVM lacks");

        var region = new KvmUserspaceMemoryRegion
        {
            Slot = (uint)slot,
            Flags = readOnly ? KvmLayout.MEM_READONLY : 0,
            GuestPhysAddr = guestPhysical,
            MemorySize = length,
            UserspaceAddr = (ulong)(memory.HostAddress + (nint)offset),
        };
        lock (_gate)
        {
            // KVM cannot resize or move a slot in place: replace it by deleting it first.
            if (_slots.ContainsKey(slot)) UnmapLocked(slot);
            KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION", $"slot {slot}");
            _slots[slot] = (guestPhysical, length, (nint)region.UserspaceAddr, region.Flags, memory);
        }
    }

    public void UnmapMemory(int slot)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gate)
        {
            if (!_slots.ContainsKey(slot)) throw new ArgumentException($"memory slot {slot} is not mapped", nameof(slot));
            UnmapLocked(slot);
        }
    }

    private void UnmapLocked(int slot)
    {
        var s = _slots[slot];
        // memory_size 0 deletes the slot; the other fields must still pass KVM's alignment checks.
        var region = new KvmUserspaceMemoryRegion { Slot = (uint)slot, Flags = s.Flags, GuestPhysAddr = s.Gpa, MemorySize = 0, UserspaceAddr = (ulong)s.Host };
        KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION", $"slot {slot} (delete)");
        _slots.Remove(slot);
    }

    IVcpu IVirtualMachine.CreateVcpu(int id) => CreateVcpu(id);

    public KvmVcpu CreateVcpu(int id, bool syncRegisters = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (id < 0) throw new ArgumentOutOfRangeException(nameof(id), id, "vCPU id must be non-negative");
        var vcpu = new KvmVcpu(this, id, syncRegisters);
        lock (_gate) _vcpus.Add(vcpu);
        return vcpu;
    }

    internal void Forget(KvmVcpu vcpu)
    {
        lock (_gate) _vcpus.Remove(vcpu);
    }

    /// <summary>
    /// KVM_CREATE_IRQCHIP (PIC, IOAPIC, per-vCPU LAPIC) and KVM_CREATE_PIT2. Must come before the first vCPU is
    /// created: KVM attaches the LAPIC when the vCPU is created.
    /// </summary>
    public bool TryCreateInterruptController()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gate)
        {
            if (HasIrqchip) return true;
            if (System.CheckExtension(KvmCap.IRQCHIP) <= 0) return false;
            if (_vcpus.Count > 0) throw new InvalidOperationException("the in-kernel interrupt controller must be created before the first vCPU");
            KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
            HasIrqchip = true;
            if (System.CheckExtension(KvmCap.PIT2) > 0)
            {
                // The speaker port (0x61) stays with the VMM's device model.
                var config = new KvmPitConfig { Flags = KvmLayout.PIT_SPEAKER_DUMMY };
                KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2");
                HasPit = true;
            }
            return true;
        }
    }

    public void SetIrqLine(int irq, bool level)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!HasIrqchip) throw new InvalidOperationException("SetIrqLine needs the in-kernel interrupt controller (TryCreateInterruptController)");
        var l = new KvmIrqLevel { Irq = (uint)irq, Level = level ? 1u : 0u };
        KvmSys.Check(KvmSys.Ioctl(_fd, KvmIoctl.KVM_IRQ_LINE, &l), "KVM_IRQ_LINE", $"irq {irq}");
    }

    public void Dispose()
    {
        KvmVcpu[] vcpus;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            vcpus = _vcpus.ToArray();
        }
        foreach (var v in vcpus) v.Dispose();
        lock (_gate) _slots.Clear();
        _fd.Dispose();
    }
}
