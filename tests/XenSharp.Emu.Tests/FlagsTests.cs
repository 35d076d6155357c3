using Iced.Intel;
using XenSharp.Accel;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

/// <summary>Arithmetic results and flags compared, case by case, with this host CPU running the same instruction natively.</summary>
public sealed class FlagsTests(ITestOutputHelper output)
{
    private const ulong CF = 1, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800, Arith = CF | PF | AF | ZF | SF | OF;

    private static readonly string[] Four = ["add", "adc", "sub", "sbb", "and", "or", "xor", "cmp", "test", "inc", "dec", "neg", "not",
        "shl", "shr", "sar", "rol", "ror", "rcl", "rcr"];
    private static readonly string[] Wide = ["imul", "bt", "bts", "btr", "btc", "bsf", "bsr", "shld", "shrd"];

    private record Case(string Op, int Bits, ulong A, ulong B, ulong C, ulong F);

    private static Code CodeFor(string op, int bits)
    {
        string o = char.ToUpperInvariant(op[0]) + op[1..];
        string name = op switch
        {
            "inc" or "dec" or "neg" or "not" => $"{o}_rm{bits}",
            "shl" or "shr" or "sar" or "rol" or "ror" or "rcl" or "rcr" => $"{o}_rm{bits}_CL",
            "imul" or "bsf" or "bsr" => $"{o}_r{bits}_rm{bits}",
            "shld" or "shrd" => $"{o}_rm{bits}_r{bits}_CL",
            _ => $"{o}_rm{bits}_r{bits}",
        };
        return Enum.Parse<Code>(name);
    }

    private static Register Reg(Register r64, int bits) => bits switch
    {
        64 => r64,
        32 => r64 - Register.RAX + Register.EAX,
        16 => r64 - Register.RAX + Register.AX,
        _ => r64 - Register.RAX + Register.AL,
    };

    private static Instruction Make(string op, int bits)
    {
        var code = CodeFor(op, bits);
        Register d = Reg(Register.RAX, bits), s = Reg(Register.RDX, bits);
        return op switch
        {
            "inc" or "dec" or "neg" or "not" => Instruction.Create(code, d),
            "shl" or "shr" or "sar" or "rol" or "ror" or "rcl" or "rcr" => Instruction.Create(code, d, Register.CL),
            "shld" or "shrd" => Instruction.Create(code, d, s, Register.CL),
            _ => Instruction.Create(code, d, s),
        };
    }

    /// <summary>Flags the architecture defines for this case (the rest are undefined and may differ between CPUs).</summary>
    private static ulong DefinedFlags(Case c)
    {
        int cnt = (int)(c.C & (c.Bits == 64 ? 63UL : 31UL));
        switch (c.Op)
        {
            case "and" or "or" or "xor" or "test": return Arith & ~AF;
            case "shl" or "shr" or "sar" or "shld" or "shrd": return cnt == 0 ? Arith : (CF | PF | ZF | SF | (cnt == 1 ? OF : 0));
            case "rol" or "ror" or "rcl" or "rcr": return cnt == 0 ? Arith : CF | (cnt == 1 ? OF : 0);
            case "imul": return CF | OF;
            case "bt" or "bts" or "btr" or "btc": return CF;
            case "bsf" or "bsr": return ZF;
            default: return Arith;
        }
    }

    private static List<Case> Cases()
    {
        var rnd = new Random(1234);
        ulong[] edge = [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
            0x7fffffffffffffff, 0x8000000000000000, ulong.MaxValue, 0x100, 0x10, 0xf];
        ulong Val() => rnd.Next(3) == 0 ? (ulong)rnd.NextInt64() ^ ((ulong)rnd.Next() << 33) : edge[rnd.Next(edge.Length)];
        var list = new List<Case>();
        foreach (var (ops, sizes) in new[] { (Four, new[] { 8, 16, 32, 64 }), (Wide, new[] { 16, 32, 64 }) })
            foreach (var op in ops)
                foreach (int bits in sizes)
                    for (int k = 0; k < 48; k++)
                    {
                        ulong c = k < 2 ? (ulong)k : (ulong)rnd.Next(bits);
                        ulong f = 0x202 | (k % 2 == 0 ? 0 : CF) | ((ulong)rnd.Next(0x1000) & Arith & ~CF);
                        ulong b = Val();
                        if (op is "bt" or "bts" or "btr" or "btc") b = (ulong)rnd.Next(bits);
                        list.Add(new Case(op, bits, Val(), b, c, f));
                    }
        return list;
    }

    [SkippableFact]
    public void Alu_results_and_flags_match_the_host_cpu()
    {
        Skip.If(Native.Which("gcc") is null, "gcc is not installed: cannot build the native reference");
        string exe = Path.Combine(Path.GetTempPath(), $"xensharp-emu-flags-{Environment.ProcessId}");
        Native.Run("gcc", $"-O1 -mno-red-zone -o {exe} {Path.Combine(Native.GuestsDir, "flags.c")}");
        var cases = Cases();
        var native = Native.Run(exe, "", string.Join("\n", cases.Select(c => $"{c.Op} {c.Bits} {c.A:x} {c.B:x} {c.C:x} {c.F:x}")) + "\n")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        File.Delete(exe);
        Assert.Equal(cases.Count, native.Length);

        using var m = new TestMachine();
        const ulong code = 0x200000, results = 0x800000;
        m.Assemble(code, a =>
        {
            for (int i = 0; i < cases.Count; i++)
            {
                var c = cases[i];
                a.mov(rax, c.A);
                a.mov(rdx, c.B);
                a.mov(rcx, c.C);
                a.mov(r8, c.F);
                a.push(r8);
                a.popfq();
                a.AddInstruction(Make(c.Op, c.Bits));
                a.pushfq();
                a.pop(r9);
                a.mov(r10, results + (ulong)i * 16);
                a.mov(__qword_ptr[r10], rax);
                a.mov(__qword_ptr[r10 + 8], r9);
            }
            a.hlt();
        });
        m.Start(code);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);

        int failures = 0;
        for (int i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            var parts = native[i].Split(' ');
            ulong nr = Convert.ToUInt64(parts[0], 16), nf = Convert.ToUInt64(parts[1], 16);
            ulong er = m.Memory.ReadUInt64(results + (ulong)i * 16), ef = m.Memory.ReadUInt64(results + (ulong)i * 16 + 8);
            ulong mask = c.Bits == 64 ? ulong.MaxValue : (1UL << c.Bits) - 1;
            ulong defined = DefinedFlags(c);
            if ((nr & mask) != (er & mask) || (nf & defined) != (ef & defined))
            {
                if (++failures <= 30)
                    output.WriteLine($"{c.Op}{c.Bits} a={c.A:x} b={c.B:x} c={c.C} f={c.F:x}: native {nr & mask:x} fl {nf & defined:x}, emu {er & mask:x} fl {ef & defined:x}");
            }
        }
        output.WriteLine($"{cases.Count} cases, {failures} mismatches");
        Assert.Equal(0, failures);
    }
}
