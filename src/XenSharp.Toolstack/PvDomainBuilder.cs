using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Build;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Toolstack;

/// <summary>
/// Composes a PV domain from a plan (type="pv"): create the domain, build the kernel with pvbuild's builder, map the
/// hypervisor area, attach the PV platform and prepare vCPU 0 at the kernel's entry (A.7). Mirrors HvmDomainBuilder.
/// </summary>
public static class PvDomainBuilder
{
    public static (Domain Domain, PvDomainParts Parts) Build(XenHypervisor hypervisor, DomainPlan plan)
    {
        byte[] kernel = HvmDomainBuilder.ReadImage(plan.Kernel, "kernel");
        byte[] initrd = plan.Ramdisk is { } rd ? HvmDomainBuilder.ReadImage(rd, "ramdisk") : [];
        var domain = hypervisor.CreateDomain(new DomainCreateSpec(plan.Name, DomainType.Pv, plan.MemoryMiB << 20, plan.MaxMemoryMiB << 20, plan.Vcpus, plan.MaxVcpus, plan.Uuid));
        try
        {
            var parts = PvDomainSetup.Compose(domain, plan.Vcpus, kernel, plan.Cmdline ?? "", initrd);
            return (domain, parts);
        }
        catch (PvBuildException e)
        {
            hypervisor.Destroy(domain);
            throw new ToolstackException($"kernel '{plan.Kernel}': {e.Message}");
        }
        catch
        {
            hypervisor.Destroy(domain);
            throw;
        }
    }
}
