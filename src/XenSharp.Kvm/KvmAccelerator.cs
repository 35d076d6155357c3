using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>The KVM back end: one open /dev/kvm shared by every VM created from it.</summary>
public sealed class KvmAccelerator : IAccelerator
{
    private readonly KvmSystem _system;

    public string Name => "kvm";
    public KvmSystem System => _system;

    /// <summary>
    /// KVM served by PVM (the kvm_pvm vendor module: no hardware virtualization): guest code at CPL3 runs natively,
    /// guest code at CPL0 runs in KVM's instruction emulator, so a PV guest runs at full speed and an HVM guest's
    /// kernel crawls. Only one vendor module serves /dev/kvm at a time, so the module's presence says which.
    /// </summary>
    public static bool IsPvm => Directory.Exists("/sys/module/kvm_pvm");

    public string? Note => IsPvm ? "PVM: no hardware virtualization, guest ring-0 code runs in KVM's instruction emulator" : null;

    /// <summary>Opens /dev/kvm; throws <see cref="AcceleratorUnavailableException"/> with the fix in its message.</summary>
    public KvmAccelerator(string devicePath = KvmSystem.DefaultDevicePath) => _system = new KvmSystem(devicePath);

    public IVirtualMachine CreateVirtualMachine() => CreateKvmVm();

    public KvmVm CreateKvmVm() => new(_system);

    private IReadOnlyList<CpuidEntry>? _supported;

    /// <summary>Intersects the feature flags with KVM_GET_SUPPORTED_CPUID (read once).</summary>
    public CpuidEntry FilterCpuid(CpuidEntry entry)
    {
        if (entry.Function is >= 0x40000000 and < 0x50000000) return entry;
        var table = _supported ??= _system.GetSupportedCpuid();
        return CpuidFeatures.Intersect(entry, CpuidFeatures.Find(table, entry.Function, entry.Index));
    }

    /// <summary>
    /// Whether KVM can be used here: opens the device, checks the API and the capabilities this back end needs, and
    /// creates and destroys one VM. For tests' skip reasons and the daemon's <c>--accel auto</c>.
    /// </summary>
    public static (bool Usable, string Reason) Probe(string devicePath = KvmSystem.DefaultDevicePath)
    {
        try
        {
            using var system = new KvmSystem(devicePath);
            using (system.CreateVmFd()) { }
            var extras = new List<string>();
            if (system.CheckExtension(KvmCap.SYNC_REGS) is int sync and > 0) extras.Add($"sync regs 0x{sync:x}");
            if (system.CheckExtension(KvmCap.IRQCHIP) > 0) extras.Add("in-kernel irqchip");
            if (system.CheckExtension(KvmCap.READONLY_MEM) > 0) extras.Add("read-only memory");
            return (true, $"KVM API {system.ApiVersion} on {devicePath}" + (extras.Count > 0 ? ": " + string.Join(", ", extras) : ""));
        }
        catch (AcceleratorUnavailableException e)
        {
            return (false, e.Message);
        }
        catch (KvmException e)
        {
            return (false, $"{devicePath} opens but KVM cannot be used: {e.Message}");
        }
    }

    public void Dispose() => _system.Dispose();
}
