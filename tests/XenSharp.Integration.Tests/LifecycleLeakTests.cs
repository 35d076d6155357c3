using XenSharp.Accel;
using XenSharp.Emu;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Hvm;

namespace XenSharp.Integration.Tests;

/// <summary>The leak counts read this process's fds and threads, so nothing else may run alongside.</summary>
[CollectionDefinition(nameof(AloneInProcess), DisableParallelization = true)]
public sealed class AloneInProcess;

/// <summary>Creating and destroying domains over and over gives back every fd, thread and page.</summary>
[Collection(nameof(AloneInProcess))]
public sealed class LifecycleLeakTests
{
    private static int Fds() => Directory.GetFiles("/proc/self/fd").Length;
    private static int Threads() => Directory.GetDirectories("/proc/self/task").Length;

    private static long RssKiB() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    private static void Cycle(XenHypervisor hv, byte[] image, int i)
    {
        var d = hv.CreateDomain(new DomainCreateSpec($"leak{i}", DomainType.Hvm, 32 << 20, 32 << 20, 2, 2));
        d.AddVcpu(0);
        d.AddVcpu(1).StartsOnline = false;
        HvmBuilder.SetupBootCpu(d.Memory, d.Vcpus[0].Cpu, HvmBuilder.LoadElf(d.Memory, image));
        d.AttachPlatform(new HvmPlatform(d));
        var ready = new ManualResetEventSlim();
        using (d.Console.Subscribe(_ => ready.Set()))
        {
            hv.Start(d);
            d.Unpause();
            Assert.True(ready.Wait(TimeSpan.FromSeconds(30)), "the guest printed nothing");
        }
        // Touch all of the guest's RAM so that a leaked mapping would show in RSS.
        d.Memory.Span(0, (int)d.Memory.Size).Fill(0x5a);
        hv.Destroy(d);
    }

    [SkippableFact]
    public void FiftyCreateDestroyCyclesLeakNothing()
    {
        Skip.IfNot(File.Exists(Paths.HvmGuest), $"{Paths.HvmGuest} is not built (run make -C guests)");
        var image = File.ReadAllBytes(Paths.HvmGuest);
        using var hv = new XenHypervisor(new EmuAccelerator(), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30));
        for (int i = 0; i < 3; i++) Cycle(hv, image, i); // warm-up: JIT, thread pool, lazily loaded assemblies
        GC.Collect();
        GC.WaitForPendingFinalizers();
        int fds0 = Fds(), threads0 = Threads();
        long rss0 = RssKiB();
        for (int i = 3; i < 53; i++) Cycle(hv, image, i);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Empty(hv.Domains);
        Assert.Equal(hv.HostMemory.TotalBytes, hv.HostMemory.FreeBytes);
        Assert.True(Fds() <= fds0, $"fds {Fds()} after 50 cycles, {fds0} before");
        Assert.True(Threads() <= threads0 + 2, $"threads {Threads()} after 50 cycles, {threads0} before");
        // 50 cycles of 32 MiB each would add 1.6 GiB if guest RAM leaked; allow noise well below one domain.
        Assert.True(RssKiB() < rss0 + 24 * 1024, $"RSS {RssKiB()} KiB after 50 cycles, {rss0} KiB before");
    }
}
