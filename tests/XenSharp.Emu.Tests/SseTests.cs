using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Iced.Intel;
using XenSharp.Accel;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

/// <summary>
/// SSE/SSE2 differential tests: the same machine code (addressing its data through rdi only) runs natively on the host
/// and on the emulator, over the same inputs (random values mixed with edge cases: NaNs, infinities, signed zeros,
/// denormals, conversion limits, saturation bounds), and both data areas must end up byte-identical.
/// </summary>
public sealed unsafe class SseTests
{
    private const ulong K = TestMachine.KernelCode, D = TestMachine.Data;
    private const int DataSize = 0x10000, A = 0x1000, B = 0x3000, R = 0x5000, InitMx = 0x10, SaveMx = 0x14, OutMx = 0x18;
    private const int N = 128; // cases per instruction form: A, B, R hold N 16-byte slots each

    // ---- harness ----

    private static TestMachine SseMachine(ulong rip, ulong cr0Extra = 0, bool osfxsr = true)
    {
        var m = new TestMachine();
        m.Start(rip);
        var s = m.LongModeSregs(0);
        if (osfxsr) s.Cr4 |= X86.Cr4Osfxsr;
        s.Cr0 |= cr0Extra;
        m.Cpu.SetSpecialRegisters(s);
        var r = m.Regs;
        r.Rdi = D;
        m.Cpu.SetRegisters(r);
        return m;
    }

    private static byte[] Assemble(ulong address, Action<Assembler> build, byte last)
    {
        var a = new Assembler(64);
        a.stmxcsr(__dword_ptr[rdi + SaveMx]);
        a.ldmxcsr(__dword_ptr[rdi + InitMx]);
        build(a);
        a.stmxcsr(__dword_ptr[rdi + OutMx]);
        a.ldmxcsr(__dword_ptr[rdi + SaveMx]);
        a.db(last);
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), address);
        return ms.ToArray();
    }

    /// <summary>Runs <paramref name="body"/> natively and emulated on copies of <paramref name="data"/>; returns both data areas.</summary>
    private static (byte[] Native, byte[] Emu) Both(Action<Assembler> body, byte[] data, uint mxcsr = 0x1f80)
    {
        Skip.IfNot(Sse2.IsSupported, "the host has no SSE2 to compare with");
        BitConverter.TryWriteBytes(data.AsSpan(InitMx), mxcsr);

        nint code = Posix.mmap(0, 1 << 20, 7 /* RWX */, Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS, -1, 0);
        Skip.If(code == Posix.MapFailed, "cannot map executable memory to run the reference natively");
        byte* buf = (byte*)NativeMemory.AlignedAlloc(DataSize, 4096);
        byte[] native = new byte[DataSize];
        try
        {
            byte[] bytes = Assemble((ulong)code, body, 0xc3 /* ret */);
            Assert.True(bytes.Length < 1 << 20);
            Marshal.Copy(bytes, 0, code, bytes.Length);
            data.CopyTo(new Span<byte>(buf, DataSize));
            ((delegate* unmanaged<byte*, void>)code)(buf);
            new Span<byte>(buf, DataSize).CopyTo(native);
        }
        finally
        {
            NativeMemory.AlignedFree(buf);
            Posix.munmap(code, 1 << 20);
        }

        using var m = SseMachine(K);
        m.Memory.Write(K, Assemble(K, body, 0xf4 /* hlt */));
        m.Memory.Write(D, data);
        var e = m.Run();
        Assert.True(e.Reason == ExitReason.Halt, $"expected Halt, got {e} at 0x{m.Rip:x}; unimplemented: {string.Join(",", m.Cpu.UnimplementedMnemonics)}");
        byte[] emu = new byte[DataSize];
        m.Memory.Read(D, emu);
        // MXCSR's exception flags are approximate in the emulator (see Sse.cs): compare the control bits only.
        // The saved MXCSR is the host runtime's natively.
        foreach (var buffer in new[] { native, emu }) { buffer[OutMx] &= 0xc0; buffer.AsSpan(SaveMx, 4).Clear(); }
        return (native, emu);
    }

    private static void AssertSame(string what, (byte[] Native, byte[] Emu) r, byte[] input)
    {
        for (int o = 0; o < DataSize; o++)
        {
            if (r.Native[o] == r.Emu[o]) continue;
            int slot = (o & 0xfff) / 16, off = o & ~15;
            Assert.Fail($"{what}: byte 0x{o:x} (case {slot}) differs: native {Hex(r.Native, off)} emu {Hex(r.Emu, off)}; "
                + $"a={Hex(input, A + slot * 16)} b={Hex(input, B + slot * 16)} r0={Hex(input, R + slot * 16)}");
        }
    }

    private static string Hex(byte[] b, int off) => Convert.ToHexString(b, off, 16);

    // ---- inputs ----

    private static readonly ulong[] Doubles =
    [
        0, 0x8000000000000000, Bits(1.0), Bits(-1.0), Bits(1.5), Bits(2.5), Bits(-2.5), Bits(0.5), Bits(-0.5), Bits(3.0),
        0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000, 0x7ff8000000001234, 0xfff8000000000abc, 0x7ff0000000000001,
        0xfff4000000000007, 1, 0x800fffffffffffff, 0x7fefffffffffffff, 0x0010000000000000, Bits(2147483647.5), Bits(2147483648.0),
        Bits(-2147483648.5), Bits(-2147483649.0), Bits(-2147483648.0), Bits(9.223372036854775807e18), Bits(-9.223372036854775808e18),
        Bits(9.2e18), Bits(1e300), Bits(1e-300), Bits(1e10), Bits(-7.75), Bits(3.4028235677973366e38), Bits(1e-45),
    ];

    private static readonly uint[] Floats =
    [
        0, 0x80000000, Bits(1f), Bits(-1f), Bits(1.5f), Bits(2.5f), Bits(-2.5f), Bits(0.5f), Bits(-0.5f), 0x7f800000, 0xff800000,
        0x7fc00000, 0x7fc01234, 0xffc00abc, 0x7f800001, 0xffa00007, 1, 0x807fffff, 0x7f7fffff, 0x00800000, Bits(2147483520f),
        Bits(2147483648f), Bits(-2147483648f), Bits(-2147483904f), Bits(9.2233715e18f), Bits(9.223372e18f), Bits(-9.223372e18f),
        Bits(1e10f), Bits(-7.75f), Bits(3f), Bits(16777217f), Bits(0.1f),
    ];

    private static readonly byte[] EdgeBytes = [0, 1, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x40];

    private static ulong Bits(double d) => BitConverter.DoubleToUInt64Bits(d);
    private static uint Bits(float f) => BitConverter.SingleToUInt32Bits(f);

    private static void Fill(Random rng, Span<byte> slot)
    {
        switch (rng.Next(6))
        {
            case 0: rng.NextBytes(slot); break;
            case 1:
                for (int k = 0; k < 2; k++)
                    BitConverter.TryWriteBytes(slot[(8 * k)..], rng.Next(3) == 0 ? Bits((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-70, 70))) : Doubles[rng.Next(Doubles.Length)]);
                break;
            case 2:
                for (int k = 0; k < 4; k++)
                    BitConverter.TryWriteBytes(slot[(4 * k)..], rng.Next(3) == 0 ? Bits((float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-40, 40)))) : Floats[rng.Next(Floats.Length)]);
                break;
            case 3:
                for (int k = 0; k < 16; k++) slot[k] = rng.Next(3) == 0 ? (byte)rng.Next(256) : EdgeBytes[rng.Next(EdgeBytes.Length)];
                break;
            case 4:
                for (int k = 0; k < 4; k++) BitConverter.TryWriteBytes(slot[(4 * k)..], rng.Next(-70000, 70000));
                break;
            default:
                for (int k = 0; k < 8; k++) BitConverter.TryWriteBytes(slot[(2 * k)..], (short)rng.Next(-300, 300));
                break;
        }
    }

    private static byte[] Inputs(int seed, bool shiftCounts = false)
    {
        var rng = new Random(seed);
        var data = new byte[DataSize];
        for (int k = 0; k < N; k++)
        {
            Fill(rng, data.AsSpan(A + 16 * k, 16));
            Fill(rng, data.AsSpan(B + 16 * k, 16));
            rng.NextBytes(data.AsSpan(R + 16 * k, 16));
            // The same value in both operands of some cases (equal compares, x - x, min/max ties).
            if (k % 11 == 5) data.AsSpan(A + 16 * k, 16).CopyTo(data.AsSpan(B + 16 * k, 16));
            if (shiftCounts) BitConverter.TryWriteBytes(data.AsSpan(B + 16 * k), (ulong)ShiftCounts[k % ShiftCounts.Length]);
        }
        return data;
    }

    private static readonly int[] ShiftCounts = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255];

    private static MemoryOperand Mem(int off) => new(Register.RDI, off);

    private static void LoadAB(Assembler a, int k)
    {
        a.movdqu(xmm0, __xmmword_ptr[rdi + A + 16 * k]);
        a.movdqu(xmm1, __xmmword_ptr[rdi + B + 16 * k]);
    }

    // ---- xmm, xmm/mem forms ----

    public static TheoryData<Code> BinaryForms() =>
    [
        Code.Paddb_xmm_xmmm128, Code.Paddw_xmm_xmmm128, Code.Paddd_xmm_xmmm128, Code.Paddq_xmm_xmmm128,
        Code.Psubb_xmm_xmmm128, Code.Psubw_xmm_xmmm128, Code.Psubd_xmm_xmmm128, Code.Psubq_xmm_xmmm128,
        Code.Paddsb_xmm_xmmm128, Code.Paddsw_xmm_xmmm128, Code.Paddusb_xmm_xmmm128, Code.Paddusw_xmm_xmmm128,
        Code.Psubsb_xmm_xmmm128, Code.Psubsw_xmm_xmmm128, Code.Psubusb_xmm_xmmm128, Code.Psubusw_xmm_xmmm128,
        Code.Pcmpeqb_xmm_xmmm128, Code.Pcmpeqw_xmm_xmmm128, Code.Pcmpeqd_xmm_xmmm128,
        Code.Pcmpgtb_xmm_xmmm128, Code.Pcmpgtw_xmm_xmmm128, Code.Pcmpgtd_xmm_xmmm128,
        Code.Pminub_xmm_xmmm128, Code.Pmaxub_xmm_xmmm128, Code.Pminsw_xmm_xmmm128, Code.Pmaxsw_xmm_xmmm128,
        Code.Pavgb_xmm_xmmm128, Code.Pavgw_xmm_xmmm128, Code.Psadbw_xmm_xmmm128,
        Code.Pmullw_xmm_xmmm128, Code.Pmulhw_xmm_xmmm128, Code.Pmulhuw_xmm_xmmm128, Code.Pmuludq_xmm_xmmm128, Code.Pmaddwd_xmm_xmmm128,
        Code.Pand_xmm_xmmm128, Code.Por_xmm_xmmm128, Code.Pxor_xmm_xmmm128, Code.Pandn_xmm_xmmm128,
        Code.Andps_xmm_xmmm128, Code.Andpd_xmm_xmmm128, Code.Orps_xmm_xmmm128, Code.Orpd_xmm_xmmm128,
        Code.Xorps_xmm_xmmm128, Code.Xorpd_xmm_xmmm128, Code.Andnps_xmm_xmmm128, Code.Andnpd_xmm_xmmm128,
        Code.Punpcklbw_xmm_xmmm128, Code.Punpcklwd_xmm_xmmm128, Code.Punpckldq_xmm_xmmm128, Code.Punpcklqdq_xmm_xmmm128,
        Code.Punpckhbw_xmm_xmmm128, Code.Punpckhwd_xmm_xmmm128, Code.Punpckhdq_xmm_xmmm128, Code.Punpckhqdq_xmm_xmmm128,
        Code.Unpcklps_xmm_xmmm128, Code.Unpckhps_xmm_xmmm128, Code.Unpcklpd_xmm_xmmm128, Code.Unpckhpd_xmm_xmmm128,
        Code.Packsswb_xmm_xmmm128, Code.Packssdw_xmm_xmmm128, Code.Packuswb_xmm_xmmm128,
        Code.Addps_xmm_xmmm128, Code.Addpd_xmm_xmmm128, Code.Subps_xmm_xmmm128, Code.Subpd_xmm_xmmm128,
        Code.Mulps_xmm_xmmm128, Code.Mulpd_xmm_xmmm128, Code.Divps_xmm_xmmm128, Code.Divpd_xmm_xmmm128,
        Code.Minps_xmm_xmmm128, Code.Minpd_xmm_xmmm128, Code.Maxps_xmm_xmmm128, Code.Maxpd_xmm_xmmm128,
        Code.Sqrtps_xmm_xmmm128, Code.Sqrtpd_xmm_xmmm128,
        Code.Addss_xmm_xmmm32, Code.Addsd_xmm_xmmm64, Code.Subss_xmm_xmmm32, Code.Subsd_xmm_xmmm64,
        Code.Mulss_xmm_xmmm32, Code.Mulsd_xmm_xmmm64, Code.Divss_xmm_xmmm32, Code.Divsd_xmm_xmmm64,
        Code.Minss_xmm_xmmm32, Code.Minsd_xmm_xmmm64, Code.Maxss_xmm_xmmm32, Code.Maxsd_xmm_xmmm64,
        Code.Sqrtss_xmm_xmmm32, Code.Sqrtsd_xmm_xmmm64,
        Code.Cvtdq2ps_xmm_xmmm128, Code.Cvtps2dq_xmm_xmmm128, Code.Cvttps2dq_xmm_xmmm128, Code.Cvtps2pd_xmm_xmmm64,
        Code.Cvtpd2ps_xmm_xmmm128, Code.Cvtdq2pd_xmm_xmmm64, Code.Cvtpd2dq_xmm_xmmm128, Code.Cvttpd2dq_xmm_xmmm128,
        Code.Cvtss2sd_xmm_xmmm32, Code.Cvtsd2ss_xmm_xmmm64,
        Code.Movss_xmm_xmmm32, Code.Movsd_xmm_xmmm64, Code.Movq_xmm_xmmm64, Code.Movdqa_xmm_xmmm128, Code.Movdqu_xmm_xmmm128,
        Code.Movaps_xmm_xmmm128, Code.Movups_xmm_xmmm128, Code.Movapd_xmm_xmmm128, Code.Movupd_xmm_xmmm128,
        Code.Psllw_xmm_xmmm128, Code.Pslld_xmm_xmmm128, Code.Psllq_xmm_xmmm128, Code.Psrlw_xmm_xmmm128,
        Code.Psrld_xmm_xmmm128, Code.Psrlq_xmm_xmmm128, Code.Psraw_xmm_xmmm128, Code.Psrad_xmm_xmmm128,
    ];

    /// <summary>op xmm0, xmm1 on even cases and op xmm0, [mem] on odd ones; the result is xmm0 (and the untouched xmm1).</summary>
    [SkippableTheory]
    [MemberData(nameof(BinaryForms))]
    public void Binary_forms_match_the_host(Code code)
    {
        bool shift = code.ToString()[..3] == "Psr" || code.ToString()[..3] == "Psl";
        var input = Inputs((int)code, shiftCounts: shift);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                LoadAB(a, k);
                a.AddInstruction(k % 2 == 0 ? Instruction.Create(code, Register.XMM0, Register.XMM1) : Instruction.Create(code, Register.XMM0, Mem(B + 16 * k)));
                a.movdqu(__xmmword_ptr[rdi + R + 16 * k], xmm0);
            }
        }, input);
        AssertSame(code.ToString(), r, input);
    }

    public static TheoryData<Code> ImmediateForms() =>
    [
        Code.Pshufd_xmm_xmmm128_imm8, Code.Pshuflw_xmm_xmmm128_imm8, Code.Pshufhw_xmm_xmmm128_imm8, Code.Shufps_xmm_xmmm128_imm8,
        Code.Shufpd_xmm_xmmm128_imm8, Code.Cmpps_xmm_xmmm128_imm8, Code.Cmppd_xmm_xmmm128_imm8, Code.Cmpss_xmm_xmmm32_imm8,
        Code.Cmpsd_xmm_xmmm64_imm8,
    ];

    [SkippableTheory]
    [MemberData(nameof(ImmediateForms))]
    public void Immediate_forms_match_the_host(Code code)
    {
        var input = Inputs((int)code);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                LoadAB(a, k);
                uint imm = code.ToString().StartsWith("Cmp") ? (uint)(k % 8) : (uint)(k * 37 + 11) & 0xff;
                a.AddInstruction(k % 3 == 1 ? Instruction.Create(code, Register.XMM0, Mem(B + 16 * k), imm) : Instruction.Create(code, Register.XMM0, Register.XMM1, imm));
                a.movdqu(__xmmword_ptr[rdi + R + 16 * k], xmm0);
            }
        }, input);
        AssertSame(code.ToString(), r, input);
    }

    public static TheoryData<Code> ShiftImmediateForms() =>
    [
        Code.Psllw_xmm_imm8, Code.Pslld_xmm_imm8, Code.Psllq_xmm_imm8, Code.Psrlw_xmm_imm8, Code.Psrld_xmm_imm8, Code.Psrlq_xmm_imm8,
        Code.Psraw_xmm_imm8, Code.Psrad_xmm_imm8, Code.Pslldq_xmm_imm8, Code.Psrldq_xmm_imm8,
    ];

    [SkippableTheory]
    [MemberData(nameof(ShiftImmediateForms))]
    public void Shift_immediate_forms_match_the_host(Code code)
    {
        var input = Inputs((int)code);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                LoadAB(a, k);
                a.AddInstruction(Instruction.Create(code, Register.XMM0, (uint)ShiftCounts[k % ShiftCounts.Length]));
                a.movdqu(__xmmword_ptr[rdi + R + 16 * k], xmm0);
            }
        }, input);
        AssertSame(code.ToString(), r, input);
    }

    /// <summary>Instructions with a general-register destination: rax is preset so 32-bit writes show their zero extension.</summary>
    public static TheoryData<Code, bool> GprDestinationForms() => new()
    {
        { Code.Pmovmskb_r32_xmm, false }, { Code.Movmskps_r32_xmm, false }, { Code.Movmskpd_r32_xmm, false },
        { Code.Cvttss2si_r32_xmmm32, true }, { Code.Cvttss2si_r64_xmmm32, true }, { Code.Cvtss2si_r32_xmmm32, true }, { Code.Cvtss2si_r64_xmmm32, true },
        { Code.Cvttsd2si_r32_xmmm64, true }, { Code.Cvttsd2si_r64_xmmm64, true }, { Code.Cvtsd2si_r32_xmmm64, true }, { Code.Cvtsd2si_r64_xmmm64, true },
        { Code.Movd_rm32_xmm, false }, { Code.Movq_rm64_xmm, false },
    };

    [SkippableTheory]
    [MemberData(nameof(GprDestinationForms))]
    public void Gpr_destination_forms_match_the_host(Code code, bool memorySource)
    {
        var input = Inputs((int)code);
        bool r64 = code.ToString().Contains("r64") || code.ToString().Contains("rm64");
        var dst = r64 ? Register.RAX : Register.EAX;
        foreach (uint rc in new uint[] { 0, 1, 2, 3 }) // MXCSR.RC: the rounding conversions follow it
        {
            var r = Both(a =>
            {
                for (int k = 0; k < N; k++)
                {
                    LoadAB(a, k);
                    a.mov(rax, 0x5555555555555555);
                    if (code is Code.Movd_rm32_xmm or Code.Movq_rm64_xmm)
                        a.AddInstruction(Instruction.Create(code, dst, Register.XMM0));
                    else if (memorySource && k % 2 == 1)
                        a.AddInstruction(Instruction.Create(code, dst, Mem(A + 16 * k)));
                    else a.AddInstruction(Instruction.Create(code, dst, Register.XMM0));
                    a.mov(__qword_ptr[rdi + R + 16 * k], rax);
                }
            }, input, 0x1f80 | (rc << 13));
            AssertSame($"{code} rc={rc}", r, input);
        }
    }

    /// <summary>Instructions with a general-register (or memory) source.</summary>
    public static TheoryData<Code> GprSourceForms() =>
    [
        Code.Cvtsi2ss_xmm_rm32, Code.Cvtsi2ss_xmm_rm64, Code.Cvtsi2sd_xmm_rm32, Code.Cvtsi2sd_xmm_rm64, Code.Movd_xmm_rm32,
        Code.Movq_xmm_rm64, Code.Pinsrw_xmm_r32m16_imm8,
    ];

    [SkippableTheory]
    [MemberData(nameof(GprSourceForms))]
    public void Gpr_source_forms_match_the_host(Code code)
    {
        var input = Inputs((int)code);
        bool r64 = code.ToString().Contains("rm64");
        var src = r64 ? Register.RAX : Register.EAX;
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                LoadAB(a, k);
                a.mov(rax, __qword_ptr[rdi + B + 16 * k]);
                bool mem = k % 2 == 1;
                if (code == Code.Pinsrw_xmm_r32m16_imm8)
                    a.AddInstruction(mem ? Instruction.Create(code, Register.XMM0, Mem(B + 16 * k + 2), (uint)k) : Instruction.Create(code, Register.XMM0, src, (uint)k));
                else a.AddInstruction(mem ? Instruction.Create(code, Register.XMM0, Mem(B + 16 * k + 8)) : Instruction.Create(code, Register.XMM0, src));
                a.movdqu(__xmmword_ptr[rdi + R + 16 * k], xmm0);
            }
        }, input);
        AssertSame(code.ToString(), r, input);
    }

    public static TheoryData<Code> CompareFlagForms() =>
        [Code.Comiss_xmm_xmmm32, Code.Ucomiss_xmm_xmmm32, Code.Comisd_xmm_xmmm64, Code.Ucomisd_xmm_xmmm64];

    [SkippableTheory]
    [MemberData(nameof(CompareFlagForms))]
    public void Compare_flag_forms_match_the_host(Code code)
    {
        var input = Inputs((int)code);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                LoadAB(a, k);
                a.mov(eax, k % 2 == 0 ? 0 : 0xff);
                a.add(al, 0x81); // leave OF/SF/AF set on some cases: COMIS must clear them
                a.AddInstruction(k % 3 == 2 ? Instruction.Create(code, Register.XMM0, Mem(B + 16 * k)) : Instruction.Create(code, Register.XMM0, Register.XMM1));
                a.pushfq();
                a.pop(rax);
                a.and(eax, 0x8d5);
                a.mov(__qword_ptr[rdi + R + 16 * k], rax);
            }
        }, input);
        AssertSame(code.ToString(), r, input);
    }

    /// <summary>Stores and merging loads: the memory result shows what was written and what was left alone.</summary>
    [SkippableFact]
    public void Partial_loads_and_stores_match_the_host()
    {
        var input = Inputs(7);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                LoadAB(a, k);
                var store = __qword_ptr[rdi + R + 16 * k];
                switch (k % 16)
                {
                    case 0: a.movlps(xmm0, __qword_ptr[rdi + B + 16 * k]); break;
                    case 1: a.movhps(xmm0, __qword_ptr[rdi + B + 16 * k]); break;
                    case 2: a.movlpd(xmm0, __qword_ptr[rdi + B + 16 * k]); break;
                    case 3: a.movhpd(xmm0, __qword_ptr[rdi + B + 16 * k]); break;
                    case 4: a.movhlps(xmm0, xmm1); break;
                    case 5: a.movlhps(xmm0, xmm1); break;
                    case 6: a.movss(__dword_ptr[rdi + R + 16 * k + 4], xmm1); break;
                    case 7: a.movsd(__qword_ptr[rdi + R + 16 * k + 8], xmm1); break;
                    case 8: a.movq(store, xmm1); break;
                    case 9: a.movd(__dword_ptr[rdi + R + 16 * k + 12], xmm1); break;
                    case 10: a.movhps(store, xmm1); break;
                    case 11: a.movlpd(store, xmm1); break;
                    case 12: a.movntdq(__xmmword_ptr[rdi + R + 16 * k], xmm1); break;
                    case 13: a.mov(rax, __qword_ptr[rdi + B + 16 * k]); a.movnti(__dword_ptr[rdi + R + 16 * k + 4], eax); break;
                    case 14:
                        a.mov(rsi, rdi); a.lea(rdi, __[rsi + R + 16 * k]); a.maskmovdqu(xmm0, xmm1); a.mov(rdi, rsi);
                        break;
                    default: a.movups(__xmmword_ptr[rdi + R + 16 * k], xmm1); a.pextrw(eax, xmm1, (byte)k); a.mov(__word_ptr[rdi + R + 16 * k], ax); break;
                }
                if (k % 16 < 6) a.movdqu(__xmmword_ptr[rdi + R + 16 * k], xmm0);
                a.sfence(); a.lfence(); a.mfence(); a.prefetcht0(__byte_ptr[rdi + A]); a.clflush(__byte_ptr[rdi + A]); a.pause();
            }
        }, input);
        AssertSame("partial moves", r, input);
    }

    // ---- emulator-only edge cases ----

    private static void ExpectFault(Action<Assembler> code, int vector, ulong cr0Extra = 0, bool osfxsr = true)
    {
        using var m = SseMachine(K, cr0Extra, osfxsr);
        m.Assemble(K, a => { code(a); a.hlt(); });
        m.ExpectVector(vector);
        Assert.Equal(K, m.Memory.ReadUInt64(TestMachine.KernelStack - 40)); // the frame's RIP: the faulting instruction
    }

    [Fact]
    public void Misaligned_aligned_forms_raise_gp()
    {
        ExpectFault(a => a.movdqa(xmm0, __xmmword_ptr[rdi + 8]), 13);
        ExpectFault(a => a.movaps(__xmmword_ptr[rdi + 4], xmm0), 13);
        ExpectFault(a => a.paddb(xmm0, __xmmword_ptr[rdi + 1]), 13);
        ExpectFault(a => a.movntdq(__xmmword_ptr[rdi + 8], xmm0), 13);
        // The unaligned and narrower forms do not fault.
        using var m = SseMachine(K);
        m.Memory.WriteUInt64(D + 1, 0x1122334455667788);
        m.Assemble(K, a => { a.movdqu(xmm1, __xmmword_ptr[rdi + 1]); a.movsd(xmm2, __qword_ptr[rdi + 1]); a.movq(rax, xmm1); a.movq(rbx, xmm2); a.hlt(); });
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal((0x1122334455667788UL, 0x1122334455667788UL), (m.Regs.Rax, m.Regs.Rbx));
    }

    [Fact]
    public void Ts_raises_nm_and_em_or_no_osfxsr_raise_ud()
    {
        ExpectFault(a => a.pxor(xmm0, xmm1), 7, cr0Extra: 8 /* TS */);
        ExpectFault(a => a.addsd(xmm0, xmm1), 7, cr0Extra: 8 /* TS */);
        ExpectFault(a => a.pxor(xmm0, xmm1), 6, cr0Extra: 4 /* EM */);
        ExpectFault(a => a.movdqu(xmm0, xmm1), 6, osfxsr: false);
    }

    [Fact]
    public void Mmx_float_conversions_raise_ud_and_are_listed()
    {
        using var m = SseMachine(K);
        m.Assemble(K, a => { a.cvtpi2ps(xmm0, mm1); a.hlt(); });
        m.ExpectVector(6);
        Assert.Contains(Mnemonic.Cvtpi2ps, m.Cpu.UnimplementedMnemonics);
    }

    // ---- MMX ----

    public static TheoryData<Code> MmxBinaryForms() =>
    [
        Code.Paddb_mm_mmm64, Code.Paddw_mm_mmm64, Code.Paddd_mm_mmm64, Code.Paddq_mm_mmm64, Code.Psubb_mm_mmm64, Code.Psubw_mm_mmm64,
        Code.Psubd_mm_mmm64, Code.Psubq_mm_mmm64, Code.Paddsb_mm_mmm64, Code.Paddsw_mm_mmm64, Code.Paddusb_mm_mmm64, Code.Paddusw_mm_mmm64,
        Code.Psubsb_mm_mmm64, Code.Psubsw_mm_mmm64, Code.Psubusb_mm_mmm64, Code.Psubusw_mm_mmm64,
        Code.Pcmpeqb_mm_mmm64, Code.Pcmpeqw_mm_mmm64, Code.Pcmpeqd_mm_mmm64, Code.Pcmpgtb_mm_mmm64, Code.Pcmpgtw_mm_mmm64, Code.Pcmpgtd_mm_mmm64,
        Code.Pand_mm_mmm64, Code.Pandn_mm_mmm64, Code.Por_mm_mmm64, Code.Pxor_mm_mmm64,
        Code.Pmullw_mm_mmm64, Code.Pmulhw_mm_mmm64, Code.Pmulhuw_mm_mmm64, Code.Pmuludq_mm_mmm64, Code.Pmaddwd_mm_mmm64,
        Code.Pavgb_mm_mmm64, Code.Pavgw_mm_mmm64, Code.Pminub_mm_mmm64, Code.Pmaxub_mm_mmm64, Code.Pminsw_mm_mmm64, Code.Pmaxsw_mm_mmm64,
        Code.Psadbw_mm_mmm64, Code.Punpcklbw_mm_mmm32, Code.Punpcklwd_mm_mmm32, Code.Punpckldq_mm_mmm32,
        Code.Punpckhbw_mm_mmm64, Code.Punpckhwd_mm_mmm64, Code.Punpckhdq_mm_mmm64, Code.Packsswb_mm_mmm64, Code.Packssdw_mm_mmm64,
        Code.Packuswb_mm_mmm64, Code.Psllw_mm_mmm64, Code.Pslld_mm_mmm64, Code.Psllq_mm_mmm64, Code.Psrlw_mm_mmm64, Code.Psrld_mm_mmm64,
        Code.Psrlq_mm_mmm64, Code.Psraw_mm_mmm64, Code.Psrad_mm_mmm64, Code.Movq_mm_mmm64,
    ];

    [SkippableTheory]
    [MemberData(nameof(MmxBinaryForms))]
    public void Mmx_binary_forms_match_the_host(Code code)
    {
        bool shift = code.ToString()[..3] == "Psr" || code.ToString()[..3] == "Psl";
        var input = Inputs((int)code, shiftCounts: shift);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                a.movq(mm0, __qword_ptr[rdi + A + 16 * k]);
                a.movq(mm1, __qword_ptr[rdi + B + 16 * k]);
                a.AddInstruction(k % 2 == 0 ? Instruction.Create(code, Register.MM0, Register.MM1) : Instruction.Create(code, Register.MM0, Mem(B + 16 * k)));
                a.movq(__qword_ptr[rdi + R + 16 * k], mm0);
            }
            a.emms();
        }, input);
        AssertSame(code.ToString(), r, input);
    }

    [SkippableFact]
    public void Mmx_other_forms_match_the_host()
    {
        var input = Inputs(11);
        var r = Both(a =>
        {
            for (int k = 0; k < N; k++)
            {
                a.movq(mm0, __qword_ptr[rdi + A + 16 * k]);
                a.movq(mm1, __qword_ptr[rdi + B + 16 * k]);
                a.movdqu(xmm2, __xmmword_ptr[rdi + A + 16 * k]);
                a.mov(rax, 0x5555555555555555);
                switch (k % 12)
                {
                    case 0: a.pshufw(mm0, mm1, (byte)(k * 29)); break;
                    case 1: a.pshufw(mm0, __qword_ptr[rdi + B + 16 * k], (byte)(k * 53)); break;
                    case 2: a.pmovmskb(eax, mm1); break;
                    case 3: a.pextrw(eax, mm1, (byte)k); break;
                    case 4: a.mov(rax, __qword_ptr[rdi + B + 16 * k]); a.pinsrw(mm0, eax, (byte)k); break;
                    case 5: a.pinsrw(mm0, __word_ptr[rdi + B + 16 * k + 6], (byte)k); break;
                    case 6: a.movq2dq(xmm2, mm1); break;
                    case 7: a.movdq2q(mm0, xmm2); a.pxor(xmm2, xmm2); break;
                    case 8: a.mov(rsi, rdi); a.lea(rdi, __[rsi + R + 16 * k]); a.maskmovq(mm0, mm1); a.mov(rdi, rsi); break;
                    case 9: a.movntq(__qword_ptr[rdi + R + 16 * k + 8], mm1); break;
                    case 10: a.movd(eax, mm1); a.movd(mm0, __dword_ptr[rdi + B + 16 * k + 4]); break;
                    default: a.movq(rax, mm1); a.psrlq(mm0, (byte)(k % 70)); a.psllw(mm1, 3); a.paddw(mm0, mm1); break;
                }
                a.movq(__qword_ptr[rdi + R + 16 * k], mm0);
                a.movdqu(__xmmword_ptr[rdi + B + 16 * k], xmm2);
                a.mov(__qword_ptr[rdi + A + 16 * k], rax);
            }
            a.emms();
        }, input);
        AssertSame("mmx forms", r, input);
    }

    /// <summary>Linux restores FPU state on AMD with "fnclex; emms; fild" first (its FXSAVE-leak workaround).</summary>
    [Fact]
    public void Fild_pushes_onto_the_x87_stack_in_the_fxsave_image()
    {
        using var m = SseMachine(K);
        m.Memory.WriteUInt32(D + 0x300, unchecked((uint)-5));
        m.Memory.WriteUInt64(D + 0x308, 0x1122334455667788);
        m.Assemble(K, a =>
        {
            a.fninit();
            a.movq(mm0, __qword_ptr[rdi + 0x308]); // MM0 valid, TOP 0
            a.fnclex();
            a.emms();
            a.fild(__dword_ptr[rdi + 0x300]);
            a.fild(__word_ptr[rdi + 0x300]);
            a.fxsave64(__[rdi + 0x1000]);
            a.movq(mm1, mm0); // back to MMX: TOP 0, MM0 is physical register 0 again
            a.movq(__qword_ptr[rdi + 0x400], mm1);
            a.hlt();
        });
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        const ulong fx = D + 0x1000;
        Assert.Equal((ushort)(6 << 11), m.Memory.ReadUInt16(fx + 2));                  // FSW: TOP 6, no exception
        Assert.Equal((byte)0xc0, m.Memory.ReadByte(fx + 4));                          // physical 6 and 7 valid
        Assert.Equal(0xa000000000000000UL, m.Memory.ReadUInt64(fx + 32));            // ST0 = -5 (from the m16 0xfffb)
        Assert.Equal((ushort)(0x8000 | (16383 + 2)), m.Memory.ReadUInt16(fx + 40));
        Assert.Equal(0xa000000000000000UL, m.Memory.ReadUInt64(fx + 48));            // ST1 = -5
        Assert.Equal(0x1122334455667788UL, m.Memory.ReadUInt64(fx + 32 + 2 * 16));  // ST2 is physical 0: the old MM0
        Assert.Equal(0x1122334455667788UL, m.Memory.ReadUInt64(D + 0x400));
    }

    [Fact]
    public void Mmx_state_lives_in_the_fxsave_image()
    {
        using var m = SseMachine(K);
        m.Memory.WriteUInt64(D + 0x100, 0x0123456789abcdef);
        m.Assemble(K, a =>
        {
            a.fninit();
            a.movq(mm3, __qword_ptr[rdi + 0x100]);
            a.fxsave64(__[rdi + 0x1000]);
            a.emms();
            a.fxsave64(__[rdi + 0x2000]);
            a.hlt();
        });
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(0x0123456789abcdefUL, m.Memory.ReadUInt64(D + 0x1000 + 32 + 3 * 16)); // MM3 is the mantissa of ST3
        Assert.Equal((ushort)0xffff, m.Memory.ReadUInt16(D + 0x1000 + 32 + 3 * 16 + 8));
        Assert.Equal((byte)0xff, m.Memory.ReadByte(D + 0x1000 + 4));                       // all tagged valid
        Assert.Equal((byte)0x00, m.Memory.ReadByte(D + 0x2000 + 4));                       // EMMS: all empty
        ExpectFault(a => a.paddb(mm0, mm1), 7, cr0Extra: 8 /* TS */);
        ExpectFault(a => a.fild(__dword_ptr[rdi]), 7, cr0Extra: 8 /* TS */);
        ExpectFault(a => a.emms(), 6, cr0Extra: 4 /* EM */);
    }

    [Fact]
    public void A_16_byte_store_across_into_an_unmapped_page_writes_nothing()
    {
        using var m = SseMachine(K);
        const ulong page = 0x150000;
        m.Memory.WriteUInt64(TestMachine.Pt + (page >> 12) * 8, 0);
        m.Memory.WriteUInt64(page - 8, 0xabababababababab);
        m.Assemble(K, a => { a.pcmpeqb(xmm0, xmm0); a.mov(rax, page - 8); a.movdqu(__xmmword_ptr[rax], xmm0); a.hlt(); });
        m.ExpectVector(14);
        Assert.Equal(0xababababababababUL, m.Memory.ReadUInt64(page - 8));
    }

    [Fact]
    public void Fxsave_and_fxrstor_carry_the_xmm_registers_and_mxcsr()
    {
        using var m = SseMachine(K);
        m.Memory.WriteUInt64(D + 0x100, 0x0123456789abcdef);
        m.Memory.WriteUInt64(D + 0x108, 0xfedcba9876543210);
        m.Memory.WriteUInt32(D + 0x110, 0x3f80); // MXCSR with RC = round toward zero
        m.Assemble(K, a =>
        {
            a.movdqu(xmm7, __xmmword_ptr[rdi + 0x100]);
            a.ldmxcsr(__dword_ptr[rdi + 0x110]);
            a.fxsave64(__[rdi + 0x1000]);
            a.pxor(xmm7, xmm7);
            a.fxrstor64(__[rdi + 0x1000]);
            a.movdqu(__xmmword_ptr[rdi + 0x200], xmm7);
            a.stmxcsr(__dword_ptr[rdi + 0x210]);
            a.hlt();
        });
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(0x0123456789abcdefUL, m.Memory.ReadUInt64(D + 0x1000 + 160 + 7 * 16));
        Assert.Equal(0x3f80u, m.Memory.ReadUInt32(D + 0x1000 + 24));
        Assert.Equal((0x0123456789abcdefUL, 0xfedcba9876543210UL), (m.Memory.ReadUInt64(D + 0x200), m.Memory.ReadUInt64(D + 0x208)));
        Assert.Equal(0x3f80u, m.Memory.ReadUInt32(D + 0x210));
    }

    [Fact]
    public void Unimplemented_sse3_and_later_raise_ud_and_are_listed()
    {
        using var m = SseMachine(K);
        m.Assemble(K, a => { a.pshufb(xmm0, xmm1); a.hlt(); });
        m.ExpectVector(6);
        Assert.Contains(Mnemonic.Pshufb, m.Cpu.UnimplementedMnemonics);
    }
}
