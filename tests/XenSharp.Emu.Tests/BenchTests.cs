using System.Diagnostics;
using XenSharp.Accel;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

/// <summary>Throughput figures; prints, asserts nothing numeric. Run: dotnet test --filter Category=Bench.</summary>
public sealed class BenchTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "Bench")]
    public void Ring3_tight_loop_instructions_per_second()
    {
        using var m = new TestMachine();
        const int iterations = 20_000_000;
        // 5 instructions per iteration: add, xor, mov, dec, jnz.
        m.Assemble(TestMachine.UserCode, a =>
        {
            var l = a.CreateLabel();
            a.mov(ecx, iterations);
            a.Label(ref l);
            a.add(rax, rcx);
            a.xor(rbx, rax);
            a.mov(__qword_ptr[rsp - 8], rbx);
            a.dec(ecx);
            a.jnz(l);
            a.@out(0x80, al);
        });
        m.Start(TestMachine.UserCode, 3, rflags: 2 | X86.RflagsIopl);
        long before = m.Cpu.InstructionsRetired;
        var sw = Stopwatch.StartNew();
        var e = m.Run();
        sw.Stop();
        Assert.Equal(ExitReason.Io, e.Reason);
        long n = m.Cpu.InstructionsRetired - before;
        double mips = n / sw.Elapsed.TotalSeconds / 1e6;
        output.WriteLine($"emu ring-3 loop: {n} instructions in {sw.Elapsed.TotalMilliseconds:F0} ms = {mips:F1} M instructions/s");
        Console.WriteLine($"emu ring-3 loop: {mips:F1} M instructions/s");
    }
}
