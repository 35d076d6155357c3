using System.Diagnostics;
using System.Text;
using XenSharp.Accel;
using Xunit.Abstractions;

namespace XenSharp.Emu.Tests;

/// <summary>A freestanding C program built with gcc runs in the emulator and prints what the same source prints natively.</summary>
public sealed class CProgramTests(ITestOutputHelper output)
{
    private const string Flags = "-ffreestanding -nostdlib -mno-red-zone -fno-pic -static -fno-stack-protector "
        + "-fcf-protection=none -fno-asynchronous-unwind-tables -mpopcnt";

    [SkippableTheory]
    [InlineData("-O2")]
    [InlineData("-O1")]
    [InlineData("-O3 -funroll-loops")]
    [InlineData("-Os")]
    [InlineData("-O2 -march=haswell")] // BMI1/BMI2/MOVBE/LZCNT forms
    public void Gcc_compiled_program_matches_native_output(string optimization) =>
        RunAndCompare("program.c", $"{optimization} {Flags} -mgeneral-regs-only", $"-O2 -DHOSTED", sse: false);

    /// <summary>SSE2 string routines (intrinsics), gcc's own vectorisation and double/float arithmetic: not -mgeneral-regs-only.</summary>
    [SkippableTheory]
    [InlineData("-O2")]
    [InlineData("-O1")]
    [InlineData("-O3 -funroll-loops")]
    [InlineData("-Os")]
    public void Sse2_program_matches_native_output(string optimization) =>
        RunAndCompare("sse.c", $"{optimization} -msse2 -fno-math-errno {Flags}", $"{optimization} -msse2 -fno-math-errno -DHOSTED", sse: true);

    private void RunAndCompare(string source, string guestFlags, string hostFlags, bool sse)
    {
        Skip.If(Native.Which("gcc") is null || Native.Which("objcopy") is null || Native.Which("nm") is null,
            "gcc/objcopy/nm (binutils) are not installed: cannot build the C test guest");
        string src = Path.Combine(Native.GuestsDir, source);
        string dir = Directory.CreateTempSubdirectory("xensharp-emu-").FullName;
        try
        {
            const ulong load = 0x200000;
            string elf = Path.Combine(dir, "prog.elf"), bin = Path.Combine(dir, "prog.bin"), host = Path.Combine(dir, "host");
            Native.Run("gcc", $"{guestFlags} -Wl,-Ttext=0x{load:x} -Wl,--build-id=none -Wl,-e,_start -o {elf} {src}");
            Native.Run("objcopy", $"-O binary -j .text -j .rodata -j .data {elf} {bin}");
            ulong entry = Convert.ToUInt64(Native.Run("nm", elf).Split('\n').Select(l => l.Split(' ')).First(p => p.Length == 3 && p[2] == "_start")[0], 16);
            Native.Run("gcc", $"{hostFlags} -o {host} {src}");
            string expected = Native.Run(host, "");

            using var m = new TestMachine();
            m.Memory.Write(load, File.ReadAllBytes(bin));
            m.Start(entry);
            if (sse)
            {
                var s = m.LongModeSregs(0);
                s.Cr4 |= X86.Cr4Osfxsr;
                m.Cpu.SetSpecialRegisters(s);
            }
            var console = new StringBuilder();
            ulong crc = 0;
            var sw = Stopwatch.StartNew();
            while (true)
            {
                var e = m.Run();
                if (e.Reason == ExitReason.Io && e.Address == 0xe9) console.Append((char)e.Data);
                else if (e.Reason == ExitReason.Io && e.Address == 0x80) crc = e.Data;
                else if (e.Reason == ExitReason.Halt) break;
                else Assert.Fail($"unexpected exit {e} at rip 0x{m.Rip:x}; output so far:\n{console}");
            }
            sw.Stop();
            output.WriteLine(console.ToString());
            output.WriteLine($"{m.Cpu.InstructionsRetired} instructions in {sw.ElapsedMilliseconds} ms");
            Assert.Empty(m.Cpu.UnimplementedMnemonics);
            Assert.Equal(expected, console.ToString());
            Assert.Contains($"crc={crc:x16}", expected);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
