using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Hvm;

namespace XenSharp.Toolstack;

/// <summary>Composes a minimal HVM domain from a plan: memory and vCPUs, the image, the boot CPU, the platform.</summary>
public static class HvmDomainBuilder
{
    public static (Domain Domain, HvmPlatform Platform) Build(XenHypervisor hypervisor, DomainPlan plan)
    {
        byte[] image = ReadImage(plan.Kernel, "kernel");
        var domain = hypervisor.CreateDomain(new DomainCreateSpec(plan.Name, DomainType.Hvm, plan.MemoryMiB << 20, plan.MaxMemoryMiB << 20, plan.Vcpus, plan.MaxVcpus, plan.Uuid));
        try
        {
            var loaded = HvmBuilder.IsElf(image)
                ? HvmBuilder.LoadElf(domain.Memory, image)
                : HvmBuilder.LoadFlat(domain.Memory, image, HvmLayout.DefaultFlatLoad, BootMode.Long);
            var cpuid = HvmCpuid.Table(hypervisor.Accelerator);
            for (int i = 0; i < plan.Vcpus; i++)
            {
                var v = domain.AddVcpu(i);
                v.Cpu.SetCpuid(cpuid);
                // Without a local APIC to send INIT/SIPI, only the boot processor runs in the minimal platform.
                v.StartsOnline = i == 0;
            }
            HvmBuilder.SetupBootCpu(domain.Memory, domain.Vcpus[0].Cpu, loaded);
            var platform = new HvmPlatform(domain);
            domain.AttachPlatform(platform);
            return (domain, platform);
        }
        catch
        {
            hypervisor.Destroy(domain);
            throw;
        }
    }

    internal static byte[] ReadImage(string path, string what)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new ToolstackException($"{what} '{path}' does not exist");
            if (info.Length > 512L << 20) throw new ToolstackException($"{what} '{path}' is {info.Length >> 20} MiB: larger than any image we load");
            return File.ReadAllBytes(path);
        }
        catch (UnauthorizedAccessException)
        {
            throw new ToolstackException($"{what} '{path}' is not readable by xld");
        }
    }
}

/// <summary>A toolstack operation failed for a reason the user can fix; the message says which.</summary>
public sealed class ToolstackException(string message) : Exception(message);
