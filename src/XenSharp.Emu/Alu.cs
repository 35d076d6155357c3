using System.Runtime.CompilerServices;
using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>Register-file addressing and the arithmetic flag rules (CF, PF, AF, ZF, SF, OF) for each operation class.</summary>
public sealed unsafe partial class EmuVcpu
{
    private const ulong ArithFlags = CF | PF | AF | ZF | SF | OF;

    // Iced register → (GPR index, width kind). Kind: 8/4/2/1 bytes, 9 = high byte (AH..BH), 0 = not a GPR.
    private static readonly byte[] RegIndex = new byte[256];
    private static readonly byte[] RegKind = new byte[256];
    private static readonly byte[] ParityTable = new byte[256];

    static EmuVcpu()
    {
        for (int i = 0; i < 16; i++)
        {
            Set(Register.RAX + i, i, 8);
            Set(Register.EAX + i, i, 4);
            Set(Register.AX + i, i, 2);
        }
        for (int i = 0; i < 4; i++)
        {
            Set(Register.AL + i, i, 1);
            Set(Register.AH + i, i, 9);
            Set(Register.SPL + i, 4 + i, 1);
        }
        for (int i = 0; i < 8; i++) Set(Register.R8L + i, 8 + i, 1);
        for (int i = 0; i < 256; i++) ParityTable[i] = (byte)((System.Numerics.BitOperations.PopCount((uint)i) & 1) == 0 ? PF : 0);

        static void Set(Register r, int index, byte kind)
        {
            RegIndex[(int)r] = (byte)index;
            RegKind[(int)r] = kind;
        }
    }

    private static int RegSize(Register r) => RegKind[(int)r] switch { 9 => 1, var k => k };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong GetReg(Register r)
    {
        ulong v = _r[RegIndex[(int)r]];
        return RegKind[(int)r] switch
        {
            8 => v,
            4 => (uint)v,
            2 => (ushort)v,
            1 => (byte)v,
            9 => (byte)(v >> 8),
            _ => GetOtherReg(r),
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetReg(Register r, ulong v)
    {
        ulong* p = _r + RegIndex[(int)r];
        switch (RegKind[(int)r])
        {
            case 8: *p = v; break;
            case 4: *p = (uint)v; break;
            case 2: *p = (*p & ~0xffffUL) | (ushort)v; break;
            case 1: *p = (*p & ~0xffUL) | (byte)v; break;
            case 9: *p = (*p & ~0xff00UL) | ((ulong)(byte)v << 8); break;
            default: throw new EmuInternalError($"write to register {r} is not supported");
        }
    }

    private ulong GetOtherReg(Register r) => r switch
    {
        Register.RIP => _rip,
        Register.ES => _es.Selector, Register.CS => _cs.Selector, Register.SS => _ss.Selector,
        Register.DS => _ds.Selector, Register.FS => _fs.Selector, Register.GS => _gs.Selector,
        _ => throw new EmuInternalError($"read of register {r} is not supported"),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Sign(int size) => 1UL << (size * 8 - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Szp(ulong r, int size)
    {
        ulong f = ParityTable[(byte)r];
        if ((r & Mask(size)) == 0) f |= ZF;
        if ((r & Sign(size)) != 0) f |= SF;
        return f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetArith(ulong f) => _rflags = (_rflags & ~ArithFlags) | f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AluAdd(ulong a, ulong b, ulong c, int size)
    {
        ulong m = Mask(size);
        a &= m; b &= m;
        ulong r = (a + b + c) & m;
        ulong f = Szp(r, size) | ((a ^ b ^ r) & AF);
        bool carry = size == 8 ? r < a || (c != 0 && r == a) : a + b + c > m;
        if (carry) f |= CF;
        if (((a ^ r) & (b ^ r) & Sign(size)) != 0) f |= OF;
        SetArith(f);
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AluSub(ulong a, ulong b, ulong c, int size)
    {
        ulong m = Mask(size);
        a &= m; b &= m;
        ulong r = (a - b - c) & m;
        ulong f = Szp(r, size) | ((a ^ b ^ r) & AF);
        if (c != 0 ? a <= b : a < b) f |= CF;
        if (((a ^ b) & (a ^ r) & Sign(size)) != 0) f |= OF;
        SetArith(f);
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AluLogic(ulong r, int size)
    {
        r &= Mask(size);
        SetArith(Szp(r, size));
        return r;
    }

    /// <summary>The two-operand ALU group: ADD OR ADC SBB AND SUB XOR CMP TEST, by mnemonic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong Alu2(Mnemonic m, ulong a, ulong b, int size) => m switch
    {
        Mnemonic.Add => AluAdd(a, b, 0, size),
        Mnemonic.Adc => AluAdd(a, b, _rflags & CF, size),
        Mnemonic.Sub or Mnemonic.Cmp => AluSub(a, b, 0, size),
        Mnemonic.Sbb => AluSub(a, b, _rflags & CF, size),
        Mnemonic.And or Mnemonic.Test => AluLogic(a & b, size),
        Mnemonic.Or => AluLogic(a | b, size),
        Mnemonic.Xor => AluLogic(a ^ b, size),
        _ => throw new EmuInternalError($"not an ALU op: {m}"),
    };

    /// <summary>One-operand read-modify-write group (INC DEC NEG NOT).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong Alu1(Mnemonic m, ulong a, int size)
    {
        switch (m)
        {
            case Mnemonic.Inc: { ulong cf = _rflags & CF; ulong r = AluAdd(a, 1, 0, size); _rflags = (_rflags & ~CF) | cf; return r; }
            case Mnemonic.Dec: { ulong cf = _rflags & CF; ulong r = AluSub(a, 1, 0, size); _rflags = (_rflags & ~CF) | cf; return r; }
            case Mnemonic.Neg: return AluSub(0, a, 0, size);
            case Mnemonic.Not: return ~a & Mask(size);
            default: throw new EmuInternalError($"not a unary op: {m}");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Cond(ConditionCode cc) => cc switch
    {
        ConditionCode.o => (_rflags & OF) != 0,
        ConditionCode.no => (_rflags & OF) == 0,
        ConditionCode.b => (_rflags & CF) != 0,
        ConditionCode.ae => (_rflags & CF) == 0,
        ConditionCode.e => (_rflags & ZF) != 0,
        ConditionCode.ne => (_rflags & ZF) == 0,
        ConditionCode.be => (_rflags & (CF | ZF)) != 0,
        ConditionCode.a => (_rflags & (CF | ZF)) == 0,
        ConditionCode.s => (_rflags & SF) != 0,
        ConditionCode.ns => (_rflags & SF) == 0,
        ConditionCode.p => (_rflags & PF) != 0,
        ConditionCode.np => (_rflags & PF) == 0,
        ConditionCode.l => ((_rflags & SF) != 0) != ((_rflags & OF) != 0),
        ConditionCode.ge => ((_rflags & SF) != 0) == ((_rflags & OF) != 0),
        ConditionCode.le => (_rflags & ZF) != 0 || (((_rflags & SF) != 0) != ((_rflags & OF) != 0)),
        ConditionCode.g => (_rflags & ZF) == 0 && (((_rflags & SF) != 0) == ((_rflags & OF) != 0)),
        _ => true,
    };

    /// <summary>SHL SHR SAR ROL ROR RCL RCR with a count already read; count 0 leaves flags alone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong Shift(Mnemonic m, ulong a, int count, int size)
    {
        int bits = size * 8;
        count &= size == 8 ? 63 : 31;
        ulong mask = Mask(size), sign = Sign(size);
        a &= mask;
        if (count == 0) return a;
        ulong r, f = _rflags;
        switch (m)
        {
            case Mnemonic.Shl or Mnemonic.Sal:
            {
                r = count >= 64 ? 0 : (a << count) & mask;
                bool cf = count <= bits && ((a >> (bits - count)) & 1) != 0;
                f = (f & ~ArithFlags) | Szp(r, size) | (cf ? CF : 0);
                if (((r & sign) != 0) != cf) f |= OF;
                break;
            }
            case Mnemonic.Shr:
            {
                r = count >= 64 ? 0 : a >> count;
                bool cf = count <= bits && ((a >> (count - 1)) & 1) != 0;
                f = (f & ~ArithFlags) | Szp(r, size) | (cf ? CF : 0);
                if ((a & sign) != 0) f |= OF;
                break;
            }
            case Mnemonic.Sar:
            {
                long sa = (long)(a << (64 - bits)) >> (64 - bits);
                int c = Math.Min(count, 63);
                r = (ulong)(sa >> c) & mask;
                bool cf = ((sa >> (c - 1)) & 1) != 0;
                f = (f & ~ArithFlags) | Szp(r, size) | (cf ? CF : 0);
                break;
            }
            case Mnemonic.Rol:
            {
                int c = count % bits;
                r = c == 0 ? a : ((a << c) | (a >> (bits - c))) & mask;
                bool cf = (r & 1) != 0;
                f = (f & ~(CF | OF)) | (cf ? CF : 0);
                if (((r & sign) != 0) != cf) f |= OF;
                break;
            }
            case Mnemonic.Ror:
            {
                int c = count % bits;
                r = c == 0 ? a : ((a >> c) | (a << (bits - c))) & mask;
                bool msb = (r & sign) != 0, msb2 = (r & (sign >> 1)) != 0;
                f = (f & ~(CF | OF)) | (msb ? CF : 0) | (msb != msb2 ? OF : 0);
                break;
            }
            case Mnemonic.Rcl:
            {
                int c = count % (bits + 1);
                r = a;
                ulong cf = f & CF;
                for (int i = 0; i < c; i++)
                {
                    ulong nc = (r & sign) != 0 ? 1UL : 0;
                    r = ((r << 1) | cf) & mask;
                    cf = nc;
                }
                f = (f & ~(CF | OF)) | cf;
                if ((((r & sign) != 0) ? 1UL : 0) != cf) f |= OF;
                break;
            }
            case Mnemonic.Rcr:
            {
                int c = count % (bits + 1);
                r = a;
                ulong cf = f & CF;
                bool of = ((a & sign) != 0) != (cf != 0);
                for (int i = 0; i < c; i++)
                {
                    ulong nc = r & 1;
                    r = (r >> 1) | (cf != 0 ? sign : 0);
                    cf = nc;
                }
                f = (f & ~(CF | OF)) | cf | (of ? OF : 0);
                break;
            }
            default: throw new EmuInternalError($"not a shift: {m}");
        }
        _rflags = f;
        return r;
    }

    /// <summary>SHLD/SHRD: shift <paramref name="a"/> filling from <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong DoubleShift(bool left, ulong a, ulong b, int count, int size)
    {
        int bits = size * 8;
        count &= size == 8 ? 63 : 31;
        ulong mask = Mask(size);
        a &= mask; b &= mask;
        if (count == 0) return a;
        UInt128 wide, res;
        ulong r;
        bool cf;
        if (left)
        {
            wide = ((UInt128)a << bits) | b;
            res = wide << count;
            r = (ulong)(res >> bits) & mask;
            cf = ((a >> (bits - count)) & 1) != 0 || (count > bits && ((b >> (2 * bits - count)) & 1) != 0);
        }
        else
        {
            wide = ((UInt128)b << bits) | a;
            res = wide >> count;
            r = (ulong)res & mask;
            cf = ((wide >> (count - 1)) & 1) != 0;
        }
        ulong f = (_rflags & ~ArithFlags) | Szp(r, size) | (cf ? CF : 0);
        if (((r ^ a) & Sign(size)) != 0) f |= OF;
        _rflags = f;
        return r;
    }
}
