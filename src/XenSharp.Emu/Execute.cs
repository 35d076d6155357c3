using System.Runtime.CompilerServices;
using Iced.Intel;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>Instruction semantics. Faults throw before any architectural state changes; RIP advances last.</summary>
public sealed unsafe partial class EmuVcpu
{
    private const int RepChunk = 4096;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int OpSize(ref Instruction i) =>
        i.Op0Kind == OpKind.Register ? RegSize(i.Op0Register) : i.MemorySize.GetSize();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong EaNoSeg(ref Instruction i)
    {
        ulong a = i.MemoryDisplacement64;
        var b = i.MemoryBase;
        var x = i.MemoryIndex;
        if (b != Register.None)
        {
            if (b == Register.RIP) return a;
            if (b == Register.EIP) return (uint)a;
            a += _r[RegIndex[(int)b]];
        }
        if (x != Register.None) a += _r[RegIndex[(int)x]] * (ulong)i.MemoryIndexScale;
        if (RegKind[(int)b] == 4 || RegKind[(int)x] == 4) a = (uint)a;
        return a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Ea(ref Instruction i)
    {
        ulong a = EaNoSeg(ref i);
        var s = i.MemorySegment;
        if (s == Register.FS) a += _fs.Base;
        else if (s == Register.GS) a += _gs.Base;
        return a;
    }

    private ulong SegBase(Register s) => s == Register.FS ? _fs.Base : s == Register.GS ? _gs.Base : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadOp(ref Instruction i, int n, int size) => i.GetOpKind(n) switch
    {
        OpKind.Register => GetReg(i.GetOpRegister(n)),
        OpKind.Memory => ReadMem(Ea(ref i), size),
        _ => i.GetImmediate(n),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteOp0(ref Instruction i, int size, ulong v)
    {
        if (i.Op0Kind == OpKind.Register) SetReg(i.Op0Register, v);
        else WriteMem(Ea(ref i), size, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetGpr(int idx, int size, ulong v)
    {
        ulong* p = _r + idx;
        switch (size)
        {
            case 8: *p = v; break;
            case 4: *p = (uint)v; break;
            case 2: *p = (*p & ~0xffffUL) | (ushort)v; break;
            default: *p = (*p & ~0xffUL) | (byte)v; break;
        }
    }

    private static ulong Cas(byte* p, int size, ulong expect, ulong value) => size switch
    {
        1 => Interlocked.CompareExchange(ref *p, (byte)value, (byte)expect),
        2 => Interlocked.CompareExchange(ref *(ushort*)p, (ushort)value, (ushort)expect),
        4 => Interlocked.CompareExchange(ref *(uint*)p, (uint)value, (uint)expect),
        _ => Interlocked.CompareExchange(ref *(ulong*)p, value, expect),
    };

    private static ulong SignExtend(ulong v, int size) => size switch
    {
        1 => (ulong)(sbyte)v, 2 => (ulong)(short)v, 4 => (ulong)(int)v, _ => v,
    };

    private bool IoAllowed => _cpl <= (int)((_rflags >> 12) & 3);

    /// <summary>
    /// Whether IN/OUT/INS/OUTS of <paramref name="size"/> bytes at <paramref name="port"/> may run: CPL ≤ IOPL, or else
    /// every bit for those ports clear in the TSS I/O permission bitmap (bytes past the TSS limit count as set).
    /// </summary>
    private bool PortAllowed(ulong port, int size)
    {
        if (IoAllowed) return true;
        if ((_tr.Type & 0xd) != 0x9 || _tr.Limit < 0x67) return false; // a 64-bit TSS (available or busy) with an iomap base
        ulong bitmap = ReadSys(_tr.Base + 0x66, 2);
        ulong first = bitmap + port / 8, last = bitmap + (port + (ulong)size - 1) / 8;
        if (last > _tr.Limit) return false;
        ulong bits = ReadSys(_tr.Base + first, last == first ? 1 : 2);
        ulong mask = ((1UL << size) - 1) << (int)(port % 8);
        return (bits & mask) == 0;
    }

    private void RequireCpl0()
    {
        if (_cpl != 0) throw GuestFault.Gp(0);
    }

    /// <summary>Computes a read-modify-write operation on <paramref name="a"/>; sets flags as the instruction does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong Compute(Mnemonic m, ulong a, ulong b, int size)
    {
        switch (m)
        {
            case Mnemonic.Add or Mnemonic.Or or Mnemonic.Adc or Mnemonic.Sbb or Mnemonic.And or Mnemonic.Sub or Mnemonic.Xor:
                return Alu2(m, a, b, size);
            case Mnemonic.Inc or Mnemonic.Dec or Mnemonic.Neg or Mnemonic.Not:
                return Alu1(m, a, size);
            case Mnemonic.Shl or Mnemonic.Sal or Mnemonic.Shr or Mnemonic.Sar or Mnemonic.Rol or Mnemonic.Ror or Mnemonic.Rcl or Mnemonic.Rcr:
                return Shift(m, a, (int)b, size);
            case Mnemonic.Bts or Mnemonic.Btr or Mnemonic.Btc:
            {
                ulong bit = 1UL << (int)b;
                _rflags = (a & bit) != 0 ? _rflags | CF : _rflags & ~CF;
                return m == Mnemonic.Bts ? a | bit : m == Mnemonic.Btr ? a & ~bit : a ^ bit;
            }
            case Mnemonic.Xadd: return AluAdd(a, b, 0, size);
            case Mnemonic.Xchg: return b;
            default: throw new EmuInternalError($"no read-modify-write rule for {m}");
        }
    }

    /// <summary>Read-modify-write of operand 0 (register or memory), atomically when LOCK is present. Returns the old value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong Rmw(ref Instruction i, Mnemonic m, int size, ulong b, ulong la = ulong.MaxValue, bool forceLock = false)
    {
        if (i.Op0Kind == OpKind.Register)
        {
            if (i.HasLockPrefix) throw GuestFault.Ud();
            var r = i.Op0Register;
            ulong old = GetReg(r);
            SetReg(r, Compute(m, old, b, size));
            return old;
        }
        if (la == ulong.MaxValue) la = Ea(ref i);
        byte* p = TranslateWritePtr(la, size);
        if (p is null)
        {
            ulong old = ReadMem(la, size);
            WriteMem(la, size, Compute(m, old, b, size));
            return old;
        }
        if (i.HasLockPrefix || forceLock)
        {
            ulong fl = _rflags;
            while (true)
            {
                _rflags = fl;
                ulong old = Load(p, size);
                ulong r = Compute(m, old, b, size);
                if (Cas(p, size, old, r) == (old & Mask(size))) return old;
            }
        }
        ulong o = Load(p, size);
        Store(p, size, Compute(m, o, b, size));
        return o;
    }

    private void Unimplemented(ref Instruction i)
    {
        RecordUnimplemented(i.Mnemonic);
        throw GuestFault.Ud();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Execute(ref Instruction i)
    {
        ulong next = i.NextIP;
        Mnemonic m = i.Mnemonic;
        if (i.HasLockPrefix && !(m is Mnemonic.Add or Mnemonic.Adc or Mnemonic.And or Mnemonic.Btc or Mnemonic.Btr or Mnemonic.Bts
            or Mnemonic.Cmpxchg or Mnemonic.Cmpxchg8b or Mnemonic.Cmpxchg16b or Mnemonic.Dec or Mnemonic.Inc or Mnemonic.Neg
            or Mnemonic.Not or Mnemonic.Or or Mnemonic.Sbb or Mnemonic.Sub or Mnemonic.Xor or Mnemonic.Xadd or Mnemonic.Xchg)
            || (i.HasLockPrefix && i.Op0Kind != OpKind.Memory))
            throw GuestFault.Ud();
        switch (m)
        {
            case Mnemonic.Mov:
            {
                if (i.Op0Kind == OpKind.Register)
                {
                    var r0 = i.Op0Register;
                    if (RegKind[(int)r0] != 0 && (i.Op1Kind != OpKind.Register || RegKind[(int)i.Op1Register] != 0 || i.Op1Register.IsSegmentRegister()))
                    {
                        SetReg(r0, ReadOp(ref i, 1, RegSize(r0)));
                        break;
                    }
                    MovSpecial(ref i);
                    break;
                }
                int sz = i.MemorySize.GetSize();
                ulong v = ReadOp(ref i, 1, sz);
                WriteMem(Ea(ref i), sz, v);
                break;
            }
            case Mnemonic.Add or Mnemonic.Or or Mnemonic.Adc or Mnemonic.Sbb or Mnemonic.And or Mnemonic.Sub or Mnemonic.Xor:
            {
                int sz = OpSize(ref i);
                ulong b = ReadOp(ref i, 1, sz);
                if (i.Op0Kind == OpKind.Register && !i.HasLockPrefix)
                {
                    var r = i.Op0Register;
                    SetReg(r, Alu2(m, GetReg(r), b, sz));
                }
                else Rmw(ref i, m, sz, b);
                break;
            }
            case Mnemonic.Cmp or Mnemonic.Test:
            {
                int sz = OpSize(ref i);
                ulong a = ReadOp(ref i, 0, sz), b = ReadOp(ref i, 1, sz);
                Alu2(m, a, b, sz);
                break;
            }
            case Mnemonic.Inc or Mnemonic.Dec or Mnemonic.Neg or Mnemonic.Not:
                Rmw(ref i, m, OpSize(ref i), 0);
                break;
            case Mnemonic.Shl or Mnemonic.Sal or Mnemonic.Shr or Mnemonic.Sar or Mnemonic.Rol or Mnemonic.Ror or Mnemonic.Rcl or Mnemonic.Rcr:
            {
                if (i.HasLockPrefix) throw GuestFault.Ud();
                int sz = OpSize(ref i);
                ulong cnt = i.OpCount > 1 ? ReadOp(ref i, 1, 1) : 1;
                Rmw(ref i, m, sz, cnt & 0xff);
                break;
            }
            case Mnemonic.Shld or Mnemonic.Shrd:
            {
                int sz = OpSize(ref i);
                ulong b = GetReg(i.Op1Register);
                int cnt = (int)ReadOp(ref i, 2, 1);
                if (i.Op0Kind == OpKind.Register)
                    SetReg(i.Op0Register, DoubleShift(m == Mnemonic.Shld, GetReg(i.Op0Register), b, cnt, sz));
                else
                {
                    ulong la = Ea(ref i);
                    ulong a = ReadMem(la, sz);
                    WriteMem(la, sz, DoubleShift(m == Mnemonic.Shld, a, b, cnt, sz));
                }
                break;
            }
            case Mnemonic.Lea:
            {
                ulong a = EaNoSeg(ref i);
                SetReg(i.Op0Register, a);
                break;
            }
            case Mnemonic.Movzx:
            {
                int ss = i.Op1Kind == OpKind.Register ? RegSize(i.Op1Register) : i.MemorySize.GetSize();
                SetReg(i.Op0Register, ReadOp(ref i, 1, ss));
                break;
            }
            case Mnemonic.Movsx or Mnemonic.Movsxd:
            {
                int ss = i.Op1Kind == OpKind.Register ? RegSize(i.Op1Register) : i.MemorySize.GetSize();
                SetReg(i.Op0Register, SignExtend(ReadOp(ref i, 1, ss), ss));
                break;
            }
            case Mnemonic.Push:
            {
                int sz = -i.StackPointerIncrement;
                ulong v = ReadOp(ref i, 0, sz);
                ulong rsp = _r[4] - (ulong)sz;
                WriteMem(rsp, sz, v);
                _r[4] = rsp;
                break;
            }
            case Mnemonic.Pop:
            {
                int sz = i.StackPointerIncrement;
                ulong v = ReadMem(_r[4], sz);
                if (i.Op0Kind == OpKind.Register && i.Op0Register.IsSegmentRegister())
                {
                    LoadDataSegment(i.Op0Register, (ushort)v);
                    _r[4] += (ulong)sz;
                    break;
                }
                ulong old = _r[4];
                _r[4] += (ulong)sz;
                try { WriteOp0(ref i, sz, v); }
                catch (GuestFault) { _r[4] = old; throw; }
                break;
            }
            case Mnemonic.Call:
            {
                ulong target;
                if (i.Op0Kind == OpKind.NearBranch64) target = i.NearBranch64;
                else if (i.Op0Kind == OpKind.Register || i.MemorySize.GetSize() == 8) target = ReadOp(ref i, 0, 8);
                else { Unimplemented(ref i); return; }
                ulong rsp = _r[4] - 8;
                WriteMem(rsp, 8, next);
                _r[4] = rsp;
                _rip = target;
                return;
            }
            case Mnemonic.Ret:
            {
                ulong target = ReadMem(_r[4], 8);
                _r[4] += 8 + (i.OpCount > 0 ? i.Immediate16 : 0UL);
                _rip = target;
                return;
            }
            case Mnemonic.Jmp:
            {
                if (i.Op0Kind == OpKind.NearBranch64) _rip = i.NearBranch64;
                else if (i.Op0Kind == OpKind.Register || i.MemorySize.GetSize() == 8) _rip = ReadOp(ref i, 0, 8);
                else Unimplemented(ref i);
                return;
            }
            case Mnemonic.Jo or Mnemonic.Jno or Mnemonic.Jb or Mnemonic.Jae or Mnemonic.Je or Mnemonic.Jne or Mnemonic.Jbe or Mnemonic.Ja
                or Mnemonic.Js or Mnemonic.Jns or Mnemonic.Jp or Mnemonic.Jnp or Mnemonic.Jl or Mnemonic.Jge or Mnemonic.Jle or Mnemonic.Jg:
                _rip = Cond(i.ConditionCode) ? i.NearBranch64 : next;
                return;
            case Mnemonic.Seto or Mnemonic.Setno or Mnemonic.Setb or Mnemonic.Setae or Mnemonic.Sete or Mnemonic.Setne or Mnemonic.Setbe
                or Mnemonic.Seta or Mnemonic.Sets or Mnemonic.Setns or Mnemonic.Setp or Mnemonic.Setnp or Mnemonic.Setl or Mnemonic.Setge
                or Mnemonic.Setle or Mnemonic.Setg:
                WriteOp0(ref i, 1, Cond(i.ConditionCode) ? 1UL : 0);
                break;
            case Mnemonic.Cmovo or Mnemonic.Cmovno or Mnemonic.Cmovb or Mnemonic.Cmovae or Mnemonic.Cmove or Mnemonic.Cmovne
                or Mnemonic.Cmovbe or Mnemonic.Cmova or Mnemonic.Cmovs or Mnemonic.Cmovns or Mnemonic.Cmovp or Mnemonic.Cmovnp
                or Mnemonic.Cmovl or Mnemonic.Cmovge or Mnemonic.Cmovle or Mnemonic.Cmovg:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong v = ReadOp(ref i, 1, sz); // the source is read (and may fault) even when the condition is false
                SetReg(r, Cond(i.ConditionCode) ? v : GetReg(r));
                break;
            }
            case Mnemonic.Loop or Mnemonic.Loope or Mnemonic.Loopne:
            {
                ulong c = _r[1] - 1;
                _r[1] = c;
                bool take = c != 0 && (m == Mnemonic.Loop || (m == Mnemonic.Loope) == ((_rflags & ZF) != 0));
                _rip = take ? i.NearBranch64 : next;
                return;
            }
            case Mnemonic.Jrcxz: _rip = _r[1] == 0 ? i.NearBranch64 : next; return;
            case Mnemonic.Jecxz: _rip = (uint)_r[1] == 0 ? i.NearBranch64 : next; return;
            case Mnemonic.Nop or Mnemonic.Pause or Mnemonic.Endbr64 or Mnemonic.Endbr32 or Mnemonic.Lfence or Mnemonic.Sfence
                or Mnemonic.Prefetchnta or Mnemonic.Prefetcht0 or Mnemonic.Prefetcht1 or Mnemonic.Prefetcht2 or Mnemonic.Prefetchw
                or Mnemonic.Prefetch:
                break;
            case Mnemonic.Mfence:
                Interlocked.MemoryBarrier();
                break;
            case Mnemonic.Leave:
            {
                ulong v = ReadMem(_r[5], 8);
                _r[4] = _r[5] + 8;
                _r[5] = v;
                break;
            }
            case Mnemonic.Enter:
            {
                if (i.Immediate8_2nd != 0) { Unimplemented(ref i); return; }
                ulong rsp = _r[4] - 8;
                WriteMem(rsp, 8, _r[5]);
                _r[5] = rsp;
                _r[4] = rsp - i.Immediate16;
                break;
            }
            case Mnemonic.Cbw: SetGpr(0, 2, (ulong)(sbyte)_r[0]); break;
            case Mnemonic.Cwde: SetGpr(0, 4, (ulong)(short)_r[0]); break;
            case Mnemonic.Cdqe: _r[0] = (ulong)(int)_r[0]; break;
            case Mnemonic.Cwd: SetGpr(2, 2, (short)_r[0] < 0 ? 0xffffUL : 0); break;
            case Mnemonic.Cdq: SetGpr(2, 4, (int)_r[0] < 0 ? 0xffffffffUL : 0); break;
            case Mnemonic.Cqo: _r[2] = (long)_r[0] < 0 ? ulong.MaxValue : 0; break;
            case Mnemonic.Xchg:
            {
                int sz = OpSize(ref i);
                if (i.Op0Kind == OpKind.Register && i.Op1Kind == OpKind.Register)
                {
                    ulong a = GetReg(i.Op0Register), b = GetReg(i.Op1Register);
                    SetReg(i.Op0Register, b);
                    SetReg(i.Op1Register, a);
                    break;
                }
                // One operand is memory: always atomic.
                Register reg = i.Op0Kind == OpKind.Register ? i.Op0Register : i.Op1Register;
                ulong la = Ea(ref i);
                ulong nv = GetReg(reg);
                ulong old = RmwAt(ref i, Mnemonic.Xchg, sz, nv, la);
                SetReg(reg, old);
                break;
            }
            case Mnemonic.Xadd:
            {
                int sz = OpSize(ref i);
                var src = i.Op1Register;
                ulong b = GetReg(src);
                ulong old = Rmw(ref i, m, sz, b);
                SetReg(src, old);
                break;
            }
            case Mnemonic.Cmpxchg:
                Cmpxchg(ref i);
                break;
            case Mnemonic.Cmpxchg8b or Mnemonic.Cmpxchg16b:
                Cmpxchg8b16b(ref i, m == Mnemonic.Cmpxchg16b ? 16 : 8);
                break;
            case Mnemonic.Bt or Mnemonic.Bts or Mnemonic.Btr or Mnemonic.Btc:
                BitTest(ref i, m);
                break;
            case Mnemonic.Bsf or Mnemonic.Bsr or Mnemonic.Tzcnt or Mnemonic.Lzcnt or Mnemonic.Popcnt:
                BitScan(ref i, m);
                break;
            case Mnemonic.Bswap:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong v = GetReg(r);
                SetReg(r, sz == 8 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v)
                    : sz == 4 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)v) : 0);
                break;
            }
            case Mnemonic.Mul or Mnemonic.Imul:
                Multiply(ref i, m);
                break;
            case Mnemonic.Div or Mnemonic.Idiv:
                Divide(ref i, m == Mnemonic.Idiv);
                break;
            case Mnemonic.Movsb or Mnemonic.Movsw or Mnemonic.Movsq or Mnemonic.Stosb or Mnemonic.Stosw or Mnemonic.Stosd or Mnemonic.Stosq
                or Mnemonic.Lodsb or Mnemonic.Lodsw or Mnemonic.Lodsd or Mnemonic.Lodsq or Mnemonic.Cmpsb or Mnemonic.Cmpsw or Mnemonic.Cmpsq
                or Mnemonic.Scasb or Mnemonic.Scasw or Mnemonic.Scasd or Mnemonic.Scasq:
                StringOp(ref i, m, next);
                return;
            case Mnemonic.Movsd or Mnemonic.Cmpsd:
                if (i.Code is Code.Movsd_m32_m32 or Code.Cmpsd_m32_m32) { StringOp(ref i, m, next); return; }
                ExecuteSse(ref i, m);
                break;
            case Mnemonic.Pushfq or Mnemonic.Pushf:
            {
                int sz = -i.StackPointerIncrement;
                ulong rsp = _r[4] - (ulong)sz;
                WriteMem(rsp, sz, _rflags & ~(RF | VM));
                _r[4] = rsp;
                break;
            }
            case Mnemonic.Popfq or Mnemonic.Popf:
            {
                int sz = i.StackPointerIncrement;
                ulong v = ReadMem(_r[4], sz);
                ulong changeable = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID;
                if (_cpl == 0) changeable |= IOPL | IF;
                else if (IoAllowed) changeable |= IF;
                if (sz == 2) changeable &= 0xffff;
                _rflags = (_rflags & ~changeable) | (v & changeable) | 2;
                _r[4] += (ulong)sz;
                break;
            }
            case Mnemonic.Clc: _rflags &= ~CF; break;
            case Mnemonic.Stc: _rflags |= CF; break;
            case Mnemonic.Cmc: _rflags ^= CF; break;
            case Mnemonic.Cld: _rflags &= ~DF; break;
            case Mnemonic.Std: _rflags |= DF; break;
            case Mnemonic.Lahf: SetReg(Register.AH, (_rflags & (SF | ZF | AF | PF | CF)) | 2); break;
            case Mnemonic.Sahf: _rflags = (_rflags & ~(SF | ZF | AF | PF | CF)) | ((_r[0] >> 8) & (SF | ZF | AF | PF | CF)); break;
            case Mnemonic.Cli:
                if (!IoAllowed) throw GuestFault.Gp(0);
                _rflags &= ~IF;
                break;
            case Mnemonic.Sti:
                if (!IoAllowed) throw GuestFault.Gp(0);
                if ((_rflags & IF) == 0) { _rflags |= IF; _shadowAt = _retired; }
                break;
            case Mnemonic.Hlt:
                RequireCpl0();
                _rip = next;
                if ((_rflags & IF) != 0 && InterruptPending) return; // the run loop delivers it
                _exit = new VcpuExit(ExitReason.Halt);
                _exitPending = true;
                return;
            case Mnemonic.In or Mnemonic.Out:
            {
                bool isIn = m == Mnemonic.In;
                int portOp = isIn ? 1 : 0, dataOp = isIn ? 0 : 1;
                ulong port = i.GetOpKind(portOp) == OpKind.Register ? (ushort)_r[2] : i.GetImmediate(portOp);
                int sz = RegSize(i.GetOpRegister(dataOp));
                if (!PortAllowed(port, sz)) throw GuestFault.Gp(0);
                ulong data = isIn ? 0 : _r[0] & Mask(sz);
                _exit = new VcpuExit(ExitReason.Io, port, sz, !isIn, data);
                _exitPending = true;
                _ioPending = true;
                _ioIsIn = isIn;
                _ioSize = sz;
                _ioRip = _rip;
                _ioNext = next;
                _completedValue = ulong.MaxValue;
                return; // RIP stays on the instruction until the next Run completes it, as KVM does
            }
            case Mnemonic.Insb or Mnemonic.Insw or Mnemonic.Insd or Mnemonic.Outsb or Mnemonic.Outsw or Mnemonic.Outsd:
                StringIo(ref i, m, next);
                return;
            case Mnemonic.Int3:
                SoftwareInterrupt(3, next, true);
                return;
            case Mnemonic.Int:
                SoftwareInterrupt(i.Immediate8, next, true);
                return;
            case Mnemonic.Int1:
                SoftwareInterrupt(1, next, false);
                return;
            case Mnemonic.Ud0 or Mnemonic.Ud1 or Mnemonic.Ud2 or Mnemonic.INVALID:
                throw GuestFault.Ud();
            case Mnemonic.Iretq:
                Iretq();
                return;
            case Mnemonic.Retf:
            {
                int sz = i.Code is Code.Retfq or Code.Retfq_imm16 ? 8 : i.Code is Code.Retfd or Code.Retfd_imm16 ? 4 : 0;
                if (sz == 0) { Unimplemented(ref i); return; }
                FarReturn(sz, i.OpCount > 0 ? i.Immediate16 : 0UL);
                return;
            }
            case Mnemonic.Syscall:
                Syscall(next);
                return;
            case Mnemonic.Sysret or Mnemonic.Sysretq:
                Sysret(i.Code == Code.Sysretq);
                return;
            case Mnemonic.Swapgs:
            {
                RequireCpl0();
                (_gs.Base, _kernelGsBase) = (_kernelGsBase, _gs.Base);
                break;
            }
            case Mnemonic.Rdmsr:
            {
                RequireCpl0();
                if (!TryReadMsr((uint)_r[1], out ulong v)) throw GuestFault.Gp(0);
                _r[0] = (uint)v;
                _r[2] = v >> 32;
                break;
            }
            case Mnemonic.Wrmsr:
                RequireCpl0();
                if (!TryWriteMsr((uint)_r[1], ((ulong)(uint)_r[2] << 32) | (uint)_r[0])) throw GuestFault.Gp(0);
                break;
            case Mnemonic.Cpuid:
                Cpuid();
                break;
            case Mnemonic.Rdtsc or Mnemonic.Rdtscp:
            {
                if ((_cr4 & 4) != 0 && _cpl != 0) throw GuestFault.Gp(0);
                ulong t = ReadTsc();
                _r[0] = (uint)t;
                _r[2] = t >> 32;
                if (m == Mnemonic.Rdtscp) _r[1] = (uint)_tscAux;
                break;
            }
            case Mnemonic.Xgetbv:
                if ((uint)_r[1] != 0) throw GuestFault.Gp(0);
                _r[0] = 1; _r[2] = 0;
                break;
            case Mnemonic.Lgdt or Mnemonic.Lidt:
            {
                RequireCpl0();
                ulong la = Ea(ref i);
                ushort limit = (ushort)ReadMem(la, 2);
                ulong b = ReadMem(la + 2, 8);
                var t = new DescriptorTableRegister { Base = b, Limit = limit };
                if (m == Mnemonic.Lgdt) _gdt = t; else _idt = t;
                break;
            }
            case Mnemonic.Sgdt or Mnemonic.Sidt:
            {
                ulong la = Ea(ref i);
                var t = m == Mnemonic.Sgdt ? _gdt : _idt;
                WriteMem(la, 2, t.Limit);
                WriteMem(la + 2, 8, t.Base);
                break;
            }
            case Mnemonic.Ltr:
                RequireCpl0();
                Ltr((ushort)ReadOp(ref i, 0, 2));
                break;
            case Mnemonic.Lldt:
                RequireCpl0();
                Lldt((ushort)ReadOp(ref i, 0, 2));
                break;
            case Mnemonic.Str:
                WriteOp0(ref i, i.Op0Kind == OpKind.Register ? RegSize(i.Op0Register) : 2, _tr.Selector);
                break;
            case Mnemonic.Sldt:
                WriteOp0(ref i, i.Op0Kind == OpKind.Register ? RegSize(i.Op0Register) : 2, _ldt.Selector);
                break;
            case Mnemonic.Invlpg:
                RequireCpl0();
                FlushTlb(); // also covers 2 MiB / 1 GiB mappings cached as 4 KiB entries
                break;
            case Mnemonic.Wbinvd or Mnemonic.Invd:
                RequireCpl0();
                break;
            case Mnemonic.Clts:
                RequireCpl0();
                _cr0 &= ~8UL;
                break;
            case Mnemonic.Xlatb:
                SetGpr(0, 1, ReadMem(_r[3] + (byte)_r[0] + SegBase(i.MemorySegment), 1));
                break;
            default:
                if (!ExecuteSse(ref i, m) && !ExecuteFpuState(ref i, m) && !ExecuteBmi(ref i, m)) { Unimplemented(ref i); return; }
                break;
        }
        _rip = next;
    }

    /// <summary>MOV to/from segment, control and debug registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MovSpecial(ref Instruction i)
    {
        var r0 = i.Op0Register;
        if (r0.IsSegmentRegister())
        {
            if (r0 == Register.CS) throw GuestFault.Ud();
            LoadDataSegment(r0, (ushort)ReadOp(ref i, 1, 2));
            return;
        }
        if (r0.IsCR()) { RequireCpl0(); WriteCr(r0 - Register.CR0, GetReg(i.Op1Register)); return; }
        if (r0.IsDR()) { RequireCpl0(); _dr[(r0 - Register.DR0) & 7] = GetReg(i.Op1Register); return; }
        var r1 = i.Op1Register;
        if (r1.IsCR()) { RequireCpl0(); SetReg(r0, ReadCr(r1 - Register.CR0)); return; }
        if (r1.IsDR()) { RequireCpl0(); SetReg(r0, _dr[(r1 - Register.DR0) & 7]); return; }
        Unimplemented(ref i);
    }

    private ulong RmwAt(ref Instruction i, Mnemonic m, int size, ulong b, ulong la) => Rmw(ref i, m, size, b, la, forceLock: true);

    private void SoftwareInterrupt(int vector, ulong next, bool checkDpl)
    {
        if (!DeliverEvent(vector, false, 0, next, checkDpl))
        {
            _exit = new VcpuExit(ExitReason.Shutdown, Detail: "triple fault");
            _exitPending = true;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Cmpxchg(ref Instruction i)
    {
        int sz = OpSize(ref i);
        ulong src = GetReg(i.Op1Register);
        ulong acc = _r[0] & Mask(sz);
        if (i.Op0Kind == OpKind.Register)
        {
            if (i.HasLockPrefix) throw GuestFault.Ud();
            ulong d = GetReg(i.Op0Register);
            AluSub(acc, d, 0, sz);
            if (d == acc) SetReg(i.Op0Register, src);
            else SetGpr(0, sz, d);
            return;
        }
        ulong la = Ea(ref i);
        byte* p = TranslateWritePtr(la, sz);
        ulong old;
        if (p is null)
        {
            old = ReadMem(la, sz);
            if (old == acc) WriteMem(la, sz, src);
        }
        else old = Cas(p, sz, acc, src) & Mask(sz);
        AluSub(acc, old, 0, sz);
        if (old != acc) SetGpr(0, sz, old);
    }

    private void Cmpxchg8b16b(ref Instruction i, int size)
    {
        ulong la = Ea(ref i);
        if (size == 16 && (la & 15) != 0) throw GuestFault.Gp(0);
        byte* p = TranslateWritePtr(la, size);
        if (size == 8)
        {
            ulong expect = ((ulong)(uint)_r[2] << 32) | (uint)_r[0];
            ulong nv = ((ulong)(uint)_r[1] << 32) | (uint)_r[3];
            ulong old;
            if (p is null) { old = ReadMem(la, 8); if (old == expect) WriteMem(la, 8, nv); }
            else old = Interlocked.CompareExchange(ref *(ulong*)p, nv, expect);
            if (old == expect) _rflags |= ZF;
            else { _rflags &= ~ZF; _r[0] = (uint)old; _r[2] = old >> 32; }
            return;
        }
        if (p is null) throw new EmuInternalError("CMPXCHG16B on MMIO is not implemented");
        bool eq;
        ulong lo, hi;
        lock (_vm.Cas16Lock)
        {
            lo = Volatile.Read(ref *(ulong*)p);
            hi = Volatile.Read(ref *(ulong*)(p + 8));
            eq = lo == _r[0] && hi == _r[2];
            if (eq) { *(ulong*)p = _r[3]; *(ulong*)(p + 8) = _r[1]; }
        }
        if (eq) _rflags |= ZF;
        else { _rflags &= ~ZF; _r[0] = lo; _r[2] = hi; }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BitTest(ref Instruction i, Mnemonic m)
    {
        int sz = OpSize(ref i);
        int bits = sz * 8;
        ulong la = ulong.MaxValue;
        int bit;
        if (i.Op1Kind == OpKind.Register)
        {
            ulong off = GetReg(i.Op1Register);
            if (i.Op0Kind == OpKind.Memory)
            {
                long soff = (long)SignExtend(off, sz);
                la = Ea(ref i) + (ulong)((soff >> (bits == 64 ? 6 : bits == 32 ? 5 : 4)) * sz);
            }
            bit = (int)(off & (ulong)(bits - 1));
        }
        else bit = (int)(i.GetImmediate(1) & (ulong)(bits - 1));
        if (m == Mnemonic.Bt)
        {
            ulong v = i.Op0Kind == OpKind.Register ? GetReg(i.Op0Register) : ReadMem(la == ulong.MaxValue ? Ea(ref i) : la, sz);
            _rflags = ((v >> bit) & 1) != 0 ? _rflags | CF : _rflags & ~CF;
            return;
        }
        Rmw(ref i, m, sz, (ulong)bit, la);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BitScan(ref Instruction i, Mnemonic m)
    {
        var r = i.Op0Register;
        int sz = RegSize(r);
        ulong v = ReadOp(ref i, 1, sz) & Mask(sz);
        int bits = sz * 8;
        switch (m)
        {
            case Mnemonic.Bsf or Mnemonic.Bsr:
                if (v == 0) { _rflags |= ZF; return; } // destination unchanged, as AMD documents and Intel does
                _rflags &= ~ZF;
                SetReg(r, m == Mnemonic.Bsf ? (ulong)System.Numerics.BitOperations.TrailingZeroCount(v) : (ulong)(63 - System.Numerics.BitOperations.LeadingZeroCount(v)));
                return;
            case Mnemonic.Tzcnt or Mnemonic.Lzcnt:
            {
                ulong n = m == Mnemonic.Tzcnt
                    ? (v == 0 ? (ulong)bits : (ulong)System.Numerics.BitOperations.TrailingZeroCount(v))
                    : (ulong)(System.Numerics.BitOperations.LeadingZeroCount(v) - (64 - bits));
                _rflags = (_rflags & ~(CF | ZF)) | (v == 0 ? CF : 0) | (n == 0 ? ZF : 0);
                SetReg(r, n);
                return;
            }
            default:
            {
                ulong n = (ulong)System.Numerics.BitOperations.PopCount(v);
                _rflags = (_rflags & ~ArithFlags) | (v == 0 ? ZF : 0);
                SetReg(r, n);
                return;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Multiply(ref Instruction i, Mnemonic m)
    {
        bool signed = m == Mnemonic.Imul;
        if (i.OpCount == 1)
        {
            int sz = OpSize(ref i);
            ulong src = ReadOp(ref i, 0, sz);
            ulong a = _r[0] & Mask(sz);
            bool overflow;
            switch (sz)
            {
                case 1:
                {
                    ulong p = signed ? (ulong)((sbyte)a * (sbyte)src) : a * (byte)src;
                    SetGpr(0, 2, p);
                    overflow = signed ? (short)(ushort)p != (sbyte)(byte)p : (p & 0xff00) != 0;
                    break;
                }
                case 2:
                {
                    ulong p = signed ? (ulong)((short)a * (short)src) : a * (ushort)src;
                    SetGpr(0, 2, p);
                    SetGpr(2, 2, p >> 16);
                    overflow = signed ? (int)(uint)p != (short)p : (p >> 16 & 0xffff) != 0;
                    break;
                }
                case 4:
                {
                    ulong p = signed ? (ulong)((long)(int)a * (int)src) : a * (uint)src;
                    _r[0] = (uint)p;
                    _r[2] = p >> 32;
                    overflow = signed ? (long)p != (int)p : (p >> 32) != 0;
                    break;
                }
                default:
                {
                    if (signed)
                    {
                        long hi = Math.BigMul((long)a, (long)src, out long lo);
                        _r[0] = (ulong)lo; _r[2] = (ulong)hi;
                        overflow = hi != (lo >> 63);
                    }
                    else
                    {
                        ulong hi = Math.BigMul(a, src, out ulong lo);
                        _r[0] = lo; _r[2] = hi;
                        overflow = hi != 0;
                    }
                    break;
                }
            }
            _rflags = overflow ? _rflags | CF | OF : _rflags & ~(CF | OF);
            return;
        }
        {
            var r = i.Op0Register;
            int sz = RegSize(r);
            ulong a, b;
            if (i.OpCount == 2) { a = GetReg(r); b = ReadOp(ref i, 1, sz); }
            else { a = ReadOp(ref i, 1, sz); b = i.GetImmediate(2); }
            long sa = (long)SignExtend(a & Mask(sz), sz), sb = (long)SignExtend(b & Mask(sz), sz);
            ulong res;
            bool overflow;
            if (sz == 8)
            {
                long hi = Math.BigMul(sa, sb, out long lo);
                res = (ulong)lo;
                overflow = hi != (lo >> 63);
            }
            else
            {
                long p = sa * sb;
                res = (ulong)p & Mask(sz);
                overflow = (long)SignExtend(res, sz) != p;
            }
            SetReg(r, res);
            _rflags = overflow ? _rflags | CF | OF : _rflags & ~(CF | OF);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Divide(ref Instruction i, bool signed)
    {
        int sz = OpSize(ref i);
        ulong d = ReadOp(ref i, 0, sz) & Mask(sz);
        if (d == 0) throw GuestFault.De();
        switch (sz)
        {
            case 1:
            {
                ulong n = _r[0] & 0xffff;
                if (signed)
                {
                    long q = (short)n / (sbyte)d, rem = (short)n % (sbyte)d;
                    if (q > sbyte.MaxValue || q < sbyte.MinValue) throw GuestFault.De();
                    SetGpr(0, 2, ((ulong)(byte)rem << 8) | (byte)q);
                }
                else
                {
                    ulong q = n / d, rem = n % d;
                    if (q > 0xff) throw GuestFault.De();
                    SetGpr(0, 2, (rem << 8) | q);
                }
                return;
            }
            case 2:
            case 4:
            {
                int bits = sz * 8;
                ulong n = ((_r[2] & Mask(sz)) << bits) | (_r[0] & Mask(sz));
                ulong q, rem;
                if (signed)
                {
                    long sn = sz == 2 ? (int)(uint)n : (long)n;
                    long sd = (long)SignExtend(d, sz);
                    if (sn == long.MinValue && sd == -1) throw GuestFault.De();
                    long sq = sn / sd, sr = sn % sd;
                    if (sq != (long)SignExtend((ulong)sq & Mask(sz), sz)) throw GuestFault.De();
                    q = (ulong)sq; rem = (ulong)sr;
                }
                else
                {
                    q = n / d; rem = n % d;
                    if (q > Mask(sz)) throw GuestFault.De();
                }
                SetGpr(0, sz, q);
                SetGpr(2, sz, rem);
                return;
            }
            default:
            {
                if (signed)
                {
                    Int128 n = (Int128)(((UInt128)_r[2] << 64) | _r[0]);
                    Int128 sd = (long)d;
                    if (sd == -1 && n == Int128.MinValue) throw GuestFault.De();
                    Int128 q = n / sd, rem = n % sd;
                    if (q > long.MaxValue || q < long.MinValue) throw GuestFault.De();
                    _r[0] = (ulong)(long)q; _r[2] = (ulong)(long)rem;
                }
                else
                {
                    UInt128 n = ((UInt128)_r[2] << 64) | _r[0];
                    UInt128 q = n / d, rem = n % d;
                    if (q > ulong.MaxValue) throw GuestFault.De();
                    _r[0] = (ulong)q; _r[2] = (ulong)rem;
                }
                return;
            }
        }
    }
}
