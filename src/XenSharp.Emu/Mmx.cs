using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>
/// MMX and the MMX forms SSE/SSE2 added (PSHUFW, PMOVMSKB, PAVG, PMINUB..., PMULUDQ, MOVQ2DQ). Part of the x86-64
/// baseline: glibc refuses to start a binary marked "x86-64-baseline" on a CPU whose CPUID lacks MMX. MM0-7 live where
/// FXSAVE keeps them, in the mantissas of the x87 registers (<see cref="_fx"/> bytes 32 + 16n); as on hardware an MMX
/// instruction sets TOS to 0 and tags every register valid, a write sets the register's exponent to all ones, and
/// EMMS tags them all empty. The packed operations are the 128-bit ones of Sse.cs on the low lane.
/// Not implemented (#UD, listed): the MMX/float conversions CVTPI2PS/CVTPS2PI/CVTTPS2PI/CVTPI2PD/CVTPD2PI/CVTTPD2PI.
/// </summary>
public sealed unsafe partial class EmuVcpu
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ulong Mm(Register r) => ref Unsafe.As<byte, ulong>(ref _fx[32 + 16 * (r - Register.MM0)]);

    private void SetMm(Register r, ulong v)
    {
        int o = 32 + 16 * (r - Register.MM0);
        Unsafe.As<byte, ulong>(ref _fx[o]) = v;
        _fx[o + 8] = 0xff;
        _fx[o + 9] = 0xff;
    }

    /// <summary>#UD when CR0.EM is set (or, for the forms with an XMM operand, CR4.OSFXSR is clear), #NM when CR0.TS is set; then the x87 stack enters MMX state.</summary>
    private void MmxEnter(bool xmmOperand = false)
    {
        if ((_cr0 & 4) != 0 || (xmmOperand && (_cr4 & XenSharp.Accel.X86.Cr4Osfxsr) == 0)) throw GuestFault.Ud();
        if ((_cr0 & 8) != 0) throw new GuestFault(7, 0, false);
        int top = X87Top;
        if (top != 0)
        {
            // The image keeps ST(i), MMn is physical register n: with TOP = 0 they coincide, so rotate the slots.
            var st = _fx.AsSpan(32, 128).ToArray();
            for (int n = 0; n < 8; n++) st.AsSpan(16 * ((n - top) & 7), 16).CopyTo(_fx.AsSpan(32 + 16 * n));
            _fx[3] &= 0xc7; // FSW.TOP = 0
        }
        _fx[4] = 0xff; // abridged tag word: all valid
    }

    /// <summary>An MM register or a memory operand (zero-extended from its size: m64, or m32 for PUNPCKL*).</summary>
    private ulong MSrc(ref Instruction i, int op) =>
        i.GetOpKind(op) == OpKind.Register ? Mm(i.GetOpRegister(op)) : ReadMem(Ea(ref i), i.MemorySize.GetSize());

    /// <summary>Returns false when <paramref name="m"/> (an instruction with an MM operand, or EMMS) is not implemented.</summary>
    private bool ExecuteMmx(ref Instruction i, Mnemonic m)
    {
        switch (m)
        {
            case Mnemonic.Emms:
                if ((_cr0 & 4) != 0) throw GuestFault.Ud();
                if ((_cr0 & 8) != 0) throw new GuestFault(7, 0, false);
                _fx[4] = 0; // all empty
                return true;
            case Mnemonic.Movd or Mnemonic.Movq:
            {
                MmxEnter();
                int size = m == Mnemonic.Movd ? 4 : 8;
                if (i.Op0Kind == OpKind.Register && i.Op0Register.IsMM())
                {
                    ulong v = i.Op1Kind == OpKind.Register
                        ? (i.Op1Register.IsMM() ? Mm(i.Op1Register) : GetReg(i.Op1Register))
                        : ReadMem(Ea(ref i), size);
                    SetMm(i.Op0Register, size == 4 ? (uint)v : v);
                }
                else
                {
                    ulong v = Mm(i.Op1Register);
                    if (i.Op0Kind == OpKind.Register) SetReg(i.Op0Register, size == 4 ? (uint)v : v);
                    else WriteMem(Ea(ref i), size, v);
                }
                return true;
            }
            case Mnemonic.Movq2dq:
                MmxEnter(xmmOperand: true);
                X(i.Op0Register) = Vector128.Create(Mm(i.Op1Register), 0UL);
                return true;
            case Mnemonic.Movdq2q:
                MmxEnter(xmmOperand: true);
                SetMm(i.Op0Register, X(i.Op1Register).GetElement(0));
                return true;
            case Mnemonic.Movntq:
                MmxEnter();
                WriteMem(Ea(ref i), 8, Mm(i.Op1Register));
                return true;
            case Mnemonic.Pmovmskb:
                MmxEnter();
                SetReg(i.Op0Register, Vector128.ExtractMostSignificantBits(Vector128.Create(Mm(i.Op1Register), 0UL).AsByte()));
                return true;
            case Mnemonic.Pextrw:
                MmxEnter();
                SetReg(i.Op0Register, (Mm(i.Op1Register) >> (16 * (int)(i.GetImmediate(2) & 3))) & 0xffff);
                return true;
            case Mnemonic.Pinsrw:
            {
                MmxEnter();
                ulong v = i.Op1Kind == OpKind.Register ? GetReg(i.Op1Register) : ReadMem(Ea(ref i), 2);
                int sh = 16 * (int)(i.GetImmediate(2) & 3);
                SetMm(i.Op0Register, (Mm(i.Op0Register) & ~(0xffffUL << sh)) | ((v & 0xffff) << sh));
                return true;
            }
            case Mnemonic.Pshufw:
            {
                MmxEnter();
                ulong s = MSrc(ref i, 1), r = 0;
                int imm = (int)i.GetImmediate(2);
                for (int k = 0; k < 4; k++) r |= ((s >> (16 * ((imm >> (2 * k)) & 3))) & 0xffff) << (16 * k);
                SetMm(i.Op0Register, r);
                return true;
            }
            case Mnemonic.Maskmovq:
            {
                MmxEnter();
                ulong v = Mm(i.Op1Register), mask = Mm(i.Op2Register); // operand 0 is the implicit [rdi]
                ulong la = _r[7] + SegBase(i.MemorySegment);
                for (int k = 0; k < 8; k++)
                    if (((mask >> (8 * k + 7)) & 1) != 0) WriteMem(la + (ulong)k, 1, (v >> (8 * k)) & 0xff);
                return true;
            }
            case Mnemonic.Psllw or Mnemonic.Pslld or Mnemonic.Psllq or Mnemonic.Psrlw or Mnemonic.Psrld or Mnemonic.Psrlq
                or Mnemonic.Psraw or Mnemonic.Psrad:
            {
                MmxEnter();
                ulong count = i.Op1Kind is OpKind.Register or OpKind.Memory ? MSrc(ref i, 1) : i.GetImmediate(1);
                SetMm(i.Op0Register, Shift(m, Vector128.Create(Mm(i.Op0Register), 0UL), count).GetElement(0));
                return true;
            }
            case Mnemonic.Punpckhbw or Mnemonic.Punpckhwd or Mnemonic.Punpckhdq:
            {
                // The high halves interleaved are the low-half interleave of the operands shifted down.
                MmxEnter();
                ulong b = MSrc(ref i, 1) >> 32, a = Mm(i.Op0Register) >> 32;
                var low = m switch { Mnemonic.Punpckhbw => Mnemonic.Punpcklbw, Mnemonic.Punpckhwd => Mnemonic.Punpcklwd, _ => Mnemonic.Punpckldq };
                SetMm(i.Op0Register, IntegerOp(low, Vector128.Create(a, 0UL), Vector128.Create(b, 0UL)).GetElement(0));
                return true;
            }
            case Mnemonic.Packsswb or Mnemonic.Packssdw or Mnemonic.Packuswb:
            {
                // The 128-bit pack of (a, b) keeps the saturated a then b in its low half.
                MmxEnter();
                ulong b = MSrc(ref i, 1);
                SetMm(i.Op0Register, IntegerOp(m, Vector128.Create(Mm(i.Op0Register), b), default).GetElement(0));
                return true;
            }
            case Mnemonic.Paddb or Mnemonic.Paddw or Mnemonic.Paddd or Mnemonic.Paddq or Mnemonic.Psubb or Mnemonic.Psubw
                or Mnemonic.Psubd or Mnemonic.Psubq or Mnemonic.Paddsb or Mnemonic.Paddsw or Mnemonic.Paddusb or Mnemonic.Paddusw
                or Mnemonic.Psubsb or Mnemonic.Psubsw or Mnemonic.Psubusb or Mnemonic.Psubusw
                or Mnemonic.Pcmpeqb or Mnemonic.Pcmpeqw or Mnemonic.Pcmpeqd or Mnemonic.Pcmpgtb or Mnemonic.Pcmpgtw or Mnemonic.Pcmpgtd
                or Mnemonic.Pand or Mnemonic.Pandn or Mnemonic.Por or Mnemonic.Pxor
                or Mnemonic.Pmullw or Mnemonic.Pmulhw or Mnemonic.Pmulhuw or Mnemonic.Pmuludq or Mnemonic.Pmaddwd
                or Mnemonic.Pavgb or Mnemonic.Pavgw or Mnemonic.Pminub or Mnemonic.Pmaxub or Mnemonic.Pminsw or Mnemonic.Pmaxsw
                or Mnemonic.Psadbw or Mnemonic.Punpcklbw or Mnemonic.Punpcklwd or Mnemonic.Punpckldq:
            {
                MmxEnter();
                ulong b = MSrc(ref i, 1);
                SetMm(i.Op0Register, IntegerOp(m, Vector128.Create(Mm(i.Op0Register), 0UL), Vector128.Create(b, 0UL)).GetElement(0));
                return true;
            }
            default:
                return false;
        }
    }
}
