using XenSharp.Accel;
using XenSharp.Emu;
using XenSharp.Kvm;

namespace XenSharp.Daemon;

/// <summary>Picks how guest code runs: KVM where the host offers it, else (or when asked) the software CPU.</summary>
public static class AcceleratorChoice
{
    public static IAccelerator Create(string choice, Action<string> log)
    {
        switch (choice)
        {
            case "kvm":
                return new KvmAccelerator();
            case "emu":
                return new EmuAccelerator();
            default:
                var (usable, reason) = KvmAccelerator.Probe();
                if (usable) return new KvmAccelerator();
                log($"KVM is not usable ({reason}); running guests on the software CPU, which is much slower");
                return new EmuAccelerator();
        }
    }
}
