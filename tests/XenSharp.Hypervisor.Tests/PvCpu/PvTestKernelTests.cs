using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>The C test kernel in guests/pv (built with gcc through guests/Makefile), run on the emulator.</summary>
public sealed class PvTestKernelTests(ITestOutputHelper output)
{
    private static readonly Lazy<byte[]?> Kernel = new(BuildKernel);

    private static byte[]? BuildKernel()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "guests", "Makefile"))) dir = dir.Parent;
        if (dir is null) return null;
        var guests = Path.Combine(dir.FullName, "guests");
        try
        {
            var p = Process.Start(new ProcessStartInfo("make", $"-C {guests} pv") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            p.WaitForExit(120_000);
        }
        catch (System.ComponentModel.Win32Exception) { }
        var elf = Path.Combine(guests, "build", "pv-test.elf");
        return File.Exists(elf) ? File.ReadAllBytes(elf) : null;
    }

    private PvGuestHarness Run(string cmdline, out bool done)
    {
        var k = Kernel.Value;
        Assert.True(k is not null, "guests/build/pv-test.elf could not be built (gcc and make are needed)");
        var h = new PvGuestHarness(k!, vcpus: 2, memMiB: 32, cmdline: cmdline);
        var sw = Stopwatch.StartNew();
        done = h.Run(TimeSpan.FromSeconds(60));
        output.WriteLine($"ran {sw.ElapsedMilliseconds} ms; exits v0={h.Domain.Vcpus[0].ExitCount} v1={h.Domain.Vcpus[1].ExitCount}");
        var counts = h.Platform.HypercallCounts;
        output.WriteLine("hypercalls: " + string.Join(", ", Enumerable.Range(0, counts.Length).Where(i => counts[i] > 0).Select(i => $"{i}:{counts[i]}")));
        output.WriteLine(h.Log);
        output.WriteLine("console ring: " + h.Console);
        return h;
    }

    [Fact]
    public void BootsThroughEveryBehaviourAndShutsDownWithTheGivenReason()
    {
        using var h = Run("reason=1", out bool done);
        Assert.True(done, "guest did not shut down");
        foreach (var line in new[] { "PVTEST console ok", "PVTEST pagefault ok", "PVTEST multicall ok", "PVTEST evtchn ok", "PVTEST timer ok, ticks 100", "PVTEST grant ok", "PVTEST vcpu1 up", "PVTEST smp ok", "PVTEST done, shutdown reason 1" })
            Assert.Contains(line, h.Log);
        Assert.Contains("PVTEST console ok", h.Console);
        Assert.Equal(ShutdownReason.Reboot, h.Domain.ShutdownReason);
    }
}
