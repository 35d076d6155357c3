using System.Runtime.CompilerServices;
using XenSharp.Accel;
using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>
/// MOVS/STOS/LODS/CMPS/SCAS with REP/REPE/REPNE. A REP instruction runs at most <see cref="RepChunk"/> elements per
/// step and leaves RIP on itself until RCX reaches zero, so interrupts, kicks and MMIO exits fall between elements
/// exactly as on hardware.
/// </summary>
public sealed unsafe partial class EmuVcpu
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private byte* TranslateReadPtr(ulong la, int size)
    {
        if ((la & 0xfff) > (ulong)(4096 - size)) return null;
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if (e.Tag == (la >> 12) + 1 && (e.Perm & _needRead) != 0) return e.Host + (la & 0xfff);
        var t = Translate(la, AccRead, _cpl == 3);
        return t.Host is null ? null : t.Host + (la & 0xfff);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void StringOp(ref Instruction i, Mnemonic m, ulong next)
    {
        int kind, sz;
        switch (m)
        {
            case Mnemonic.Movsb: kind = 0; sz = 1; break;
            case Mnemonic.Movsw: kind = 0; sz = 2; break;
            case Mnemonic.Movsd: kind = 0; sz = 4; break;
            case Mnemonic.Movsq: kind = 0; sz = 8; break;
            case Mnemonic.Stosb: kind = 1; sz = 1; break;
            case Mnemonic.Stosw: kind = 1; sz = 2; break;
            case Mnemonic.Stosd: kind = 1; sz = 4; break;
            case Mnemonic.Stosq: kind = 1; sz = 8; break;
            case Mnemonic.Lodsb: kind = 2; sz = 1; break;
            case Mnemonic.Lodsw: kind = 2; sz = 2; break;
            case Mnemonic.Lodsd: kind = 2; sz = 4; break;
            case Mnemonic.Lodsq: kind = 2; sz = 8; break;
            case Mnemonic.Cmpsb: kind = 3; sz = 1; break;
            case Mnemonic.Cmpsw: kind = 3; sz = 2; break;
            case Mnemonic.Cmpsd: kind = 3; sz = 4; break;
            case Mnemonic.Cmpsq: kind = 3; sz = 8; break;
            case Mnemonic.Scasb: kind = 4; sz = 1; break;
            case Mnemonic.Scasw: kind = 4; sz = 2; break;
            case Mnemonic.Scasd: kind = 4; sz = 4; break;
            default: kind = 4; sz = 8; break;
        }
        if (i.HasLockPrefix) throw GuestFault.Ud();
        bool rep = i.HasRepPrefix || i.HasRepnePrefix;
        bool repne = i.HasRepnePrefix;
        ulong srcBase = kind is 0 or 2 or 3 ? SegBase(i.MemorySegment) : 0;
        ulong step = (_rflags & DF) != 0 ? (ulong)-sz : (ulong)sz;
        if (rep && _r[1] == 0) { _rip = next; return; }

        if (rep && (_rflags & DF) == 0 && kind is 0 or 1 && BulkForward(kind, sz, srcBase))
        {
            if (_r[1] == 0) _rip = next;
            return;
        }

        int budget = rep ? RepChunk : 1;
        while (budget-- > 0)
        {
            switch (kind)
            {
                case 0:
                {
                    ulong v = ReadMem(srcBase + _r[6], sz);
                    WriteMem(_r[7], sz, v);
                    _r[6] += step; _r[7] += step;
                    break;
                }
                case 1:
                    WriteMem(_r[7], sz, _r[0]);
                    _r[7] += step;
                    break;
                case 2:
                    SetGpr(0, sz, ReadMem(srcBase + _r[6], sz));
                    _r[6] += step;
                    break;
                case 3:
                {
                    ulong a = ReadMem(srcBase + _r[6], sz), b = ReadMem(_r[7], sz);
                    AluSub(a, b, 0, sz);
                    _r[6] += step; _r[7] += step;
                    break;
                }
                default:
                {
                    ulong b = ReadMem(_r[7], sz);
                    AluSub(_r[0], b, 0, sz);
                    _r[7] += step;
                    break;
                }
            }
            if (!rep) { _rip = next; return; }
            _r[1]--;
            _mmioCount = 0; // each element retires on its own
            _mmioCursor = 0;
            if (_r[1] == 0) { _rip = next; return; }
            if (kind >= 3 && (repne ? (_rflags & ZF) != 0 : (_rflags & ZF) == 0)) { _rip = next; return; }
            if (_exitPending) return;
        }
    }

    /// <summary>REP MOVS/STOS forward within RAM pages: whole runs up to the next page boundary at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool BulkForward(int kind, int sz, ulong srcBase)
    {
        ulong rdi = _r[7];
        byte* dst = TranslateWritePtr(rdi, sz);
        if (dst is null) return false;
        ulong room = (4096 - (rdi & 0xfff)) / (ulong)sz;
        byte* src = null;
        if (kind == 0)
        {
            ulong rsi = srcBase + _r[6];
            src = TranslateReadPtr(rsi, sz);
            if (src is null) return false;
            room = Math.Min(room, (4096 - (rsi & 0xfff)) / (ulong)sz);
        }
        ulong n = Math.Min(Math.Min(room, _r[1]), RepChunk);
        if (n == 0) return false;
        ulong bytes = n * (ulong)sz;
        if (kind == 0)
        {
            // Overlap with the destination ahead of the source replicates data element by element on hardware.
            if (dst > src && dst < src + bytes) return false;
            Buffer.MemoryCopy(src, dst, (long)bytes, (long)bytes);
            _r[6] += bytes;
        }
        else if (sz == 1) new Span<byte>(dst, (int)bytes).Fill((byte)_r[0]);
        else
            for (ulong k = 0; k < n; k++) Store(dst + k * (ulong)sz, sz, _r[0]);
        _r[7] += bytes;
        _r[1] -= n;
        return true;
    }

    // String port I/O: one element per exit, completed on the next Run like IN/OUT.
    private int _ioStringKind; // 0 none, 1 INS, 2 OUTS
    private bool _ioRep;
    private ulong _ioStep;
    private byte* _ioDst;

    private void StringIo(ref Instruction i, Mnemonic m, ulong next)
    {
        bool isIn = m is Mnemonic.Insb or Mnemonic.Insw or Mnemonic.Insd;
        int sz = m is Mnemonic.Insb or Mnemonic.Outsb ? 1 : m is Mnemonic.Insw or Mnemonic.Outsw ? 2 : 4;
        if (!PortAllowed((ushort)_r[2], sz)) throw GuestFault.Gp(0);
        bool rep = i.HasRepPrefix || i.HasRepnePrefix;
        if (rep && _r[1] == 0) { _rip = next; return; }
        ulong port = (ushort)_r[2], data = 0;
        if (isIn)
        {
            _ioDst = TranslateWritePtr(_r[7], sz);
            if (_ioDst is null) throw new EmuInternalError($"INS to MMIO or across a page at 0x{_r[7]:x} is not implemented");
        }
        else data = ReadMem(SegBase(i.MemorySegment) + _r[6], sz);
        _exit = new VcpuExit(ExitReason.Io, port, sz, !isIn, data);
        _exitPending = true;
        _ioPending = true;
        _ioIsIn = false; // completion below, not the accumulator path
        _ioStringKind = isIn ? 1 : 2;
        _ioSize = sz;
        _ioRep = rep;
        _ioStep = (_rflags & DF) != 0 ? (ulong)-sz : (ulong)sz;
        _ioRip = _rip;
        _ioNext = next;
        _completedValue = ulong.MaxValue;
    }

    /// <summary>Finishes one INS/OUTS element after the VMM handled the exit; RIP moves on only when the count is done.</summary>
    private void CompleteStringIo()
    {
        int kind = _ioStringKind;
        _ioStringKind = 0;
        if (kind == 1)
        {
            Store(_ioDst, _ioSize, _completedValue);
            _r[7] += _ioStep;
        }
        else _r[6] += _ioStep;
        if (!_ioRep) { _rip = _ioNext; return; }
        if (--_r[1] == 0) _rip = _ioNext;
    }
}
