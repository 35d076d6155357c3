using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>The C test kernel in guests/pv (built with gcc through guests/Makefile), run on the emulator.</summary>
public sealed class PvTestKernelTests(ITestOutputHelper output)
{
    private static readonly Lazy<byte[]?> Kernel = new(() => TestGuests.Build("pv", "pv-test.elf"));

    private PvGuestHarness Run(string accel, string cmdline, out bool done)
    {
        var k = Kernel.Value;
        Assert.True(k is not null, "guests/build/pv-test.elf could not be built (gcc and make are needed)");
        var h = new PvGuestHarness(accel, k!, vcpus: 2, memMiB: 32, cmdline: cmdline);
        var sw = Stopwatch.StartNew();
        done = h.Run(TimeSpan.FromSeconds(60));
        output.WriteLine($"ran {sw.ElapsedMilliseconds} ms; exits v0={h.Domain.Vcpus[0].ExitCount} v1={h.Domain.Vcpus[1].ExitCount}");
        var counts = h.Platform.HypercallCounts;
        output.WriteLine("hypercalls: " + string.Join(", ", Enumerable.Range(0, counts.Length).Where(i => counts[i] > 0).Select(i => $"{i}:{counts[i]}")));
        output.WriteLine(h.Log);
        output.WriteLine("console ring: " + h.Console);
        return h;
    }

    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void BootsThroughEveryBehaviourAndShutsDownWithTheGivenReason(string accel)
    {
        using var h = Run(accel, "reason=1", out bool done);
        Assert.True(done, "guest did not shut down");
        foreach (var line in new[] { "PVTEST console ok", "PVTEST pagefault ok", "PVTEST multicall ok", "PVTEST evtchn ok", "PVTEST timer ok, ticks 100", "PVTEST grant ok", "PVTEST vcpu1 up", "PVTEST smp ok", "PVTEST done, shutdown reason 1" })
            Assert.Contains(line, h.Log);
        Assert.Contains("PVTEST console ok", h.Console);
        Assert.Equal(ShutdownReason.Reboot, h.Domain.ShutdownReason);
    }
}

/// <summary>Debian's cloud kernel as a PV domU on the emulator: how far it gets (set XENSHARP_LINUX_PROBE=1 to run).</summary>
public sealed class DebianKernelProbe(ITestOutputHelper output)
{
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void BootDebianCloudKernel(string accel)
    {
        Skip.If(Environment.GetEnvironmentVariable("XENSHARP_LINUX_PROBE") != "1",
            "a diagnostic that runs minutes on the software CPU: set XENSHARP_LINUX_PROBE=1 to run it");
        string path = Environment.GetEnvironmentVariable("XENSHARP_LINUX_IMAGE")
            ?? Path.Combine(Core.RepoRoot.Path, ".cache", "guest-images", "vmlinuz-cloud");
        Skip.IfNot(File.Exists(path), $"{path} is missing: run scripts/guest-images.sh");
        using var h = new PvGuestHarness(accel, File.ReadAllBytes(path), vcpus: 1, memMiB: 256, cmdline: "console=hvc0 earlyprintk=xen loglevel=8");
        var sw = Stopwatch.StartNew();
        bool done = h.Run(TimeSpan.FromSeconds(int.Parse(Environment.GetEnvironmentVariable("XENSHARP_LINUX_SECONDS") ?? "60")));
        output.WriteLine($"done={done} after {sw.ElapsedMilliseconds} ms, exits {h.Domain.Vcpus[0].ExitCount}, reason {h.Domain.ShutdownReason} {h.Domain.CrashDetail}");
        var counts = h.Platform.HypercallCounts;
        output.WriteLine("hypercalls: " + string.Join(", ", Enumerable.Range(0, counts.Length).Where(i => counts[i] > 0).Select(i => $"{i}:{counts[i]}")));
        var ex = h.Platform.ExceptionCounts;
        output.WriteLine("exceptions: " + string.Join(", ", Enumerable.Range(0, 256).Where(i => ex[i] > 0).Select(i => $"{i}:{ex[i]}")) + $" last rip 0x{h.Platform.LastExceptionRip:x} cr2 0x{h.Platform.LastExceptionCr2:x}");
        var regs = h.Domain.Vcpus[0].Cpu.GetRegisters();
        output.WriteLine($"rip now 0x{regs.Rip:x}");
        if (h.Domain.Vcpus[0].Cpu is XenSharp.Emu.EmuVcpu emu)
            output.WriteLine("unimplemented instructions: " + string.Join(", ", emu.UnimplementedMnemonics));
        ulong lr = h.Platform.LastExceptionRip;
        if (lr >= 0xffffffff80000000UL)
        {
            var b = h.Domain.Memory.Span(lr - 0xffffffff80000000UL, 16).ToArray();
            var dec = Iced.Intel.Decoder.Create(64, new Iced.Intel.ByteArrayCodeReader(b), lr);
            dec.Decode(out var ins);
            output.WriteLine($"last exception at {ins} ({Convert.ToHexString(b)}) rcx=0x{regs.Rcx:x}");
        }
        if (regs.Rip >= 0xffffffff80000000UL)
        {
            ulong from = regs.Rip - 48;
            var b = h.Domain.Memory.Span(from - 0xffffffff80000000UL, 96).ToArray();
            var dec = Iced.Intel.Decoder.Create(64, new Iced.Intel.ByteArrayCodeReader(b), from);
            while (dec.IP < from + 96) { dec.Decode(out var ins); output.WriteLine($"  {ins.IP:x}: {ins}"); }
            output.WriteLine($"regs rax={regs.Rax:x} rbx={regs.Rbx:x} rcx={regs.Rcx:x} rdx={regs.Rdx:x} rsi={regs.Rsi:x} rdi={regs.Rdi:x} r8={regs.R8:x}");
        }
        output.WriteLine(h.Log);
        output.WriteLine("console ring: " + h.Console);
    }
}
