using System.Runtime.CompilerServices;
using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>
/// Pre-classified forms of the most frequent instructions (register/immediate ALU, simple loads and stores, branches,
/// push/pop, call/ret, lea), executed without going back to Iced's operand accessors. Everything else takes the
/// general path in Execute.cs with the same semantics.
/// </summary>
public sealed unsafe partial class EmuVcpu
{
    private enum FastOp : byte
    {
        Generic, AluRR, AluRI, MovRR, MovRI, MovRM, MovMR, MovMI, IncR, DecR, Jcc, Jmp, Call, Ret, PushR, PopR, Lea, Nop, AluRM, MovzxRM, MovzxRR, Sse, Mmx,
    }

    private const byte NoReg = 0xff;

    private struct Decoded
    {
        public Instruction I;
        public ulong Next, Imm, Disp;
        public FastOp Op;
        public byte Size, R0, R1, Alu, Cc, Base, Index, Shift, SrcSize;
    }

    private static int AluCode(Mnemonic m) => m switch
    {
        Mnemonic.Add => 0, Mnemonic.Or => 1, Mnemonic.Adc => 2, Mnemonic.Sbb => 3, Mnemonic.And => 4, Mnemonic.Sub => 5,
        Mnemonic.Xor => 6, Mnemonic.Cmp => 7, Mnemonic.Test => 8, _ => -1,
    };

    private static bool IsPlainGpr(Register r) => RegKind[(int)r] is 1 or 2 or 4 or 8;

    /// <summary>A memory operand of the form [base + index*scale + disp] or [rip + disp] with 64-bit addressing and no FS/GS.</summary>
    private static bool SimpleMem(ref Decoded d)
    {
        ref var i = ref d.I;
        var seg = i.MemorySegment;
        if (seg == Register.FS || seg == Register.GS) return false;
        var b = i.MemoryBase;
        var x = i.MemoryIndex;
        if (b == Register.RIP) d.Base = NoReg;
        else if (b == Register.None) d.Base = NoReg;
        else if (RegKind[(int)b] == 8) d.Base = RegIndex[(int)b];
        else return false;
        if (x == Register.None) d.Index = NoReg;
        else if (RegKind[(int)x] == 8) d.Index = RegIndex[(int)x];
        else return false;
        d.Shift = (byte)System.Numerics.BitOperations.TrailingZeroCount((uint)i.MemoryIndexScale);
        d.Disp = i.MemoryDisplacement64;
        return true;
    }

    private static void Classify(ref Decoded d)
    {
        ref var i = ref d.I;
        d.Next = i.NextIP;
        d.Op = FastOp.Generic;
        if (i.HasLockPrefix) return;
        if (i.Encoding == EncodingKind.Legacy)
        {
            // Straight to Sse.cs / Mmx.cs, past the general switch.
            var v = VectorOperands(ref i);
            if (v == 2 || i.Mnemonic == Mnemonic.Emms) { d.Op = FastOp.Mmx; return; }
            if (v == 1) { d.Op = FastOp.Sse; return; }
        }
        if (i.HasRepPrefix || i.HasRepnePrefix) return;
        var m = i.Mnemonic;
        int alu = AluCode(m);
        var k0 = i.OpCount > 0 ? i.Op0Kind : OpKind.Register;
        var k1 = i.OpCount > 1 ? i.Op1Kind : OpKind.Register;
        if (alu >= 0 && i.OpCount == 2 && k0 == OpKind.Register && IsPlainGpr(i.Op0Register))
        {
            d.Alu = (byte)alu;
            d.R0 = RegIndex[(int)i.Op0Register];
            d.Size = (byte)RegSize(i.Op0Register);
            if (k1 == OpKind.Register && IsPlainGpr(i.Op1Register)) { d.R1 = RegIndex[(int)i.Op1Register]; d.Op = FastOp.AluRR; }
            else if (k1 is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8to16 or OpKind.Immediate8to32
                or OpKind.Immediate8to64 or OpKind.Immediate32to64) { d.Imm = i.GetImmediate(1); d.Op = FastOp.AluRI; }
            else if (k1 == OpKind.Memory && SimpleMem(ref d)) d.Op = FastOp.AluRM;
            return;
        }
        switch (m)
        {
            case Mnemonic.Mov:
                if (k0 == OpKind.Register && IsPlainGpr(i.Op0Register))
                {
                    d.R0 = RegIndex[(int)i.Op0Register];
                    d.Size = (byte)RegSize(i.Op0Register);
                    if (k1 == OpKind.Register && IsPlainGpr(i.Op1Register)) { d.R1 = RegIndex[(int)i.Op1Register]; d.Op = FastOp.MovRR; }
                    else if (k1 == OpKind.Memory) { if (SimpleMem(ref d)) d.Op = FastOp.MovRM; }
                    else if (k1 != OpKind.Register) { d.Imm = i.GetImmediate(1); d.Op = FastOp.MovRI; }
                }
                else if (k0 == OpKind.Memory && SimpleMem(ref d))
                {
                    d.Size = (byte)i.MemorySize.GetSize();
                    if (k1 == OpKind.Register && IsPlainGpr(i.Op1Register)) { d.R1 = RegIndex[(int)i.Op1Register]; d.Op = FastOp.MovMR; }
                    else if (k1 != OpKind.Register) { d.Imm = i.GetImmediate(1); d.Op = FastOp.MovMI; }
                }
                return;
            case Mnemonic.Movzx:
                if (IsPlainGpr(i.Op0Register))
                {
                    d.R0 = RegIndex[(int)i.Op0Register];
                    d.Size = (byte)RegSize(i.Op0Register);
                    if (k1 == OpKind.Memory) { d.SrcSize = (byte)i.MemorySize.GetSize(); if (SimpleMem(ref d)) d.Op = FastOp.MovzxRM; }
                    else if (IsPlainGpr(i.Op1Register)) { d.SrcSize = (byte)RegSize(i.Op1Register); d.R1 = RegIndex[(int)i.Op1Register]; d.Op = FastOp.MovzxRR; }
                }
                return;
            case Mnemonic.Inc or Mnemonic.Dec:
                if (k0 == OpKind.Register && IsPlainGpr(i.Op0Register))
                {
                    d.R0 = RegIndex[(int)i.Op0Register];
                    d.Size = (byte)RegSize(i.Op0Register);
                    d.Op = m == Mnemonic.Inc ? FastOp.IncR : FastOp.DecR;
                }
                return;
            case Mnemonic.Jo or Mnemonic.Jno or Mnemonic.Jb or Mnemonic.Jae or Mnemonic.Je or Mnemonic.Jne or Mnemonic.Jbe or Mnemonic.Ja
                or Mnemonic.Js or Mnemonic.Jns or Mnemonic.Jp or Mnemonic.Jnp or Mnemonic.Jl or Mnemonic.Jge or Mnemonic.Jle or Mnemonic.Jg:
                d.Imm = i.NearBranch64;
                d.Cc = (byte)i.ConditionCode;
                d.Op = FastOp.Jcc;
                return;
            case Mnemonic.Jmp when k0 == OpKind.NearBranch64:
                d.Imm = i.NearBranch64;
                d.Op = FastOp.Jmp;
                return;
            case Mnemonic.Call when k0 == OpKind.NearBranch64:
                d.Imm = i.NearBranch64;
                d.Op = FastOp.Call;
                return;
            case Mnemonic.Ret when i.OpCount == 0:
                d.Op = FastOp.Ret;
                return;
            case Mnemonic.Push when k0 == OpKind.Register && RegKind[(int)i.Op0Register] == 8:
                d.R0 = RegIndex[(int)i.Op0Register];
                d.Op = FastOp.PushR;
                return;
            case Mnemonic.Pop when k0 == OpKind.Register && RegKind[(int)i.Op0Register] == 8:
                d.R0 = RegIndex[(int)i.Op0Register];
                d.Op = FastOp.PopR;
                return;
            case Mnemonic.Lea when IsPlainGpr(i.Op0Register) && RegKind[(int)i.Op0Register] != 1:
                if (SimpleMem(ref d))
                {
                    d.R0 = RegIndex[(int)i.Op0Register];
                    d.Size = (byte)RegSize(i.Op0Register);
                    d.Op = FastOp.Lea;
                }
                return;
            case Mnemonic.Nop or Mnemonic.Pause or Mnemonic.Endbr64:
                d.Op = FastOp.Nop;
                return;
        }
    }

    /// <summary>2 when an operand is an MM register, else 1 when one is an XMM register, else 0.</summary>
    private static int VectorOperands(ref Instruction i)
    {
        int v = 0;
        for (int k = 0; k < i.OpCount; k++)
        {
            if (i.GetOpKind(k) != OpKind.Register) continue;
            var r = i.GetOpRegister(k);
            if (r.IsMM()) return 2;
            if (r.IsXMM()) v = 1;
        }
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastEa(ref Decoded d)
    {
        ulong a = d.Disp;
        if (d.Base != NoReg) a += _r[d.Base];
        if (d.Index != NoReg) a += _r[d.Index] << d.Shift;
        return a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastAlu(int op, ulong a, ulong b, int size) => op switch
    {
        0 => AluAdd(a, b, 0, size),
        1 => AluLogic(a | b, size),
        2 => AluAdd(a, b, _rflags & CF, size),
        3 => AluSub(a, b, _rflags & CF, size),
        4 or 8 => AluLogic(a & b, size),
        5 or 7 => AluSub(a, b, 0, size),
        _ => AluLogic(a ^ b, size),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool CondCode(byte cc) => Cond((ConditionCode)cc);

    /// <summary>Executes one pre-classified instruction; returns false when it must take the general path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ExecuteDecoded(ref Decoded d)
    {
        switch (d.Op)
        {
            case FastOp.AluRR:
            {
                ulong r = FastAlu(d.Alu, _r[d.R0], _r[d.R1], d.Size);
                if (d.Alu < 7) SetGpr(d.R0, d.Size, r);
                _rip = d.Next;
                return;
            }
            case FastOp.AluRI:
            {
                ulong r = FastAlu(d.Alu, _r[d.R0], d.Imm, d.Size);
                if (d.Alu < 7) SetGpr(d.R0, d.Size, r);
                _rip = d.Next;
                return;
            }
            case FastOp.AluRM:
            {
                ulong b = ReadMem(FastEa(ref d), d.Size);
                ulong r = FastAlu(d.Alu, _r[d.R0], b, d.Size);
                if (d.Alu < 7) SetGpr(d.R0, d.Size, r);
                _rip = d.Next;
                return;
            }
            case FastOp.MovRR: SetGpr(d.R0, d.Size, _r[d.R1]); _rip = d.Next; return;
            case FastOp.MovRI: SetGpr(d.R0, d.Size, d.Imm); _rip = d.Next; return;
            case FastOp.MovRM: SetGpr(d.R0, d.Size, ReadMem(FastEa(ref d), d.Size)); _rip = d.Next; return;
            case FastOp.MovMR: WriteMem(FastEa(ref d), d.Size, _r[d.R1]); _rip = d.Next; return;
            case FastOp.MovMI: WriteMem(FastEa(ref d), d.Size, d.Imm); _rip = d.Next; return;
            case FastOp.MovzxRM: SetGpr(d.R0, d.Size, ReadMem(FastEa(ref d), d.SrcSize)); _rip = d.Next; return;
            case FastOp.MovzxRR: SetGpr(d.R0, d.Size, _r[d.R1] & Mask(d.SrcSize)); _rip = d.Next; return;
            case FastOp.IncR:
            {
                ulong cf = _rflags & CF;
                ulong r = AluAdd(_r[d.R0], 1, 0, d.Size);
                _rflags = (_rflags & ~CF) | cf;
                SetGpr(d.R0, d.Size, r);
                _rip = d.Next;
                return;
            }
            case FastOp.DecR:
            {
                ulong cf = _rflags & CF;
                ulong r = AluSub(_r[d.R0], 1, 0, d.Size);
                _rflags = (_rflags & ~CF) | cf;
                SetGpr(d.R0, d.Size, r);
                _rip = d.Next;
                return;
            }
            case FastOp.Jcc: _rip = CondCode(d.Cc) ? d.Imm : d.Next; return;
            case FastOp.Jmp: _rip = d.Imm; return;
            case FastOp.Call:
            {
                ulong rsp = _r[4] - 8;
                WriteMem(rsp, 8, d.Next);
                _r[4] = rsp;
                _rip = d.Imm;
                return;
            }
            case FastOp.Ret:
            {
                ulong t = ReadMem(_r[4], 8);
                _r[4] += 8;
                _rip = t;
                return;
            }
            case FastOp.PushR:
            {
                ulong v = _r[d.R0], rsp = _r[4] - 8;
                WriteMem(rsp, 8, v);
                _r[4] = rsp;
                _rip = d.Next;
                return;
            }
            case FastOp.PopR:
            {
                ulong v = ReadMem(_r[4], 8);
                _r[4] += 8;
                _r[d.R0] = v;
                _rip = d.Next;
                return;
            }
            case FastOp.Lea: SetGpr(d.R0, d.Size, FastEa(ref d)); _rip = d.Next; return;
            case FastOp.Nop: _rip = d.Next; return;
            case FastOp.Mmx:
                if (!ExecuteMmx(ref d.I, d.I.Mnemonic)) Unimplemented(ref d.I);
                _rip = d.Next;
                return;
            case FastOp.Sse:
                // Every legacy-encoded instruction with an XMM operand is Sse.cs's (or unimplemented).
                if (!ExecuteSse(ref d.I, d.I.Mnemonic)) Unimplemented(ref d.I);
                _rip = d.Next;
                return;
            default: Execute(ref d.I); return;
        }
    }
}
