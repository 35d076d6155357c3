using XenSharp.Accel;
using XenSharp.Hypervisor.Hvm;

namespace XenSharp.Hypervisor.Tests.Core;

public sealed class DomainLifecycleTests : IDisposable
{
    private readonly ScriptedAccelerator _accel = new();
    private readonly XenHypervisor _hv;

    public DomainLifecycleTests()
    {
        _hv = new XenHypervisor(_accel, new HostMemory(1UL << 30, 256UL << 20));
    }

    public void Dispose() => _hv.Dispose();

    private (Domain, HvmPlatform) MakeHvm(string name = "t", ulong mib = 4, int vcpus = 1)
    {
        var d = _hv.CreateDomain(new DomainCreateSpec(name, DomainType.Hvm, mib << 20, mib << 20, vcpus, vcpus));
        for (int i = 0; i < vcpus; i++) d.AddVcpu(i);
        var p = new HvmPlatform(d);
        d.AttachPlatform(p);
        _hv.Start(d);
        return (d, p);
    }

    private static ScriptedVcpu Cpu(Domain d, int i = 0) => (ScriptedVcpu)d.Vcpus[i].Cpu;

    private static void WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            Thread.Sleep(2);
        }
    }

    [Fact]
    public void DomainsAreBornPausedAndRunOnlyAfterUnpause()
    {
        var (d, _) = MakeHvm();
        Assert.True(d.IsPaused);
        Thread.Sleep(50);
        Assert.Equal(0, Cpu(d).Runs);
        Assert.Equal("--p---", d.StateFlags);
        d.Unpause();
        WaitFor(() => Cpu(d).Runs > 0, "the vCPU to run");
        Assert.Equal("r-----", d.StateFlags);
    }

    [Fact]
    public void PauseStopsTheVcpuAndUnpauseResumesIt()
    {
        var (d, _) = MakeHvm();
        d.Unpause();
        WaitFor(() => Cpu(d).Runs > 0, "the vCPU to run");
        d.Pause();
        int runs = Cpu(d).Runs;
        Thread.Sleep(50);
        Assert.Equal(runs, Cpu(d).Runs);
        Assert.Contains('p', d.StateFlags);
        d.Unpause();
        Cpu(d).Kick();
        WaitFor(() => Cpu(d).Runs > runs, "the vCPU to run again");
        Assert.Throws<InvalidOperationException>(() => { d.Unpause(); });
    }

    [Fact]
    public void UartOutputReachesTheConsole()
    {
        var (d, _) = MakeHvm();
        d.Unpause();
        foreach (byte b in "hi\n"u8.ToArray())
            Cpu(d).Enqueue(new VcpuExit(ExitReason.Io, 0x3f8, 1, true, b));
        WaitFor(() => d.Console.BytesWritten == 3, "console output");
        Assert.Equal("hi\n"u8.ToArray(), d.Console.History());
    }

    [Theory]
    [InlineData(0x604, 2, 0x2000UL, ShutdownReason.Poweroff)]
    [InlineData(0x64, 1, 0xfeUL, ShutdownReason.Reboot)]
    public async Task PowerPortsShutTheDomainDownWithTheirReason(ulong port, int size, ulong value, ShutdownReason expected)
    {
        var (d, _) = MakeHvm();
        var seen = new TaskCompletionSource<ShutdownReason?>();
        _hv.DomainShutdown += dom => { if (dom == d) seen.TrySetResult(dom.ShutdownReason); };
        d.Unpause();
        Cpu(d).Enqueue(new VcpuExit(ExitReason.Io, port, size, true, value));
        Assert.Equal(expected, await seen.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains('s', d.StateFlags);
    }

    [Fact]
    public void TripleFaultCrashesTheDomainAlone()
    {
        var (a, _) = MakeHvm("a");
        var (b, _) = MakeHvm("b");
        a.Unpause();
        b.Unpause();
        Cpu(a).Enqueue(new VcpuExit(ExitReason.Shutdown));
        WaitFor(() => a.ShutdownReason == ShutdownReason.Crash, "the crash");
        Assert.Contains("triple fault", a.CrashDetail);
        Assert.Equal("----c-", a.StateFlags);
        Assert.Null(b.ShutdownReason);
        int runs = Cpu(b).Runs;
        Cpu(b).Kick();
        WaitFor(() => Cpu(b).Runs > runs, "the other domain to keep running");
    }

    [Fact]
    public void ExceptionInEmulationCrashesOnlyThatDomain()
    {
        var (d, p) = MakeHvm();
        p.Io.Register(0x500, 1, new ThrowingDevice());
        d.Unpause();
        Cpu(d).Enqueue(new VcpuExit(ExitReason.Io, 0x500, 1, true, 1));
        WaitFor(() => d.ShutdownReason == ShutdownReason.Crash, "the crash");
        Assert.Contains("device exploded", d.CrashDetail);
    }

    private sealed class ThrowingDevice : IPortDevice
    {
        public ulong Read(ushort port, int size) => 0;
        public void Write(ushort port, int size, ulong value) => throw new InvalidOperationException("device exploded");
    }

    [Fact]
    public void UnclaimedPortReadsAllOnesAndIsLoggedOnce()
    {
        var (d, _) = MakeHvm();
        d.Unpause();
        Cpu(d).Enqueue(new VcpuExit(ExitReason.Io, 0x123, 2, false));
        Cpu(d).Enqueue(new VcpuExit(ExitReason.Io, 0x123, 2, false));
        WaitFor(() => Cpu(d).LastCompletedRead == 0xffff, "the read to complete");
        Thread.Sleep(20);
        Assert.Single(_hv.Log.Snapshot(), l => l.Contains("unclaimed port 0x123"));
    }

    [Fact]
    public void HaltBlocksUntilConsoleInputArrives()
    {
        var (d, _) = MakeHvm();
        d.Unpause();
        Cpu(d).Enqueue(new VcpuExit(ExitReason.Halt));
        WaitFor(() => d.Vcpus[0].RunState == VcpuRunState.Blocked, "the vCPU to block");
        Assert.Equal("-b----", d.StateFlags);
        int runs = Cpu(d).Runs;
        Thread.Sleep(30);
        Assert.Equal(runs, Cpu(d).Runs);
        d.Console.WriteInput("x"u8);
        WaitFor(() => Cpu(d).Runs > runs, "the vCPU to wake");
    }

    [Fact]
    public void CreationThatWouldOvercommitIsRefusedAndLeavesNothingBehind()
    {
        var e = Assert.Throws<HostMemoryExhaustedException>(() =>
            _hv.CreateDomain(new DomainCreateSpec("big", DomainType.Hvm, 16 << 20, 2048UL << 20, 1, 1)));
        Assert.Contains("'big' needs 2048 MiB but only 768 MiB", e.Message);
        Assert.Empty(_hv.Domains);
        Assert.Equal(768UL << 20, _hv.HostMemory.FreeBytes);
    }

    [Fact]
    public void DuplicateNamesAreRefused()
    {
        MakeHvm("same");
        Assert.Throws<DomainExistsException>(() => MakeHvm("same"));
    }

    [Fact]
    public void DestroyReleasesMemoryVcpusAndTheMachine()
    {
        var (d, _) = MakeHvm("x", 64, 2);
        d.Unpause();
        Assert.Equal((1024UL - 256 - 64) << 20, _hv.HostMemory.FreeBytes);
        var vm = _accel.Vms.Single();
        _hv.Destroy(d);
        Assert.True(vm.Disposed);
        Assert.All(vm.Vcpus.Values, v => Assert.True(v.Disposed));
        Assert.Equal(768UL << 20, _hv.HostMemory.FreeBytes);
        Assert.Null(_hv.Find(d.Id));
        Assert.All(d.Vcpus, v => Assert.Equal(0, v.HostThreadId));
    }

    [Fact]
    public void DomainIdsIncreaseAndAreNotReusedImmediately()
    {
        var (a, _) = MakeHvm("a");
        _hv.Destroy(a);
        var (b, _) = MakeHvm("b");
        Assert.True(b.Id > a.Id);
    }
}

public sealed class ConcurrentCreationTests
{
    [Fact]
    public async Task DomainsCreatedAtTheSameTimeAllGetDistinctIds()
    {
        using var hv = new XenHypervisor(new ScriptedAccelerator(), new HostMemory(4UL << 30, 256UL << 20));
        var domains = await Task.WhenAll(Enumerable.Range(0, 32).Select(i => Task.Run(() =>
            hv.CreateDomain(new DomainCreateSpec($"c{i}", DomainType.Hvm, 4 << 20, 4 << 20, 1, 1)))));
        Assert.Equal(32, domains.Select(d => d.Id).Distinct().Count());
        Assert.Equal(32, hv.Domains.Count);
    }
}
