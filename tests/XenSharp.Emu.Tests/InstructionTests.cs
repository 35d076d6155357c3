using Iced.Intel;
using XenSharp.Accel;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

/// <summary>Instructions outside the flag table: multiply/divide forms, moves with extension, bit ops on memory, atomics, stack frames.</summary>
public sealed class InstructionTests
{
    private const ulong K = TestMachine.KernelCode, D = TestMachine.Data;

    private static VcpuRegisters RunToHalt(TestMachine m, Action<Assembler> code)
    {
        m.Assemble(K, code);
        m.Start(K);
        var e = m.Run();
        Assert.True(e.Reason == ExitReason.Halt, $"expected Halt, got {e} at 0x{m.Rip:x}");
        return m.Regs;
    }

    [Fact]
    public void Multiply_and_divide_forms()
    {
        using var m = new TestMachine();
        var r = RunToHalt(m, a =>
        {
            a.mov(rax, 0xfffffffffffffffbUL); // -5
            a.mov(rcx, 7);
            a.imul(rcx);                      // rdx:rax = -35
            a.mov(r8, rax); a.mov(r9, rdx);
            a.mov(rax, ulong.MaxValue);
            a.mov(rcx, 3);
            a.mul(rcx);                       // rdx=2, rax=-3
            a.mov(r10, rdx);
            a.imul(r11, rcx, -9);             // -27
            a.mov(rax, 100); a.cqo(); a.mov(rcx, 0xfffffffffffffff9UL); a.idiv(rcx); // 100 / -7 = -14 r 2
            a.mov(r12, rax); a.mov(r13, rdx);
            a.mov(eax, 0x80000000); a.cdq(); a.mov(r14, rdx);
            a.mov(ax, 1000); a.mov(cl, 7); a.div(cl); a.movzx(r15d, ax); // al=142, ah=6
            a.hlt();
        });
        Assert.Equal(unchecked((ulong)-35L), r.R8);
        Assert.Equal(ulong.MaxValue, r.R9);
        Assert.Equal(2UL, r.R10);
        Assert.Equal(unchecked((ulong)-27L), r.R11);
        Assert.Equal(unchecked((ulong)-14L), r.R12);
        Assert.Equal(2UL, r.R13);
        Assert.Equal(0xffffffffUL, r.R14);
        Assert.Equal((6UL << 8) | 142, r.R15);
    }

    [Fact]
    public void Moves_setcc_cmov_bswap_and_bit_counts()
    {
        using var m = new TestMachine();
        m.Memory.WriteUInt64(D, 0x8081828384858687);
        var r = RunToHalt(m, a =>
        {
            a.mov(rsi, D);
            a.movsx(rax, __byte_ptr[rsi]);       // 0x87 -> -121
            a.movzx(ebx, __word_ptr[rsi + 2]);   // 0x8485
            a.movsxd(rcx, __dword_ptr[rsi + 4]); // 0x80818283 sign-extended
            a.mov(edx, 5); a.cmp(edx, 6); a.setl(r8b); a.setg(r9b);
            a.mov(r10, 11); a.mov(r11, 22); a.cmp(r10, r11); a.cmovb(r10, r11);
            a.mov(r12, 0x1122334455667788); a.bswap(r12);
            a.mov(r13, 0x0000f000); a.popcnt(r14, r13); a.tzcnt(r15, r13); a.lzcnt(rdi, r13);
            a.bsr(rbp, r13);
            a.hlt();
        });
        Assert.Equal(unchecked((ulong)-121L), r.Rax);
        Assert.Equal(0x8485UL, r.Rbx);
        Assert.Equal(0xffffffff80818283UL, r.Rcx);
        Assert.Equal((1UL, 0UL), (r.R8 & 0xff, r.R9 & 0xff));
        Assert.Equal(22UL, r.R10);
        Assert.Equal(0x8877665544332211UL, r.R12);
        Assert.Equal((4UL, 12UL, 48UL, 15UL), (r.R14, r.R15, r.Rdi, r.Rbp));
    }

    [Fact]
    public void Bit_ops_on_memory_use_the_bit_string_offset()
    {
        using var m = new TestMachine();
        var r = RunToHalt(m, a =>
        {
            a.mov(rsi, D + 64);
            a.mov(rax, 70);
            a.bts(__qword_ptr[rsi], rax);           // bit 70 = byte 8, bit 6
            a.mov(rax, -1);
            a.bts(__qword_ptr[rsi], rax);           // bit -1 = byte -1, bit 7
            a.bt(__dword_ptr[rsi], 3); a.setc(bl);
            a.@lock.btc(__qword_ptr[rsi], 3); a.setc(cl);
            a.hlt();
        });
        Assert.Equal(0x40, m.Memory.ReadByte(D + 64 + 8));
        Assert.Equal(0x80, m.Memory.ReadByte(D + 63));
        Assert.Equal(8, m.Memory.ReadByte(D + 64));
        Assert.Equal((0UL, 0UL), (r.Rbx & 0xff, r.Rcx & 0xff));
    }

    [Fact]
    public void Atomics_xchg_cmpxchg8b_cmpxchg16b()
    {
        using var m = new TestMachine();
        m.Memory.WriteUInt64(D, 5);
        m.Memory.WriteUInt64(D + 16, 0x1111);
        m.Memory.WriteUInt64(D + 24, 0x2222);
        var r = RunToHalt(m, a =>
        {
            a.mov(rsi, D);
            a.mov(eax, 9);
            a.xchg(__qword_ptr[rsi], rax);          // rax=5, mem=9
            a.mov(r8, rax);
            a.mov(eax, 0x1111); a.xor(edx, edx); a.mov(ebx, 0x3333); a.mov(ecx, 0x4444);
            a.mov(r9, 0x2222); a.mov(rdx, r9);
            a.@lock.cmpxchg16b(__xmmword_ptr[rsi + 16]); // equal: store rcx:rbx
            a.setz(r10b);
            a.mov(eax, 1); a.xor(edx, edx);
            a.cmpxchg8b(__qword_ptr[rsi]);           // 9 != 1: edx:eax = 0:9
            a.setz(r11b);
            a.mov(r12, rax);
            a.hlt();
        });
        Assert.Equal(5UL, r.R8);
        Assert.Equal(9UL, r.R12);
        Assert.Equal((1UL, 0UL), (r.R10 & 0xff, r.R11 & 0xff));
        Assert.Equal(0x3333UL, m.Memory.ReadUInt64(D + 16));
        Assert.Equal(0x4444UL, m.Memory.ReadUInt64(D + 24));
    }

    [Fact]
    public void Stack_frames_loop_and_flag_transfer()
    {
        using var m = new TestMachine();
        var r = RunToHalt(m, a =>
        {
            var l = a.CreateLabel();
            a.mov(rbp, 0x1234);
            a.enter(32, 0);
            a.mov(r8, rbp);
            a.mov(r9, rsp);
            a.leave();
            a.mov(r10, rbp);
            a.mov(ecx, 5); a.xor(eax, eax);
            a.Label(ref l);
            a.add(eax, ecx);
            a.loop(l);
            a.stc(); a.lahf(); a.mov(bl, ah);
            a.mov(ah, 0x40); a.sahf(); a.setz(dl);
            a.hlt();
        });
        Assert.Equal(TestMachine.KernelStack - 8, r.R8);
        Assert.Equal(TestMachine.KernelStack - 40, r.R9);
        Assert.Equal(0x1234UL, r.R10);
        Assert.Equal(15UL, r.Rax & 0xff);
        Assert.Equal(7UL, r.Rbx & 0xff); // CF, bit 1, PF from the last add (0x0f)
        Assert.Equal(1UL, r.Rdx & 0xff);
    }

    [Fact]
    public void Fxsave_fxrstor_and_mxcsr_keep_fpu_state()
    {
        using var m = new TestMachine();
        var sregs = m.LongModeSregs(0);
        m.Assemble(K, a =>
        {
            a.mov(rsi, D);
            a.mov(__dword_ptr[rsi + 0x1000], 0x1fa0);
            a.ldmxcsr(__dword_ptr[rsi + 0x1000]);
            a.fxsave64(__[rsi]);
            a.fninit();
            a.stmxcsr(__dword_ptr[rsi + 0x1004]);
            a.fnstcw(__word_ptr[rsi + 0x1008]);
            a.mov(__dword_ptr[rsi + 24], 0x1f80);
            a.fxrstor64(__[rsi]);
            a.stmxcsr(__dword_ptr[rsi + 0x100c]);
            a.fxsave64(__[rsi + 1]); // misaligned: #GP
        });
        m.Start(K);
        sregs.Cr4 |= X86.Cr4Osfxsr;
        m.Cpu.SetSpecialRegisters(sregs);
        m.ExpectVector(13);
        Assert.Equal(0x037fU, m.Memory.ReadUInt16(D));
        Assert.Equal(0x1fa0U, m.Memory.ReadUInt32(D + 0x1004));
        Assert.Equal(0x037fU, m.Memory.ReadUInt16(D + 0x1008));
        Assert.Equal(0x1f80U, m.Memory.ReadUInt32(D + 0x100c));
        // CR0.TS: #NM.
        m.Start(K);
        sregs.Cr0 |= 8;
        m.Cpu.SetSpecialRegisters(sregs);
        m.Assemble(K, a => a.fxsave64(__[0x200000]));
        m.ExpectVector(7);
    }

    [Fact]
    public void Bmi_adx_and_movbe()
    {
        using var m = new TestMachine();
        m.Memory.WriteUInt32(D, 0x11223344);
        var r = RunToHalt(m, a =>
        {
            a.mov(rax, 0xf0f0); a.mov(rbx, 0xff00);
            a.andn(rcx, rax, rbx);            // ~0xf0f0 & 0xff00 = 0x0f00
            a.blsr(rdx, rbx);                 // 0xfe00
            a.mov(esi, 40); a.bzhi(rdi, rbx, rsi); // 0xff00
            a.mov(esi, 12); a.bzhi(r8, rbx, rsi);  // 0x0f00
            a.mov(r9, 0b1011); a.mov(r10, 0xf0); a.pdep(r11, r9, r10);  // 0xb0
            a.pext(r12, r10, r10);            // 0xf
            a.mov(rdx, ulong.MaxValue); a.mov(r13, 2); a.mulx(r14, r15, r13); // hi 1, lo -2
            a.movbe(eax, __dword_ptr[D]);
            a.mov(ebp, 0xffffffff); a.stc(); a.adcx(ebp, eax); // 0x44332211 + 0xffffffff + 1
            a.hlt();
        });
        Assert.Equal(0x0f00UL, r.Rcx);
        Assert.Equal(0xff00UL, r.Rdi);
        Assert.Equal(0x0f00UL, r.R8);
        Assert.Equal(0xb0UL, r.R11);
        Assert.Equal(0xfUL, r.R12);
        Assert.Equal((1UL, ulong.MaxValue - 1), (r.R14, r.R15));
        Assert.Equal(0x44332211UL, r.Rax);
        Assert.Equal(0x44332211UL, r.Rbp);
        Assert.Equal(1UL, r.Rflags & 1);
    }

    [Fact]
    public void Lock_prefix_on_a_register_or_mov_is_ud()
    {
        using var m = new TestMachine();
        m.Assemble(K, a => a.db(0xf0, 0x48, 0x01, 0xc0)); // lock add rax, rax
        m.Start(K);
        m.ExpectVector(6);
    }
}
