using Iced.Intel;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>Exception/interrupt delivery through the 64-bit IDT, IRETQ, SYSCALL/SYSRET, segment loads, MSRs and control registers.</summary>
public sealed unsafe partial class EmuVcpu
{
    private static bool IsContributory(int v) => v is 0 or 10 or 11 or 12 or 13;

    /// <summary>
    /// Delivers an exception or interrupt, turning a fault during delivery into #DF (contributory/page-fault
    /// combinations) and a fault while delivering #DF into a triple fault. Returns false on triple fault.
    /// </summary>
    private bool DeliverEvent(int vector, bool hasErr, uint err, ulong returnRip, bool software, bool external = false)
    {
        int depth = 0;
        while (true)
        {
            try
            {
                DeliverOnce(vector, hasErr, err, returnRip, software, external);
                return true;
            }
            catch (GuestFault f)
            {
                if (f.Vector == 14) _cr2 = _faultAddress;
                if (vector == 8 || ++depth > 8) { _shutdown = true; return false; }
                bool df = (IsContributory(vector) && IsContributory(f.Vector))
                    || (vector == 14 && (IsContributory(f.Vector) || f.Vector == 14));
                if (df) { vector = 8; hasErr = true; err = 0; }
                else { vector = f.Vector; hasErr = f.HasErrorCode; err = f.ErrorCode; }
                software = false;
                external = false;
                returnRip = _rip;
            }
        }
    }

    private void DeliverOnce(int vector, bool hasErr, uint err, ulong returnRip, bool software, bool external)
    {
        uint gateErr = (uint)(vector * 8 + 2 + (external ? 1 : 0));
        if ((ulong)vector * 16 + 15 > _idt.Limit) throw GuestFault.Gp(gateErr);
        ulong gAddr = _idt.Base + (ulong)vector * 16;
        ulong lo = ReadSys(gAddr, 8), hi = ReadSys(gAddr + 8, 8);
        int type = (int)(lo >> 40) & 0xf, gateDpl = (int)(lo >> 45) & 3;
        if (type != 0xe && type != 0xf) throw GuestFault.Gp(gateErr);
        if (software && gateDpl < _cpl) throw GuestFault.Gp(gateErr);
        if (((lo >> 47) & 1) == 0) throw GuestFault.Np(gateErr);
        ushort sel = (ushort)(lo >> 16);
        ulong target = (lo & 0xffff) | ((lo >> 32) & 0xffff0000UL) | (hi << 32);
        int ist = (int)(lo >> 32) & 7;

        if ((sel & 0xfffc) == 0) throw GuestFault.Gp(external ? 1u : 0);
        ulong d = ReadDescriptor(sel, external ? 1u : 0);
        var cs = DecodeDescriptor(sel, d);
        if (cs.S == 0 || (cs.Type & 8) == 0 || cs.Dpl > _cpl) throw GuestFault.Gp((uint)(sel & 0xfffc));
        if (cs.Present == 0) throw GuestFault.Np((uint)(sel & 0xfffc));
        if (cs.L == 0) throw new EmuInternalError($"IDT vector {vector} targets a non-64-bit code segment 0x{sel:x}");
        int newCpl = (cs.Type & 4) != 0 ? _cpl : cs.Dpl;

        ulong oldRsp = _r[4], rsp = oldRsp;
        bool stackSwitch = newCpl < _cpl;
        if (ist != 0) rsp = ReadSys(_tr.Base + 0x24 + (ulong)(ist - 1) * 8, 8);
        else if (stackSwitch) rsp = ReadSys(_tr.Base + 4 + (ulong)newCpl * 8, 8);
        rsp &= ~0xfUL;
        ulong frameRsp = rsp - (hasErr ? 48UL : 40UL);
        // Push with the new privilege's rights (supervisor when entering ring 0).
        bool user = newCpl == 3;
        WriteSlow(rsp - 8, 8, _ss.Selector, user);
        WriteSlow(rsp - 16, 8, oldRsp, user);
        WriteSlow(rsp - 24, 8, _rflags, user);
        WriteSlow(rsp - 32, 8, _cs.Selector, user);
        WriteSlow(rsp - 40, 8, returnRip, user);
        if (hasErr) WriteSlow(rsp - 48, 8, err, user);

        cs.Selector = (ushort)((sel & 0xfffc) | newCpl);
        if (stackSwitch)
            _ss = new SegmentRegister { Selector = (ushort)newCpl, Unusable = 1, Dpl = (byte)newCpl, Db = 1 };
        _cs = cs;
        _r[4] = frameRsp;
        _rflags &= ~(TF | NT | RF | VM);
        if (type == 0xe) _rflags &= ~IF;
        _rip = target;
        UpdateCpl();
    }

    /// <summary>Reads an 8-byte descriptor from the GDT or LDT, #GP(selector) beyond the table limit.</summary>
    private ulong ReadDescriptor(ushort sel, uint ext = 0)
    {
        ulong baseAddr, limit;
        if ((sel & 4) != 0)
        {
            if (_ldt.Unusable != 0 || _ldt.Present == 0) throw GuestFault.Gp((uint)(sel & 0xfffc) | ext);
            baseAddr = _ldt.Base; limit = _ldt.Limit;
        }
        else { baseAddr = _gdt.Base; limit = _gdt.Limit; }
        if ((ulong)(sel | 7) > limit) throw GuestFault.Gp((uint)(sel & 0xfffc) | ext);
        return ReadSys(baseAddr + (ulong)(sel & ~7), 8);
    }

    private static SegmentRegister DecodeDescriptor(ushort sel, ulong d)
    {
        uint limit = (uint)(d & 0xffff) | (uint)((d >> 32) & 0xf0000);
        bool g = ((d >> 55) & 1) != 0;
        if (g) limit = (limit << 12) | 0xfff;
        return new SegmentRegister
        {
            Selector = sel,
            Base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24),
            Limit = limit,
            Type = (byte)((d >> 40) & 0xf),
            S = (byte)((d >> 44) & 1),
            Dpl = (byte)((d >> 45) & 3),
            Present = (byte)((d >> 47) & 1),
            Avl = (byte)((d >> 52) & 1),
            L = (byte)((d >> 53) & 1),
            Db = (byte)((d >> 54) & 1),
            G = (byte)(g ? 1 : 0),
        };
    }

    /// <summary>MOV/POP to DS, ES, FS, GS or SS with the protected-mode checks.</summary>
    private void LoadDataSegment(Register seg, ushort sel)
    {
        int rpl = sel & 3;
        SegmentRegister s;
        if ((sel & 0xfffc) == 0)
        {
            if (seg == Register.SS && (_cpl == 3 || rpl != _cpl)) throw GuestFault.Gp(0);
            s = new SegmentRegister { Selector = sel, Unusable = 1 };
            if (seg == Register.SS) s.Dpl = (byte)_cpl;
        }
        else
        {
            s = DecodeDescriptor(sel, ReadDescriptor(sel));
            uint e = (uint)(sel & 0xfffc);
            if (s.S == 0) throw GuestFault.Gp(e);
            bool code = (s.Type & 8) != 0;
            if (seg == Register.SS)
            {
                if (rpl != _cpl || s.Dpl != _cpl || code || (s.Type & 2) == 0) throw GuestFault.Gp(e);
                if (s.Present == 0) throw GuestFault.Ss(e);
            }
            else
            {
                if (code && (s.Type & 2) == 0) throw GuestFault.Gp(e);
                bool conforming = code && (s.Type & 4) != 0;
                if (!conforming && (s.Dpl < _cpl || s.Dpl < rpl)) throw GuestFault.Gp(e);
                if (s.Present == 0) throw GuestFault.Np(e);
            }
        }
        switch (seg)
        {
            case Register.SS: _ss = s; _shadowAt = _retired; break;
            case Register.DS: _ds = s; break;
            case Register.ES: _es = s; break;
            case Register.FS: _fs = s; break;
            case Register.GS: _gs = s; break;
            default: throw GuestFault.Ud();
        }
    }

    /// <summary>Loads CS for a far return / IRET to privilege <paramref name="rpl"/> (never inward).</summary>
    private SegmentRegister CheckReturnCs(ushort sel)
    {
        int rpl = sel & 3;
        uint e = (uint)(sel & 0xfffc);
        if (e == 0) throw GuestFault.Gp(0);
        if (rpl < _cpl) throw GuestFault.Gp(e);
        var cs = DecodeDescriptor(sel, ReadDescriptor(sel));
        if (cs.S == 0 || (cs.Type & 8) == 0) throw GuestFault.Gp(e);
        bool conforming = (cs.Type & 4) != 0;
        if (conforming ? cs.Dpl > rpl : cs.Dpl != rpl) throw GuestFault.Gp(e);
        if (cs.Present == 0) throw GuestFault.Np(e);
        if (cs.L == 0) throw new EmuInternalError($"return to non-64-bit code segment 0x{sel:x}: compatibility mode is not implemented");
        cs.Dpl = (byte)rpl;
        return cs;
    }

    private SegmentRegister CheckReturnSs(ushort sel, int newCpl)
    {
        uint e = (uint)(sel & 0xfffc);
        if (e == 0)
        {
            if (newCpl == 3 || (sel & 3) != newCpl) throw GuestFault.Gp(0);
            return new SegmentRegister { Selector = sel, Unusable = 1, Dpl = (byte)newCpl, Db = 1 };
        }
        if ((sel & 3) != newCpl) throw GuestFault.Gp(e);
        var ss = DecodeDescriptor(sel, ReadDescriptor(sel));
        if (ss.S == 0 || (ss.Type & 8) != 0 || (ss.Type & 2) == 0 || ss.Dpl != newCpl) throw GuestFault.Gp(e);
        if (ss.Present == 0) throw GuestFault.Ss(e);
        return ss;
    }

    private void Iretq()
    {
        ulong rsp = _r[4];
        ulong rip = ReadMem(rsp, 8), csSel = ReadMem(rsp + 8, 8), fl = ReadMem(rsp + 16, 8);
        ulong newRsp = ReadMem(rsp + 24, 8), ssSel = ReadMem(rsp + 32, 8);
        var cs = CheckReturnCs((ushort)csSel);
        int newCpl = cs.Dpl;
        var ss = CheckReturnSs((ushort)ssSel, newCpl);
        if (!IsCanonical(rip)) throw GuestFault.Gp(0);
        ulong changeable = CF | PF | AF | ZF | SF | TF | DF | OF | NT | RF | AC | ID;
        if (_cpl <= (int)((_rflags >> 12) & 3)) changeable |= IF;
        if (_cpl == 0) changeable |= IOPL | IF;
        int oldCpl = _cpl;
        _rflags = (_rflags & ~changeable) | (fl & changeable) | 2;
        _cs = cs;
        _ss = ss;
        _r[4] = newRsp;
        _rip = rip;
        UpdateCpl();
        if (newCpl > oldCpl) NullifyDataSegmentsForOuterLevel();
    }

    /// <summary>RETF (far return) with 64- or 32-bit operands, same level or outward.</summary>
    private void FarReturn(int opSize, ulong popExtra)
    {
        ulong rsp = _r[4];
        ulong rip = ReadMem(rsp, opSize), csSel = ReadMem(rsp + (ulong)opSize, opSize) & 0xffff;
        var cs = CheckReturnCs((ushort)csSel);
        int newCpl = cs.Dpl;
        ulong after = rsp + 2 * (ulong)opSize + popExtra;
        if (newCpl > _cpl)
        {
            ulong newRsp = ReadMem(after, opSize), ssSel = ReadMem(after + (ulong)opSize, opSize) & 0xffff;
            var ss = CheckReturnSs((ushort)ssSel, newCpl);
            _ss = ss;
            _r[4] = newRsp + popExtra;
        }
        else _r[4] = after;
        if (opSize == 4) rip = (uint)rip;
        _cs = cs;
        _rip = rip;
        int oldCpl = _cpl;
        UpdateCpl();
        if (newCpl > oldCpl) NullifyDataSegmentsForOuterLevel();
    }

    private void NullifyDataSegmentsForOuterLevel()
    {
        static void Check(ref SegmentRegister s, int cpl)
        {
            bool conformingCode = (s.Type & 0xc) == 0xc;
            if (s.Unusable == 0 && (s.Selector & 0xfffc) != 0 && !conformingCode && s.Dpl < cpl)
                s = new SegmentRegister { Selector = 0, Unusable = 1, Base = s.Base };
        }
        Check(ref _ds, _cpl);
        Check(ref _es, _cpl);
        Check(ref _fs, _cpl);
        Check(ref _gs, _cpl);
    }

    private void Syscall(ulong next)
    {
        if ((_efer & X86.EferSce) == 0) throw GuestFault.Ud();
        ushort sel = (ushort)((_star >> 32) & 0xfffc);
        _r[1] = next;
        _r[11] = _rflags & ~RF;
        _rflags = (_rflags & ~(_sfmask | RF)) | 2;
        _cs = SegmentRegister.Code64(sel, 0);
        _ss = SegmentRegister.Data((ushort)(sel + 8), 0);
        _rip = _lstar;
        UpdateCpl();
    }

    private void Sysret(bool rexW)
    {
        if ((_efer & X86.EferSce) == 0) throw GuestFault.Ud();
        if (_cpl != 0) throw GuestFault.Gp(0);
        if (!rexW) throw new EmuInternalError("SYSRET to compatibility mode is not implemented");
        if (!IsCanonical(_r[1])) throw GuestFault.Gp(0);
        ushort sel = (ushort)(_star >> 48);
        _cs = SegmentRegister.Code64((ushort)((sel + 16) | 3), 3);
        _ss = SegmentRegister.Data((ushort)((sel + 8) | 3), 3);
        _rflags = (_r[11] & 0x3c7fd7) | 2;
        _rip = _r[1];
        UpdateCpl();
    }

    private bool TryReadMsr(uint index, out ulong v)
    {
        v = index switch
        {
            X86.MsrEfer => _efer,
            X86.MsrStar => _star,
            X86.MsrLstar => _lstar,
            X86.MsrCstar => _cstar,
            X86.MsrSyscallMask => _sfmask,
            X86.MsrFsBase => _fs.Base,
            X86.MsrGsBase => _gs.Base,
            X86.MsrKernelGsBase => _kernelGsBase,
            X86.MsrTscAux => _tscAux,
            X86.MsrTsc => ReadTsc(),
            X86.MsrApicBase => _apicBase,
            X86.MsrPat => _pat,
            X86.MsrMiscEnable => _miscEnable,
            _ => 0,
        };
        return index is X86.MsrEfer or X86.MsrStar or X86.MsrLstar or X86.MsrCstar or X86.MsrSyscallMask or X86.MsrFsBase
            or X86.MsrGsBase or X86.MsrKernelGsBase or X86.MsrTscAux or X86.MsrTsc or X86.MsrApicBase or X86.MsrPat or X86.MsrMiscEnable;
    }

    private bool TryWriteMsr(uint index, ulong v)
    {
        switch (index)
        {
            case X86.MsrEfer:
                if ((v & ~(X86.EferSce | X86.EferLme | X86.EferLma | X86.EferNx)) != 0) return false;
                _efer = (v & ~X86.EferLma) | (_efer & X86.EferLma);
                if ((_efer & X86.EferLme) != 0 && PagingOn) _efer |= X86.EferLma;
                FlushTlb();
                return true;
            case X86.MsrStar: _star = v; return true;
            case X86.MsrLstar: if (!IsCanonical(v)) return false; _lstar = v; return true;
            case X86.MsrCstar: if (!IsCanonical(v)) return false; _cstar = v; return true;
            case X86.MsrSyscallMask: _sfmask = v & 0xffffffff; return true;
            case X86.MsrFsBase: if (!IsCanonical(v)) return false; _fs.Base = v; return true;
            case X86.MsrGsBase: if (!IsCanonical(v)) return false; _gs.Base = v; return true;
            case X86.MsrKernelGsBase: if (!IsCanonical(v)) return false; _kernelGsBase = v; return true;
            case X86.MsrTscAux: _tscAux = (uint)v; return true;
            case X86.MsrTsc: _tscOffset = (long)(v - (ReadTsc() - (ulong)_tscOffset)); return true;
            case X86.MsrApicBase: _apicBase = v; return true;
            case X86.MsrPat: _pat = v; return true;
            case X86.MsrMiscEnable: _miscEnable = v; return true;
            default: return false;
        }
    }

    private void WriteCr(int n, ulong v)
    {
        switch (n)
        {
            case 0:
            {
                if ((v >> 32) != 0 || ((v & X86.Cr0Pg) != 0 && (v & X86.Cr0Pe) == 0)) throw GuestFault.Gp(0);
                bool lma = (_efer & X86.EferLma) != 0;
                if (lma && (v & X86.Cr0Pg) == 0) throw new EmuInternalError("leaving long mode is not implemented");
                if (((_cr0 ^ v) & (X86.Cr0Pg | X86.Cr0Wp | X86.Cr0Pe)) != 0) FlushTlb();
                _cr0 = v | X86.Cr0Et;
                break;
            }
            case 2: _cr2 = v; break;
            case 3: _cr3 = v & 0x000f_ffff_ffff_ffffUL; FlushTlb(); break;
            case 4:
                if ((_efer & X86.EferLma) != 0 && (v & X86.Cr4Pae) == 0) throw GuestFault.Gp(0);
                if (((_cr4 ^ v) & (X86.Cr4Pae | X86.Cr4Pge | 0x10UL /*PSE*/ | (1UL << 20) | (1UL << 21))) != 0) FlushTlb();
                _cr4 = v;
                break;
            case 8: _cr8 = v & 0xf; break;
            default: throw GuestFault.Ud();
        }
    }

    private ulong ReadCr(int n) => n switch
    {
        0 => _cr0, 2 => _cr2, 3 => _cr3, 4 => _cr4, 8 => _cr8,
        _ => throw GuestFault.Ud(),
    };

    private void Ltr(ushort sel)
    {
        if ((sel & 0xfffc) == 0 || (sel & 4) != 0) throw GuestFault.Gp((uint)(sel & 0xfffc));
        ulong lo = ReadDescriptor(sel);
        ulong hi = ReadSys(_gdt.Base + (ulong)(sel & ~7) + 8, 8);
        var t = DecodeDescriptor(sel, lo);
        if (t.S != 0 || t.Type != 9) throw GuestFault.Gp((uint)(sel & 0xfffc));
        if (t.Present == 0) throw GuestFault.Np((uint)(sel & 0xfffc));
        t.Base |= (hi & 0xffffffff) << 32;
        t.Type = 0xb;
        WriteSys(_gdt.Base + (ulong)(sel & ~7), 8, lo | (2UL << 40)); // mark busy
        _tr = t;
    }

    private void Lldt(ushort sel)
    {
        if ((sel & 0xfffc) == 0) { _ldt = new SegmentRegister { Selector = sel, Unusable = 1 }; return; }
        if ((sel & 4) != 0) throw GuestFault.Gp((uint)(sel & 0xfffc));
        ulong lo = ReadDescriptor(sel);
        ulong hi = ReadSys(_gdt.Base + (ulong)(sel & ~7) + 8, 8);
        var t = DecodeDescriptor(sel, lo);
        if (t.S != 0 || t.Type != 2) throw GuestFault.Gp((uint)(sel & 0xfffc));
        if (t.Present == 0) throw GuestFault.Np((uint)(sel & 0xfffc));
        t.Base |= (hi & 0xffffffff) << 32;
        _ldt = t;
    }

    private void Cpuid()
    {
        uint fn = (uint)_r[0], idx = (uint)_r[1];
        CpuidEntry? hit = null;
        foreach (var e in _cpuid)
            if (e.Function == fn && (!e.IndexSignificant || e.Index == idx)) { hit = e; break; }
        var h = hit ?? default;
        _r[0] = h.Eax; _r[3] = h.Ebx; _r[1] = h.Ecx; _r[2] = h.Edx;
    }
}
