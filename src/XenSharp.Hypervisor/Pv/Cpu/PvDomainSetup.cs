using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Build;
using XenSharp.Hypervisor.Pv.Services;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>A PV domain once composed: its services state, build result and platform.</summary>
public sealed record PvDomainParts(PvDomainState Services, PvBuildResult Build, PvPlatform Platform, uint ConsolePort, uint StorePort);

/// <summary>
/// Composes a PV domain inside a freshly created (paused, vCPU-less) domain: vCPUs, the services state, console and
/// xenstore ports, pvbuild's builder, the hypervisor area mapped above RAM, the platform, and the boot vCPU.
/// </summary>
public static class PvDomainSetup
{
    /// <summary>Guest-memory slot of the hypervisor area (slot 0 is RAM; special frames use 8 upward).</summary>
    public const int HypervisorAreaSlot = 1;

    public static PvDomainParts Compose(Domain domain, int vcpus, ReadOnlyMemory<byte> kernelFile, string commandLine,
        ReadOnlyMemory<byte> initrd = default, PvDomainOptions? options = null)
    {
        for (int i = 0; i < domain.MaxVcpus; i++)
        {
            var v = domain.AddVcpu(i);
            v.StartsOnline = i == 0;
        }
        _ = vcpus; // the others are brought up by the guest with VCPUOP_initialise/up, as on Xen
        var services = new PvDomainState(domain, options);
        int rc = services.Events.AllocUnbound(DomId.Self, 0, out uint consolePort);
        if (rc != 0) throw new InvalidOperationException($"console event channel: error {rc}");
        rc = services.Events.AllocUnbound(DomId.Self, 0, out uint storePort);
        if (rc != 0) throw new InvalidOperationException($"xenstore event channel: error {rc}");
        var kernel = KernelImage.FromBytes(kernelFile);
        var build = PvDomainBuilder.Build(domain.Memory, kernel, new PvBuildOptions
        {
            CommandLine = commandLine,
            Initrd = initrd,
            SharedInfoMfn = services.SharedInfoMfn,
            StoreEvtchn = storePort,
            ConsoleEvtchn = consolePort,
        });
        services.ConsoleMfn = build.ConsolePfn;
        services.ConsoleEvtchn = consolePort;
        services.StoreMfn = build.XenstorePfn;
        services.StoreEvtchn = storePort;
        _ = new PvConsoleBackend(services, build.ConsolePfn, consolePort);

        var area = new HypervisorArea(domain.Memory.Size, domain.MaxVcpus);
        area.MapInto(domain.Machine, HypervisorAreaSlot);
        var mmu = new PvMmu(domain.Memory, area);
        var platform = new PvPlatform(domain, services, area, mmu);
        domain.AttachPlatform(platform);
        platform.PrepareBootVcpu(domain.Vcpus[0], build.EntryRip, build.InitialRsp, build.StartInfoVirt, build.Cr3);
        return new PvDomainParts(services, build, platform, consolePort, storePort);
    }
}
