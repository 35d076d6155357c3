using System.Diagnostics;
using XenSharp.Accel;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

/// <summary>Throughput figures; prints, asserts nothing numeric. Run: dotnet test --filter Category=Bench.</summary>
public sealed partial class BenchTests(ITestOutputHelper output)
{
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct Timespec { public long Sec, Nsec; }

    [System.Runtime.InteropServices.LibraryImport("libc")]
    private static partial int clock_gettime(int clock, out Timespec ts);

    /// <summary>CPU time of the calling thread: the machine is shared, so wall time alone understates throughput.</summary>
    private static double ThreadCpuSeconds()
    {
        clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, out var ts);
        return ts.Sec + ts.Nsec / 1e9;
    }

    [Fact]
    [Trait("Category", "Bench")]
    public void Ring3_tight_loop_instructions_per_second()
    {
        using var m = new TestMachine();
        const int iterations = 10_000_000;
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
        double cpu0 = ThreadCpuSeconds();
        var sw = Stopwatch.StartNew();
        var e = m.Run();
        sw.Stop();
        double cpu = ThreadCpuSeconds() - cpu0;
        Assert.Equal(ExitReason.Io, e.Reason);
        long n = m.Cpu.InstructionsRetired - before;
        double mips = n / sw.Elapsed.TotalSeconds / 1e6;
        double cpuMips = n / cpu / 1e6;
        string line = $"emu ring-3 loop: {n} instructions in {sw.Elapsed.TotalMilliseconds:F0} ms wall = {mips:F1} M instructions/s; "
            + $"{cpu * 1000:F0} ms thread CPU = {cpuMips:F1} M instructions/s per CPU-second";
        output.WriteLine(line);
        Console.WriteLine(line);
    }

    [Fact]
    [Trait("Category", "Bench")]
    public void Sse2_strlen_loop_instructions_per_second()
    {
        using var m = new TestMachine();
        const int iterations = 20_000_000;
        // A glibc-style scan, 6 instructions per 16 bytes: movdqa, pcmpeqb, pmovmskb, add, test, jz (the buffer has no zero).
        const ulong buf = TestMachine.Data;
        m.Memory.Span(buf, 1 << 16).Fill(0x41);
        m.Assemble(TestMachine.KernelCode, a =>
        {
            var l = a.CreateLabel();
            a.pxor(xmm1, xmm1);
            a.mov(ecx, iterations);
            a.Label(ref l);
            a.mov(rax, rcx);
            a.and(eax, 0xfff0);
            a.movdqa(xmm0, __xmmword_ptr[rax + (long)buf]);
            a.pcmpeqb(xmm0, xmm1);
            a.pmovmskb(edx, xmm0);
            a.test(edx, edx);
            a.jnz(l);
            a.dec(ecx);
            a.jnz(l);
            a.hlt();
        });
        m.Start(TestMachine.KernelCode);
        var s = m.LongModeSregs(0);
        s.Cr4 |= X86.Cr4Osfxsr;
        m.Cpu.SetSpecialRegisters(s);
        long before = m.Cpu.InstructionsRetired;
        double cpu0 = ThreadCpuSeconds();
        var e = m.Run();
        double cpu = ThreadCpuSeconds() - cpu0;
        Assert.Equal(ExitReason.Halt, e.Reason);
        long n = m.Cpu.InstructionsRetired - before;
        string line = $"emu SSE2 scan loop: {n} instructions in {cpu * 1000:F0} ms thread CPU = {n / cpu / 1e6:F1} M instructions/s per CPU-second";
        output.WriteLine(line);
        Console.WriteLine(line);
    }
}
