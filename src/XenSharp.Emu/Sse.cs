using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Iced.Intel;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>
/// SSE and SSE2 (legacy encodings): the integer, logical, shuffle and scalar/packed floating-point instructions compilers
/// and C libraries emit. XMM0-15 live in <see cref="_xmmArray"/> (copied into and out of the FXSAVE image by
/// FXSAVE/FXRSTOR), MXCSR in <see cref="_mxcsr"/>.
/// Not modelled: MXCSR rounding control for arithmetic (results are round-to-nearest; conversions to integer do honour
/// RC), FTZ/DAZ, the DE/OE/UE/PE flags (IE and ZE are set, approximately), SIMD floating-point exceptions (#XM is never
/// raised whatever the masks). SSE3 and later and RCP/RSQRT raise #UD and are listed as unimplemented; MMX-register forms are Mmx.cs's.
/// </summary>
public sealed unsafe partial class EmuVcpu
{
    private readonly ulong[] _xmmArray = GC.AllocateArray<ulong>(32, pinned: true);
    private readonly ulong* _x; // pinned _xmmArray: XMMn is _x[2n] (low) and _x[2n + 1]
    private uint _mxcsr = 0x1f80;

    private const uint MxIe = 1, MxZe = 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref Vector128<ulong> X(Register r) => ref Unsafe.AsRef<Vector128<ulong>>(_x + 2 * (r - Register.XMM0));

    /// <summary>The #UD/#NM checks every SSE instruction makes. (MMX-register forms are classified to Mmx.cs at decode;
    /// should one arrive here it raises #UD and is listed rather than being run as its XMM twin.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SseEnter(ref Instruction i)
    {
        if ((_cr0 & 4) != 0 || (_cr4 & X86.Cr4Osfxsr) == 0) throw GuestFault.Ud(); // CR0.EM, CR4.OSFXSR
        if ((_cr0 & 8) != 0) throw new GuestFault(7, 0, false);                    // CR0.TS: #NM
        if (i.Op0Register.IsMM() || i.Op1Register.IsMM()) Unimplemented(ref i);
    }

    /// <summary>Legacy SSE requires 16-byte alignment of 128-bit memory operands except for these.</summary>
    private static bool UnalignedOk(Mnemonic m) => m is Mnemonic.Movdqu or Mnemonic.Movups or Mnemonic.Movupd;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Vector128<ulong> Read128(ulong la)
    {
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if (e.Tag == (la >> 12) + 1 && (e.Perm & _needRead) != 0 && (la & 0xfff) <= 4096 - 16)
            return Unsafe.ReadUnaligned<Vector128<ulong>>(e.Host + (la & 0xfff));
        ulong lo = ReadMem(la, 8);
        return Vector128.Create(lo, ReadMem(la + 8, 8));
    }

    /// <summary>A 16-byte store: both pages are checked before any byte is written. (Two MMIO halves are an internal error.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Write128(ulong la, Vector128<ulong> v)
    {
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if (e.Tag == (la >> 12) + 1 && (e.Perm & _needWrite) != 0 && (la & 0xfff) <= 4096 - 16)
        {
            NoteWrite(e.Gen);
            Unsafe.WriteUnaligned(e.Host + (la & 0xfff), v);
            return;
        }
        if ((la & 0xfff) > 4096 - 16)
        {
            Translate(la, AccWrite, _cpl == 3);
            Translate(la + 15, AccWrite, _cpl == 3);
        }
        WriteMem(la, 8, v.GetElement(0));
        WriteMem(la + 8, 8, v.GetElement(1));
    }

    /// <summary>An XMM or memory source operand; a memory operand narrower than 16 bytes lands zero-extended in the low lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Vector128<ulong> XSrc(ref Instruction i, int op)
    {
        if (i.GetOpKind(op) == OpKind.Register) return X(i.GetOpRegister(op));
        ulong la = Ea(ref i);
        int size = i.MemorySize.GetSize();
        if (size == 16)
        {
            if ((la & 15) != 0 && !UnalignedOk(i.Mnemonic)) throw GuestFault.Gp(0);
            return Read128(la);
        }
        return Vector128.Create(ReadMem(la, size), 0UL);
    }

    /// <summary>Returns false when <paramref name="m"/> is not an SSE/SSE2 instruction this CPU implements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool ExecuteSse(ref Instruction i, Mnemonic m)
    {
        switch (m)
        {
            case Mnemonic.Movnti:
                WriteMem(Ea(ref i), RegSize(i.Op1Register), GetReg(i.Op1Register));
                return true;
            case Mnemonic.Clflush or Mnemonic.Clflushopt:
                Translate(Ea(ref i), AccRead, _cpl == 3); // faults as a read would; no cache to flush
                return true;

            case Mnemonic.Movdqa or Mnemonic.Movdqu or Mnemonic.Movaps or Mnemonic.Movups or Mnemonic.Movapd or Mnemonic.Movupd
                or Mnemonic.Movntdq or Mnemonic.Movntps or Mnemonic.Movntpd:
            {
                SseEnter(ref i);
                if (i.Op0Kind == OpKind.Register) { X(i.Op0Register) = XSrc(ref i, 1); return true; }
                ulong la = Ea(ref i);
                if ((la & 15) != 0 && !UnalignedOk(m)) throw GuestFault.Gp(0);
                Write128(la, X(i.Op1Register));
                return true;
            }
            case Mnemonic.Movd or Mnemonic.Movq:
            {
                SseEnter(ref i);
                int size = m == Mnemonic.Movd ? 4 : 8;
                if (i.Op0Kind == OpKind.Register && i.Op0Register.IsXMM())
                {
                    ulong v = i.Op1Kind == OpKind.Register
                        ? (i.Op1Register.IsXMM() ? X(i.Op1Register).GetElement(0) : GetReg(i.Op1Register))
                        : ReadMem(Ea(ref i), size);
                    X(i.Op0Register) = Vector128.Create(size == 4 ? (uint)v : v, 0UL);
                }
                else
                {
                    ulong v = X(i.Op1Register).GetElement(0);
                    if (i.Op0Kind == OpKind.Register) SetReg(i.Op0Register, size == 4 ? (uint)v : v);
                    else WriteMem(Ea(ref i), size, v);
                }
                return true;
            }
            case Mnemonic.Movss or Mnemonic.Movsd:
            {
                SseEnter(ref i);
                int size = m == Mnemonic.Movss ? 4 : 8;
                if (i.Op0Kind == OpKind.Memory) { WriteMem(Ea(ref i), size, X(i.Op1Register).GetElement(0)); return true; }
                ref var d = ref X(i.Op0Register);
                if (i.Op1Kind == OpKind.Memory) { d = Vector128.Create(ReadMem(Ea(ref i), size), 0UL); return true; }
                ulong s = X(i.Op1Register).GetElement(0);
                ulong lo = d.GetElement(0);
                d = d.WithElement(0, size == 4 ? (lo & ~0xffffffffUL) | (uint)s : s);
                return true;
            }
            case Mnemonic.Movlps or Mnemonic.Movlpd or Mnemonic.Movhps or Mnemonic.Movhpd:
            {
                SseEnter(ref i);
                int half = m is Mnemonic.Movhps or Mnemonic.Movhpd ? 1 : 0;
                if (i.Op0Kind == OpKind.Memory) WriteMem(Ea(ref i), 8, X(i.Op1Register).GetElement(half));
                else X(i.Op0Register) = X(i.Op0Register).WithElement(half, ReadMem(Ea(ref i), 8));
                return true;
            }
            case Mnemonic.Movhlps:
                SseEnter(ref i);
                X(i.Op0Register) = X(i.Op0Register).WithElement(0, X(i.Op1Register).GetElement(1));
                return true;
            case Mnemonic.Movlhps:
                SseEnter(ref i);
                X(i.Op0Register) = X(i.Op0Register).WithElement(1, X(i.Op1Register).GetElement(0));
                return true;
            case Mnemonic.Pmovmskb:
                SseEnter(ref i);
                SetReg(i.Op0Register, Vector128.ExtractMostSignificantBits(X(i.Op1Register).AsByte()));
                return true;
            case Mnemonic.Movmskps:
                SseEnter(ref i);
                SetReg(i.Op0Register, Vector128.ExtractMostSignificantBits(X(i.Op1Register).AsUInt32()));
                return true;
            case Mnemonic.Movmskpd:
                SseEnter(ref i);
                SetReg(i.Op0Register, Vector128.ExtractMostSignificantBits(X(i.Op1Register)));
                return true;
            case Mnemonic.Pand or Mnemonic.Andps or Mnemonic.Andpd or Mnemonic.Por or Mnemonic.Orps or Mnemonic.Orpd
                or Mnemonic.Pxor or Mnemonic.Xorps or Mnemonic.Xorpd or Mnemonic.Pandn or Mnemonic.Andnps or Mnemonic.Andnpd
                or Mnemonic.Paddb or Mnemonic.Paddw or Mnemonic.Paddd or Mnemonic.Paddq
                or Mnemonic.Psubb or Mnemonic.Psubw or Mnemonic.Psubd or Mnemonic.Psubq
                or Mnemonic.Paddsb or Mnemonic.Paddsw or Mnemonic.Paddusb or Mnemonic.Paddusw
                or Mnemonic.Psubsb or Mnemonic.Psubsw or Mnemonic.Psubusb or Mnemonic.Psubusw
                or Mnemonic.Pcmpeqb or Mnemonic.Pcmpeqw or Mnemonic.Pcmpeqd or Mnemonic.Pcmpgtb or Mnemonic.Pcmpgtw or Mnemonic.Pcmpgtd
                or Mnemonic.Pminub or Mnemonic.Pmaxub or Mnemonic.Pminsw or Mnemonic.Pmaxsw or Mnemonic.Pavgb or Mnemonic.Pavgw
                or Mnemonic.Psadbw or Mnemonic.Pmullw or Mnemonic.Pmulhw or Mnemonic.Pmulhuw or Mnemonic.Pmuludq or Mnemonic.Pmaddwd
                or Mnemonic.Punpcklbw or Mnemonic.Punpcklwd or Mnemonic.Punpckldq or Mnemonic.Punpcklqdq
                or Mnemonic.Punpckhbw or Mnemonic.Punpckhwd or Mnemonic.Punpckhdq or Mnemonic.Punpckhqdq
                or Mnemonic.Unpcklps or Mnemonic.Unpckhps or Mnemonic.Unpcklpd or Mnemonic.Unpckhpd
                or Mnemonic.Packsswb or Mnemonic.Packssdw or Mnemonic.Packuswb:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                d = IntegerOp(m, d, b);
                return true;
            }
            case Mnemonic.Psllw or Mnemonic.Pslld or Mnemonic.Psllq or Mnemonic.Psrlw or Mnemonic.Psrld or Mnemonic.Psrlq
                or Mnemonic.Psraw or Mnemonic.Psrad:
            {
                SseEnter(ref i);
                ulong count = i.Op1Kind == OpKind.Register || i.Op1Kind == OpKind.Memory ? XSrc(ref i, 1).GetElement(0) : i.GetImmediate(1);
                ref var d = ref X(i.Op0Register);
                d = Shift(m, d, count);
                return true;
            }
            case Mnemonic.Pslldq or Mnemonic.Psrldq:
            {
                SseEnter(ref i);
                int n = (int)i.GetImmediate(1);
                ref var d = ref X(i.Op0Register);
                UInt128 v = new(d.GetElement(1), d.GetElement(0));
                v = n > 15 ? UInt128.Zero : m == Mnemonic.Pslldq ? v << (8 * n) : v >> (8 * n);
                d = Vector128.Create((ulong)v, (ulong)(v >> 64));
                return true;
            }
            default:
                return ExecuteSseRare(ref i, m);
        }
    }

    /// <summary>The less frequent SSE forms (float arithmetic, conversions, shuffles), apart so the hot moves and
    /// integer operations above stay a small method.</summary>
    private bool ExecuteSseRare(ref Instruction i, Mnemonic m)
    {
        switch (m)
        {
            case Mnemonic.Maskmovdqu:
            {
                SseEnter(ref i);
                var v = X(i.Op1Register).AsByte(); // operand 0 is the implicit [rdi]
                var mask = X(i.Op2Register).AsByte();
                ulong la = _r[7] + SegBase(i.MemorySegment);
                for (int k = 0; k < 16; k++)
                    if ((mask.GetElement(k) & 0x80) != 0) WriteMem(la + (ulong)k, 1, v.GetElement(k));
                return true;
            }
            case Mnemonic.Pextrw:
            {
                SseEnter(ref i);
                if (i.Op0Kind != OpKind.Register) { Unimplemented(ref i); return true; } // the m16 form is SSE4.1
                SetReg(i.Op0Register, X(i.Op1Register).AsUInt16().GetElement((int)(i.GetImmediate(2) & 7)));
                return true;
            }
            case Mnemonic.Pinsrw:
            {
                SseEnter(ref i);
                ulong v = i.Op1Kind == OpKind.Register ? GetReg(i.Op1Register) : ReadMem(Ea(ref i), 2);
                ref var d = ref X(i.Op0Register);
                d = d.AsUInt16().WithElement((int)(i.GetImmediate(2) & 7), (ushort)v).AsUInt64();
                return true;
            }

            case Mnemonic.Pshufd or Mnemonic.Pshuflw or Mnemonic.Pshufhw:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1);
                int imm = (int)i.GetImmediate(2);
                Vector128<ulong> r;
                if (m == Mnemonic.Pshufd)
                {
                    uint* p = (uint*)&s;
                    r = Vector128.Create(p[imm & 3], p[(imm >> 2) & 3], p[(imm >> 4) & 3], p[(imm >> 6) & 3]).AsUInt64();
                }
                else
                {
                    r = s;
                    int o = m == Mnemonic.Pshuflw ? 0 : 4;
                    ushort* p = (ushort*)&s, q = (ushort*)&r;
                    for (int k = 0; k < 4; k++) q[o + k] = p[o + ((imm >> (2 * k)) & 3)];
                }
                X(i.Op0Register) = r;
                return true;
            }
            case Mnemonic.Shufps:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                var a = d;
                int imm = (int)i.GetImmediate(2);
                uint* pa = (uint*)&a, pb = (uint*)&b;
                d = Vector128.Create(pa[imm & 3], pa[(imm >> 2) & 3], pb[(imm >> 4) & 3], pb[(imm >> 6) & 3]).AsUInt64();
                return true;
            }
            case Mnemonic.Shufpd:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                int imm = (int)i.GetImmediate(2);
                d = Vector128.Create(d.GetElement(imm & 1), b.GetElement((imm >> 1) & 1));
                return true;
            }

            case Mnemonic.Addss or Mnemonic.Subss or Mnemonic.Mulss or Mnemonic.Divss or Mnemonic.Minss or Mnemonic.Maxss or Mnemonic.Sqrtss:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                var r = d.AsUInt32();
                d = r.WithElement(0, Arith32(FloatOp(m), r.GetElement(0), b.AsUInt32().GetElement(0))).AsUInt64();
                return true;
            }
            case Mnemonic.Addsd or Mnemonic.Subsd or Mnemonic.Mulsd or Mnemonic.Divsd or Mnemonic.Minsd or Mnemonic.Maxsd or Mnemonic.Sqrtsd:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                d = d.WithElement(0, Arith64(FloatOp(m), d.GetElement(0), b.GetElement(0)));
                return true;
            }
            case Mnemonic.Addps or Mnemonic.Subps or Mnemonic.Mulps or Mnemonic.Divps or Mnemonic.Minps or Mnemonic.Maxps or Mnemonic.Sqrtps:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                var a = d;
                int op = FloatOp(m);
                uint* pa = (uint*)&a, pb = (uint*)&b;
                for (int k = 0; k < 4; k++) pa[k] = Arith32(op, pa[k], pb[k]);
                d = a;
                return true;
            }
            case Mnemonic.Addpd or Mnemonic.Subpd or Mnemonic.Mulpd or Mnemonic.Divpd or Mnemonic.Minpd or Mnemonic.Maxpd or Mnemonic.Sqrtpd:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                int op = FloatOp(m);
                d = Vector128.Create(Arith64(op, d.GetElement(0), b.GetElement(0)), Arith64(op, d.GetElement(1), b.GetElement(1)));
                return true;
            }
            case Mnemonic.Cmpss or Mnemonic.Cmpps or Mnemonic.Cmpsd or Mnemonic.Cmppd:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                var a = d;
                int pred = (int)(i.GetImmediate(2) & 7);
                if (m is Mnemonic.Cmpss or Mnemonic.Cmpps)
                {
                    uint* pa = (uint*)&a, pb = (uint*)&b;
                    for (int k = 0; k < (m == Mnemonic.Cmpss ? 1 : 4); k++)
                        pa[k] = Compare(pred, BitConverter.UInt32BitsToSingle(pa[k]), BitConverter.UInt32BitsToSingle(pb[k])) ? ~0u : 0;
                }
                else
                {
                    ulong* pa = (ulong*)&a, pb = (ulong*)&b;
                    for (int k = 0; k < (m == Mnemonic.Cmpsd ? 1 : 2); k++)
                        pa[k] = Compare(pred, BitConverter.UInt64BitsToDouble(pa[k]), BitConverter.UInt64BitsToDouble(pb[k])) ? ~0UL : 0;
                }
                d = a;
                return true;
            }
            case Mnemonic.Comiss or Mnemonic.Ucomiss or Mnemonic.Comisd or Mnemonic.Ucomisd:
            {
                SseEnter(ref i);
                var b = XSrc(ref i, 1);
                var a = X(i.Op0Register);
                double x, y;
                bool snan;
                if (m is Mnemonic.Comiss or Mnemonic.Ucomiss)
                {
                    uint ua = a.AsUInt32().GetElement(0), ub = b.AsUInt32().GetElement(0);
                    x = BitConverter.UInt32BitsToSingle(ua); y = BitConverter.UInt32BitsToSingle(ub);
                    snan = IsSNaN32(ua) || IsSNaN32(ub);
                }
                else
                {
                    ulong ua = a.GetElement(0), ub = b.GetElement(0);
                    x = BitConverter.UInt64BitsToDouble(ua); y = BitConverter.UInt64BitsToDouble(ub);
                    snan = IsSNaN64(ua) || IsSNaN64(ub);
                }
                ulong f = double.IsNaN(x) || double.IsNaN(y) ? ZF | PF | CF : x < y ? CF : x == y ? ZF : 0;
                if (snan || (f == (ZF | PF | CF) && m is Mnemonic.Comiss or Mnemonic.Comisd)) _mxcsr |= MxIe;
                _rflags = (_rflags & ~ArithFlags) | f;
                return true;
            }

            case Mnemonic.Cvtsi2ss or Mnemonic.Cvtsi2sd:
            {
                SseEnter(ref i);
                int size = i.Op1Kind == OpKind.Register ? RegSize(i.Op1Register) : i.MemorySize.GetSize();
                ulong v = ReadOp(ref i, 1, size);
                long n = size == 8 ? (long)v : (int)v;
                ref var d = ref X(i.Op0Register);
                if (m == Mnemonic.Cvtsi2ss) d = d.AsUInt32().WithElement(0, BitConverter.SingleToUInt32Bits(n)).AsUInt64();
                else d = d.WithElement(0, BitConverter.DoubleToUInt64Bits(n));
                return true;
            }
            case Mnemonic.Cvttss2si or Mnemonic.Cvtss2si or Mnemonic.Cvttsd2si or Mnemonic.Cvtsd2si:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1);
                double x = m is Mnemonic.Cvttss2si or Mnemonic.Cvtss2si
                    ? BitConverter.UInt32BitsToSingle(s.AsUInt32().GetElement(0))
                    : BitConverter.UInt64BitsToDouble(s.GetElement(0));
                bool truncate = m is Mnemonic.Cvttss2si or Mnemonic.Cvttsd2si;
                SetReg(i.Op0Register, ToInteger(x, truncate, RegSize(i.Op0Register) == 8));
                return true;
            }
            case Mnemonic.Cvtss2sd:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                d = d.WithElement(0, F32ToF64(s.AsUInt32().GetElement(0)));
                return true;
            }
            case Mnemonic.Cvtsd2ss:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1);
                ref var d = ref X(i.Op0Register);
                d = d.AsUInt32().WithElement(0, F64ToF32(s.GetElement(0))).AsUInt64();
                return true;
            }
            case Mnemonic.Cvtps2pd:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1).AsUInt32();
                X(i.Op0Register) = Vector128.Create(F32ToF64(s.GetElement(0)), F32ToF64(s.GetElement(1)));
                return true;
            }
            case Mnemonic.Cvtpd2ps:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1);
                X(i.Op0Register) = Vector128.Create(F64ToF32(s.GetElement(0)), F64ToF32(s.GetElement(1)), 0u, 0u).AsUInt64();
                return true;
            }
            case Mnemonic.Cvtdq2ps:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1).AsInt32();
                X(i.Op0Register) = Vector128.Create((float)s.GetElement(0), s.GetElement(1), s.GetElement(2), s.GetElement(3)).AsUInt64();
                return true;
            }
            case Mnemonic.Cvtdq2pd:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1).AsInt32();
                X(i.Op0Register) = Vector128.Create((double)s.GetElement(0), s.GetElement(1)).AsUInt64();
                return true;
            }
            case Mnemonic.Cvtps2dq or Mnemonic.Cvttps2dq:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1).AsSingle();
                bool t = m == Mnemonic.Cvttps2dq;
                X(i.Op0Register) = Vector128.Create((uint)ToInteger(s.GetElement(0), t, false), (uint)ToInteger(s.GetElement(1), t, false),
                    (uint)ToInteger(s.GetElement(2), t, false), (uint)ToInteger(s.GetElement(3), t, false)).AsUInt64();
                return true;
            }
            case Mnemonic.Cvtpd2dq or Mnemonic.Cvttpd2dq:
            {
                SseEnter(ref i);
                var s = XSrc(ref i, 1).AsDouble();
                bool t = m == Mnemonic.Cvttpd2dq;
                X(i.Op0Register) = Vector128.Create((uint)ToInteger(s.GetElement(0), t, false), (uint)ToInteger(s.GetElement(1), t, false), 0u, 0u).AsUInt64();
                return true;
            }
            default:
                return false;
        }
    }

    /// <summary>Packed integer, logical, unpack and pack operations: <paramref name="a"/> is the destination, <paramref name="b"/> the source.</summary>
    private static Vector128<ulong> IntegerOp(Mnemonic m, Vector128<ulong> a, Vector128<ulong> b)
    {
        switch (m)
        {
            case Mnemonic.Pand or Mnemonic.Andps or Mnemonic.Andpd: return a & b;
            case Mnemonic.Por or Mnemonic.Orps or Mnemonic.Orpd: return a | b;
            case Mnemonic.Pxor or Mnemonic.Xorps or Mnemonic.Xorpd: return a ^ b;
            case Mnemonic.Pandn or Mnemonic.Andnps or Mnemonic.Andnpd: return Vector128.AndNot(b, a);
            case Mnemonic.Paddb: return (a.AsByte() + b.AsByte()).AsUInt64();
            case Mnemonic.Paddw: return (a.AsUInt16() + b.AsUInt16()).AsUInt64();
            case Mnemonic.Paddd: return (a.AsUInt32() + b.AsUInt32()).AsUInt64();
            case Mnemonic.Paddq: return a + b;
            case Mnemonic.Psubb: return (a.AsByte() - b.AsByte()).AsUInt64();
            case Mnemonic.Psubw: return (a.AsUInt16() - b.AsUInt16()).AsUInt64();
            case Mnemonic.Psubd: return (a.AsUInt32() - b.AsUInt32()).AsUInt64();
            case Mnemonic.Psubq: return a - b;
            case Mnemonic.Pcmpeqb: return Vector128.Equals(a.AsByte(), b.AsByte()).AsUInt64();
            case Mnemonic.Pcmpeqw: return Vector128.Equals(a.AsUInt16(), b.AsUInt16()).AsUInt64();
            case Mnemonic.Pcmpeqd: return Vector128.Equals(a.AsUInt32(), b.AsUInt32()).AsUInt64();
            case Mnemonic.Pcmpgtb: return Vector128.GreaterThan(a.AsSByte(), b.AsSByte()).AsUInt64();
            case Mnemonic.Pcmpgtw: return Vector128.GreaterThan(a.AsInt16(), b.AsInt16()).AsUInt64();
            case Mnemonic.Pcmpgtd: return Vector128.GreaterThan(a.AsInt32(), b.AsInt32()).AsUInt64();
            case Mnemonic.Pminub: return Vector128.Min(a.AsByte(), b.AsByte()).AsUInt64();
            case Mnemonic.Pmaxub: return Vector128.Max(a.AsByte(), b.AsByte()).AsUInt64();
            case Mnemonic.Pminsw: return Vector128.Min(a.AsInt16(), b.AsInt16()).AsUInt64();
            case Mnemonic.Pmaxsw: return Vector128.Max(a.AsInt16(), b.AsInt16()).AsUInt64();
            case Mnemonic.Pmullw: return (a.AsInt16() * b.AsInt16()).AsUInt64();
            case Mnemonic.Pmuludq: return Vector128.Create((a.GetElement(0) & 0xffffffff) * (b.GetElement(0) & 0xffffffff),
                (a.GetElement(1) & 0xffffffff) * (b.GetElement(1) & 0xffffffff));
            case Mnemonic.Punpcklqdq or Mnemonic.Unpcklpd: return Vector128.Create(a.GetElement(0), b.GetElement(0));
            case Mnemonic.Punpckhqdq or Mnemonic.Unpckhpd: return Vector128.Create(a.GetElement(1), b.GetElement(1));
            default: return IntegerOpLanes(m, a, b);
        }
    }

    /// <summary>The packed-integer operations done lane by lane (kept apart: taking the operands' addresses would keep the
    /// vector operations above from staying in registers).</summary>
    private static Vector128<ulong> IntegerOpLanes(Mnemonic m, Vector128<ulong> a, Vector128<ulong> b)
    {
        Vector128<ulong> r = default;
        byte* pa = (byte*)&a, pb = (byte*)&b, pr = (byte*)&r;
        short* wa = (short*)pa, wb = (short*)pb, wr = (short*)pr;
        int* da = (int*)pa, db = (int*)pb, dr = (int*)pr;
        switch (m)
        {
            case Mnemonic.Paddsb: for (int k = 0; k < 16; k++) pr[k] = (byte)SatS8((sbyte)pa[k] + (sbyte)pb[k]); break;
            case Mnemonic.Psubsb: for (int k = 0; k < 16; k++) pr[k] = (byte)SatS8((sbyte)pa[k] - (sbyte)pb[k]); break;
            case Mnemonic.Paddusb: for (int k = 0; k < 16; k++) pr[k] = SatU8(pa[k] + pb[k]); break;
            case Mnemonic.Psubusb: for (int k = 0; k < 16; k++) pr[k] = SatU8(pa[k] - pb[k]); break;
            case Mnemonic.Paddsw: for (int k = 0; k < 8; k++) wr[k] = SatS16(wa[k] + wb[k]); break;
            case Mnemonic.Psubsw: for (int k = 0; k < 8; k++) wr[k] = SatS16(wa[k] - wb[k]); break;
            case Mnemonic.Paddusw: for (int k = 0; k < 8; k++) wr[k] = (short)SatU16((ushort)wa[k] + (ushort)wb[k]); break;
            case Mnemonic.Psubusw: for (int k = 0; k < 8; k++) wr[k] = (short)SatU16((ushort)wa[k] - (ushort)wb[k]); break;
            case Mnemonic.Pavgb: for (int k = 0; k < 16; k++) pr[k] = (byte)((pa[k] + pb[k] + 1) >> 1); break;
            case Mnemonic.Pavgw: for (int k = 0; k < 8; k++) wr[k] = (short)(((ushort)wa[k] + (ushort)wb[k] + 1) >> 1); break;
            case Mnemonic.Pmulhw: for (int k = 0; k < 8; k++) wr[k] = (short)((wa[k] * wb[k]) >> 16); break;
            case Mnemonic.Pmulhuw: for (int k = 0; k < 8; k++) wr[k] = (short)(((ushort)wa[k] * (ushort)wb[k]) >> 16); break;
            case Mnemonic.Pmaddwd: for (int k = 0; k < 4; k++) dr[k] = (int)((uint)(wa[2 * k] * wb[2 * k]) + (uint)(wa[2 * k + 1] * wb[2 * k + 1])); break;
            case Mnemonic.Psadbw:
                for (int h = 0; h < 2; h++)
                {
                    int sum = 0;
                    for (int k = 8 * h; k < 8 * h + 8; k++) sum += Math.Abs(pa[k] - pb[k]);
                    ((ulong*)pr)[h] = (ulong)sum;
                }
                break;
            case Mnemonic.Punpcklbw: for (int k = 0; k < 8; k++) { pr[2 * k] = pa[k]; pr[2 * k + 1] = pb[k]; } break;
            case Mnemonic.Punpckhbw: for (int k = 0; k < 8; k++) { pr[2 * k] = pa[k + 8]; pr[2 * k + 1] = pb[k + 8]; } break;
            case Mnemonic.Punpcklwd: for (int k = 0; k < 4; k++) { wr[2 * k] = wa[k]; wr[2 * k + 1] = wb[k]; } break;
            case Mnemonic.Punpckhwd: for (int k = 0; k < 4; k++) { wr[2 * k] = wa[k + 4]; wr[2 * k + 1] = wb[k + 4]; } break;
            case Mnemonic.Punpckldq or Mnemonic.Unpcklps: dr[0] = da[0]; dr[1] = db[0]; dr[2] = da[1]; dr[3] = db[1]; break;
            case Mnemonic.Punpckhdq or Mnemonic.Unpckhps: dr[0] = da[2]; dr[1] = db[2]; dr[2] = da[3]; dr[3] = db[3]; break;
            case Mnemonic.Packsswb: for (int k = 0; k < 8; k++) { pr[k] = (byte)SatS8(wa[k]); pr[k + 8] = (byte)SatS8(wb[k]); } break;
            case Mnemonic.Packuswb: for (int k = 0; k < 8; k++) { pr[k] = SatU8(wa[k]); pr[k + 8] = SatU8(wb[k]); } break;
            case Mnemonic.Packssdw: for (int k = 0; k < 4; k++) { wr[k] = SatS16(da[k]); wr[k + 4] = SatS16(db[k]); } break;
            default: throw new EmuInternalError($"no packed-integer rule for {m}");
        }
        return r;

        static sbyte SatS8(int v) => (sbyte)Math.Clamp(v, sbyte.MinValue, sbyte.MaxValue);
        static byte SatU8(int v) => (byte)Math.Clamp(v, 0, 255);
        static short SatS16(int v) => (short)Math.Clamp(v, short.MinValue, short.MaxValue);
        static ushort SatU16(int v) => (ushort)Math.Clamp(v, 0, 65535);
    }

    /// <summary>PSLL/PSRL/PSRA by <paramref name="count"/>: a count at least the lane width clears the lane (fills it with the sign for PSRA).</summary>
    private static Vector128<ulong> Shift(Mnemonic m, Vector128<ulong> v, ulong count)
    {
        switch (m)
        {
            case Mnemonic.Psllw: return count > 15 ? default : Vector128.ShiftLeft(v.AsUInt16(), (int)count).AsUInt64();
            case Mnemonic.Pslld: return count > 31 ? default : Vector128.ShiftLeft(v.AsUInt32(), (int)count).AsUInt64();
            case Mnemonic.Psllq: return count > 63 ? default : Vector128.ShiftLeft(v, (int)count);
            case Mnemonic.Psrlw: return count > 15 ? default : Vector128.ShiftRightLogical(v.AsUInt16(), (int)count).AsUInt64();
            case Mnemonic.Psrld: return count > 31 ? default : Vector128.ShiftRightLogical(v.AsUInt32(), (int)count).AsUInt64();
            case Mnemonic.Psrlq: return count > 63 ? default : Vector128.ShiftRightLogical(v, (int)count);
            case Mnemonic.Psraw: return Vector128.ShiftRightArithmetic(v.AsInt16(), (int)Math.Min(count, 15)).AsUInt64();
            default: return Vector128.ShiftRightArithmetic(v.AsInt32(), (int)Math.Min(count, 31)).AsUInt64();
        }
    }

    private const int FAdd = 0, FSub = 1, FMul = 2, FDiv = 3, FMin = 4, FMax = 5, FSqrt = 6;

    private static int FloatOp(Mnemonic m) => m switch
    {
        Mnemonic.Addss or Mnemonic.Addsd or Mnemonic.Addps or Mnemonic.Addpd => FAdd,
        Mnemonic.Subss or Mnemonic.Subsd or Mnemonic.Subps or Mnemonic.Subpd => FSub,
        Mnemonic.Mulss or Mnemonic.Mulsd or Mnemonic.Mulps or Mnemonic.Mulpd => FMul,
        Mnemonic.Divss or Mnemonic.Divsd or Mnemonic.Divps or Mnemonic.Divpd => FDiv,
        Mnemonic.Minss or Mnemonic.Minsd or Mnemonic.Minps or Mnemonic.Minpd => FMin,
        Mnemonic.Maxss or Mnemonic.Maxsd or Mnemonic.Maxps or Mnemonic.Maxpd => FMax,
        _ => FSqrt,
    };

    private static bool IsSNaN32(uint f) => (f & 0x7f800000) == 0x7f800000 && (f & 0x7fffff) != 0 && (f & 0x400000) == 0;
    private static bool IsSNaN64(ulong f) => (f & 0x7ff0000000000000) == 0x7ff0000000000000 && (f & 0xfffffffffffff) != 0 && (f & 0x8000000000000) == 0;
    private const uint DefaultNaN32 = 0xffc00000;
    private const ulong DefaultNaN64 = 0xfff8000000000000;

    /// <summary>
    /// One single-precision operation on bit patterns, with x86's NaN rules (the first NaN operand, quieted, wins; an
    /// invalid operation gives the negative default NaN; MIN/MAX return the second operand on NaN or equal operands).
    /// </summary>
    private uint Arith32(int op, uint ua, uint ub)
    {
        float a = BitConverter.UInt32BitsToSingle(ua), b = BitConverter.UInt32BitsToSingle(ub);
        if (op == FMin || op == FMax)
        {
            if (float.IsNaN(a) || float.IsNaN(b)) _mxcsr |= MxIe;
            return op == FMin ? (a < b ? ua : ub) : (a > b ? ua : ub);
        }
        if (op == FSqrt) a = b;
        uint ia = op == FSqrt ? ub : ua;
        if (float.IsNaN(a) || float.IsNaN(b))
        {
            if (IsSNaN32(ia) || IsSNaN32(ub)) _mxcsr |= MxIe;
            return (float.IsNaN(a) ? ia : ub) | 0x400000;
        }
        float r = op switch { FAdd => a + b, FSub => a - b, FMul => a * b, FDiv => a / b, _ => MathF.Sqrt(b) };
        if (float.IsNaN(r)) { _mxcsr |= MxIe; return DefaultNaN32; }
        if (op == FDiv && b == 0 && float.IsFinite(a)) _mxcsr |= MxZe;
        return BitConverter.SingleToUInt32Bits(r);
    }

    /// <summary>The double-precision twin of <see cref="Arith32"/>.</summary>
    private ulong Arith64(int op, ulong ua, ulong ub)
    {
        double a = BitConverter.UInt64BitsToDouble(ua), b = BitConverter.UInt64BitsToDouble(ub);
        if (op == FMin || op == FMax)
        {
            if (double.IsNaN(a) || double.IsNaN(b)) _mxcsr |= MxIe;
            return op == FMin ? (a < b ? ua : ub) : (a > b ? ua : ub);
        }
        if (op == FSqrt) a = b;
        ulong ia = op == FSqrt ? ub : ua;
        if (double.IsNaN(a) || double.IsNaN(b))
        {
            if (IsSNaN64(ia) || IsSNaN64(ub)) _mxcsr |= MxIe;
            return (double.IsNaN(a) ? ia : ub) | 0x8000000000000;
        }
        double r = op switch { FAdd => a + b, FSub => a - b, FMul => a * b, FDiv => a / b, _ => Math.Sqrt(b) };
        if (double.IsNaN(r)) { _mxcsr |= MxIe; return DefaultNaN64; }
        if (op == FDiv && b == 0 && double.IsFinite(a)) _mxcsr |= MxZe;
        return BitConverter.DoubleToUInt64Bits(r);
    }

    /// <summary>CMPPS/CMPSS predicates 0-7: EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD (NaN makes the negated ones true).</summary>
    private static bool Compare(int pred, double a, double b) => pred switch
    {
        0 => a == b, 1 => a < b, 2 => a <= b, 3 => double.IsNaN(a) || double.IsNaN(b),
        4 => !(a == b), 5 => !(a < b), 6 => !(a <= b), _ => !double.IsNaN(a) && !double.IsNaN(b),
    };

    /// <summary>
    /// CVT(T)SS2SI/SD2SI and the packed forms: truncation, or MXCSR.RC rounding; NaN and out-of-range values give the
    /// "integer indefinite" 0x80000000 / 0x8000000000000000 (and set IE).
    /// </summary>
    private ulong ToInteger(double x, bool truncate, bool is64)
    {
        double r = truncate ? Math.Truncate(x) : ((_mxcsr >> 13) & 3) switch
        {
            0 => Math.Round(x, MidpointRounding.ToEven),
            1 => Math.Floor(x),
            2 => Math.Ceiling(x),
            _ => Math.Truncate(x),
        };
        if (is64)
        {
            if (r >= -9223372036854775808.0 && r < 9223372036854775808.0) return (ulong)(long)r;
            _mxcsr |= MxIe;
            return 0x8000000000000000;
        }
        if (r >= -2147483648.0 && r < 2147483648.0) return (uint)(int)r;
        _mxcsr |= MxIe;
        return 0x80000000;
    }

    /// <summary>Single to double: exact; a NaN keeps its sign and payload and is quieted.</summary>
    private ulong F32ToF64(uint f)
    {
        if ((f & 0x7f800000) == 0x7f800000 && (f & 0x7fffff) != 0)
        {
            if (IsSNaN32(f)) _mxcsr |= MxIe;
            return ((ulong)(f >> 31) << 63) | 0x7ff8000000000000 | ((ulong)(f & 0x7fffff) << 29);
        }
        return BitConverter.DoubleToUInt64Bits(BitConverter.UInt32BitsToSingle(f));
    }

    /// <summary>Double to single, rounded to nearest; a NaN keeps its sign and the top of its payload and is quieted.</summary>
    private uint F64ToF32(ulong d)
    {
        if ((d & 0x7ff0000000000000) == 0x7ff0000000000000 && (d & 0xfffffffffffff) != 0)
        {
            if (IsSNaN64(d)) _mxcsr |= MxIe;
            return ((uint)(d >> 63) << 31) | 0x7fc00000 | (uint)((d & 0xfffffffffffff) >> 29);
        }
        return BitConverter.SingleToUInt32Bits((float)BitConverter.UInt64BitsToDouble(d));
    }
}
