using Iced.Intel;

using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Hypervisor.Pv;

/// <summary>Emulation on #GP (privileged instructions), #UD (Xen's forced-emulation CPUID) and #PF (writes to pinned L1 tables).</summary>
public sealed partial class PvPlatform
{
    public const ulong VirtualCr0Base = X86.Cr0Pe | X86.Cr0Mp | X86.Cr0Et | X86.Cr0Ne | X86.Cr0Wp | X86.Cr0Pg;
    public const ulong VirtualCr4Base = X86.Cr4Pae | X86.Cr4Osfxsr | X86.Cr4Osxmmexcpt;
    public const ulong XenPat = 0x0000050100070406UL;
    private static readonly byte[] ForcedEmulationPrefix = { 0x0f, 0x0b, 0x78, 0x65, 0x6e };

    private byte[] FetchCode(PvVcpuState st, ulong rip, int max = 15)
    {
        var b = new byte[max];
        for (int i = 0; i < max; i++)
        {
            try { Walker.Read(st.CurrentCr3, rip + (ulong)i, b.AsSpan(i, 1)); }
            catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException) { return b[..i]; }
        }
        return b;
    }

    private static bool Decode(byte[] code, ulong rip, out Instruction ins)
    {
        var d = Decoder.Create(64, new ByteArrayCodeReader(code), rip);
        d.Decode(out ins);
        return !ins.IsInvalid && code.Length > 0;
    }

    /// <summary><c>ud2; .ascii "xen"; cpuid</c>: CPUID with the PV policy, rip past the 7 bytes.</summary>
    public bool TryForcedEmulation(PvVcpuState st, ref GuestContext ctx)
    {
        var code = FetchCode(st, ctx.Regs.Rip, 7);
        if (code.Length < 7 || !code.AsSpan(0, 5).SequenceEqual(ForcedEmulationPrefix) || code[5] != 0x0f || code[6] != 0xa2) return false;
        var (a, b, c, d) = PvCpuid.Query(_domain.Hypervisor.Accelerator, (uint)ctx.Regs.Rax, (uint)ctx.Regs.Rcx);
        ctx.Regs.Rax = a; ctx.Regs.Rbx = b; ctx.Regs.Rcx = c; ctx.Regs.Rdx = d;
        ctx.Regs.Rip += 7;
        return true;
    }

    private static ref ulong Gpr(ref GuestContext ctx, Register r)
    {
        switch (r.GetFullRegister())
        {
            case Register.RAX: return ref ctx.Regs.Rax;
            case Register.RBX: return ref ctx.Regs.Rbx;
            case Register.RCX: return ref ctx.Regs.Rcx;
            case Register.RDX: return ref ctx.Regs.Rdx;
            case Register.RSI: return ref ctx.Regs.Rsi;
            case Register.RDI: return ref ctx.Regs.Rdi;
            case Register.RSP: return ref ctx.Regs.Rsp;
            case Register.RBP: return ref ctx.Regs.Rbp;
            case Register.R8: return ref ctx.Regs.R8;
            case Register.R9: return ref ctx.Regs.R9;
            case Register.R10: return ref ctx.Regs.R10;
            case Register.R11: return ref ctx.Regs.R11;
            case Register.R12: return ref ctx.Regs.R12;
            case Register.R13: return ref ctx.Regs.R13;
            case Register.R14: return ref ctx.Regs.R14;
            case Register.R15: return ref ctx.Regs.R15;
            default: throw new PvCrashException($"cannot emulate with register {r}");
        }
    }

    /// <summary>#GP(0) in guest-kernel mode: rdmsr/wrmsr, mov to/from CR/DR, clts, wbinvd, cli/sti, in/out, hlt.</summary>
    public bool TryEmulatePrivOp(VirtualCpu vcpu, PvVcpuState st, ref GuestContext ctx, out ExitAction action)
    {
        action = ExitAction.Continue;
        if (!st.KernelMode) return false;
        var code = FetchCode(st, ctx.Regs.Rip);
        if (!Decode(code, ctx.Regs.Rip, out var ins)) return false;
        CountEmulation(ins.Mnemonic == Mnemonic.Rdmsr || ins.Mnemonic == Mnemonic.Wrmsr
            ? $"{ins.Mnemonic.ToString().ToLowerInvariant()}/0x{(uint)ctx.Regs.Rcx:x}" : ins.Mnemonic.ToString().ToLowerInvariant());
        switch (ins.Mnemonic)
        {
            case Mnemonic.Rdmsr:
            {
                if (!ReadMsr(vcpu, st, (uint)ctx.Regs.Rcx, out ulong v)) return false;
                ctx.Regs.Rax = (uint)v;
                ctx.Regs.Rdx = v >> 32;
                break;
            }
            case Mnemonic.Wrmsr:
                if (!WriteMsr(st, (uint)ctx.Regs.Rcx, ((ctx.Regs.Rdx & 0xffffffff) << 32) | (ctx.Regs.Rax & 0xffffffff))) return false;
                break;
            case Mnemonic.Mov when ins.Op0Kind == OpKind.Register && ins.Op0Register.IsCR():
            {
                ulong v = Gpr(ref ctx, ins.Op1Register);
                switch (ins.Op0Register)
                {
                    case Register.CR0: st.VirtualTs = (v & 8) != 0; break;
                    case Register.CR2: st.VirtualCr2 = v; st.WriteCr2(v); break;
                    case Register.CR3:
                    {
                        var w = new CommandPtWriter(_domain.Memory, Area, st);
                        long rc;
                        lock (Mmu.SyncRoot) rc = Mmu.GetType(v >> 12, PageType.L4, w);
                        if (rc != 0) return false;
                        ulong old = st.KernelL4;
                        st.KernelL4 = v >> 12;
                        st.CurrentCr3 = st.KernelL4 << 12;
                        w.LoadCr3(st.CurrentCr3);
                        if (old != 0) lock (Mmu.SyncRoot) Mmu.PutType(old, w);
                        break;
                    }
                    case Register.CR4: break; // filtered: the guest controls nothing we honour
                    default: return false;
                }
                break;
            }
            case Mnemonic.Mov when ins.Op1Kind == OpKind.Register && ins.Op1Register.IsCR():
            {
                ref ulong dst = ref Gpr(ref ctx, ins.Op0Register);
                switch (ins.Op1Register)
                {
                    case Register.CR0: dst = VirtualCr0Base | (st.VirtualTs ? 8UL : 0); break;
                    case Register.CR2: dst = st.VirtualCr2; break;
                    case Register.CR3: dst = st.KernelL4 << 12; break;
                    case Register.CR4: dst = VirtualCr4Base; break;
                    default: return false;
                }
                break;
            }
            case Mnemonic.Mov when ins.Op0Kind == OpKind.Register && ins.Op0Register.IsDR():
                st.DebugRegs[ins.Op0Register - Register.DR0] = Gpr(ref ctx, ins.Op1Register);
                break;
            case Mnemonic.Mov when ins.Op1Kind == OpKind.Register && ins.Op1Register.IsDR():
                Gpr(ref ctx, ins.Op0Register) = st.DebugRegs[ins.Op1Register - Register.DR0];
                break;
            case Mnemonic.Clts:
                st.VirtualTs = false;
                break;
            case Mnemonic.Wbinvd:
            case Mnemonic.Invd:
            case Mnemonic.Cli:
            case Mnemonic.Sti:
                break;
            case Mnemonic.Hlt:
                st.EvtchnUpcallMask = false;
                if (!st.EvtchnUpcallPending) action = ExitAction.Block;
                break;
            case Mnemonic.In:
            {
                int size = ins.Op0Register.GetSize();
                uint v = PortRead(ins.Op1Kind == OpKind.Register ? (ushort)ctx.Regs.Rdx : (int)ins.Immediate8, size);
                ref ulong rax = ref ctx.Regs.Rax;
                ulong mask = size >= 4 ? 0xffffffffUL : (1UL << (size * 8)) - 1;
                rax = size >= 4 ? v : (rax & ~mask) | (v & mask); // a 32-bit IN zero-extends, as any 32-bit write
                break;
            }
            case Mnemonic.Out:
                PortWrite(ins.Op0Kind == OpKind.Register ? (ushort)ctx.Regs.Rdx : (int)ins.Immediate8, ins.Op1Register.GetSize(), (uint)ctx.Regs.Rax);
                break;
            default:
                return false;
        }
        ctx.Regs.Rip += (ulong)ins.Length;
        return true;
    }

    /// <summary>The PIT channel 2 and speaker port that Xen emulates for every PV domain.</summary>
    public PvPit Pit { get; } = new();
    private uint _pciCf8;
    private byte _cmosIndex;

    /// <summary>
    /// A port read by a domU that owns no I/O ports, answered as Xen's guest_io_read does: byte by byte, the PIT channel
    /// 2 ports and 0x61 from <see cref="Pit"/>, the RTC index port and a 4-byte 0xcf8 from what the guest last wrote
    /// there, everything else all ones (no PCI configuration space and no CMOS data for a domU).
    /// </summary>
    internal uint PortRead(int port, int size)
    {
        CountPortAccess(port);
        if (port == 0xcf8 && size == 4) return _pciCf8;
        uint v = 0;
        for (int i = 0; i < size; i++)
        {
            int p = (port + i) & 0xffff;
            uint b = PvPit.Handles(p) ? Pit.Read(p) : p == 0x70 ? _cmosIndex : 0xffu;
            v |= b << (8 * i);
        }
        return v;
    }

    /// <summary>A port write by a domU, as Xen's guest_io_write: the PIT ports, the RTC index and a 4-byte 0xcf8 are kept; the rest are dropped.</summary>
    internal void PortWrite(int port, int size, uint value)
    {
        CountPortAccess(port);
        if (port == 0xcf8 && size == 4) { _pciCf8 = value; return; }
        for (int i = 0; i < size; i++)
        {
            int p = (port + i) & 0xffff;
            byte b = (byte)(value >> (8 * i));
            if (PvPit.Handles(p)) Pit.Write(p, b);
            else if (p == 0x70) _cmosIndex = b;
        }
    }

    private bool ReadMsr(VirtualCpu vcpu, PvVcpuState st, uint index, out ulong v)
    {
        switch (index)
        {
            case X86.MsrFsBase: v = st.FsBase; return true;
            case X86.MsrGsBase: v = st.KernelMode ? st.GsBaseKernel : st.GsBaseUser; return true;
            case X86.MsrKernelGsBase: v = st.KernelMode ? st.GsBaseUser : st.GsBaseKernel; return true;
            case X86.MsrApicBase: v = 0xfee00000UL | 0x800 | (vcpu.Id == 0 ? 0x100UL : 0); return true;
            case X86.MsrEfer: v = X86.EferSce | X86.EferLme | X86.EferLma | X86.EferNx; return true;
            case X86.MsrPat: v = XenPat; return true;
            case X86.MsrMiscEnable: v = 1; return true; // fast strings
            case X86.MsrTsc: v = (ulong)System.Diagnostics.Stopwatch.GetTimestamp(); return true;
            case 0x345: v = 0; return true; // PERF_CAPABILITIES
            case X86.MsrStar: v = PvLayout.StarValue; return true;
            case X86.MsrLstar: v = Area.Stubs.SyscallEntry; return true;
            case X86.MsrCstar: v = Area.Stubs.Syscall32Entry; return true;
            case X86.MsrSyscallMask: v = PvLayout.SyscallMask; return true;
            default:
                v = 0;
                // While the guest has no #GP handler yet, Xen turns a failing rdmsr into a read of 0 rather than crash it.
                return st.TrapTable[X86.VectorGp].Address == 0;
        }
    }

    private bool WriteMsr(PvVcpuState st, uint index, ulong v)
    {
        switch (index)
        {
            case X86.MsrFsBase:
                st.FsBase = v;
                st.Commands.Add((CommandPage.OpWrmsr, X86.MsrFsBase, v));
                return true;
            case X86.MsrGsBase:
                if (st.KernelMode) st.GsBaseKernel = v; else st.GsBaseUser = v;
                st.Commands.Add((CommandPage.OpWrmsr, X86.MsrGsBase, v));
                return true;
            case X86.MsrKernelGsBase:
                if (st.KernelMode) st.GsBaseUser = v; else st.GsBaseKernel = v;
                return true;
            case X86.MsrEfer:
                return v == (X86.EferSce | X86.EferLme | X86.EferLma | X86.EferNx);
            case X86.MsrMiscEnable:
                return v == 1;
            case X86.MsrStar: case X86.MsrLstar: case X86.MsrCstar: case X86.MsrSyscallMask:
            case 0x174: case 0x175: case 0x176: // SYSENTER_*: the hypervisor owns them
            case X86.MsrPat:
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// A kernel write to a read-only mapping of a pinned L1 table (Linux's native PTE helpers): decode the instruction,
    /// compute the new 8-byte entry, validate and apply it as mmu_update would, and step past the instruction.
    /// </summary>
    public bool TryEmulatePtWrite(VirtualCpu vcpu, PvVcpuState st, ref GuestContext ctx, ulong cr2)
    {
        if (!Walker.TryTranslate(st.CurrentCr3, cr2, false, out ulong gpa)) return false;
        ulong mfn = gpa >> 12;
        if (mfn >= Area.RamFrames || Mmu.TypeOf(mfn) != PageType.L1 || Mmu.TypeRefs(mfn) == 0) return false;
        var code = FetchCode(st, ctx.Regs.Rip);
        if (!Decode(code, ctx.Regs.Rip, out var ins) || ins.Op0Kind != OpKind.Memory) return false;
        int size = ins.MemorySize.GetSize();
        if (size is not (1 or 2 or 4 or 8) || (gpa & (ulong)(size - 1)) != 0) return false;
        ulong entryGpa = gpa & ~7UL;
        int shift = (int)(gpa & 7) * 8;
        ulong mask = size == 8 ? ulong.MaxValue : ((1UL << (size * 8)) - 1) << shift;
        ulong old = _domain.Memory.ReadUInt64(entryGpa);
        ulong oldPart = (old & mask) >> shift;
        ulong src = ins.Op1Kind switch
        {
            OpKind.Register => Gpr(ref ctx, ins.Op1Register),
            OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate8to16 or OpKind.Immediate8to32
                or OpKind.Immediate8to64 or OpKind.Immediate32to64 => ins.GetImmediate(1),
            _ => throw new PvCrashException($"pt-write emulation: operand kind {ins.Op1Kind}"),
        };
        ulong sizeMask = size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        ulong newPart;
        bool write = true;
        switch (ins.Mnemonic)
        {
            case Mnemonic.Mov: newPart = src; break;
            case Mnemonic.Xchg:
                newPart = src;
                Gpr(ref ctx, ins.Op1Register) = size == 8 ? oldPart : (Gpr(ref ctx, ins.Op1Register) & ~sizeMask) | oldPart;
                break;
            case Mnemonic.Cmpxchg:
            {
                ulong expected = ctx.Regs.Rax & sizeMask;
                if (oldPart == expected) { newPart = src; ctx.Regs.Rflags |= 0x40; }
                else
                {
                    newPart = oldPart;
                    write = false;
                    ctx.Regs.Rflags &= ~0x40UL;
                    ctx.Regs.Rax = size == 8 ? oldPart : (ctx.Regs.Rax & ~sizeMask) | oldPart;
                }
                break;
            }
            case Mnemonic.And: newPart = oldPart & src; break;
            case Mnemonic.Or: newPart = oldPart | src; break;
            case Mnemonic.Btr:
            case Mnemonic.Bts:
            {
                int bit = (int)(src & (ulong)(size * 8 - 1));
                ctx.Regs.Rflags = (ctx.Regs.Rflags & ~1UL) | ((oldPart >> bit) & 1);
                newPart = ins.Mnemonic == Mnemonic.Bts ? oldPart | (1UL << bit) : oldPart & ~(1UL << bit);
                break;
            }
            default:
                return false;
        }
        if (write)
        {
            ulong val = (old & ~mask) | ((newPart & sizeMask) << shift);
            int rc = Mmu.UpdateEntry(entryGpa, val, false, new CommandPtWriter(_domain.Memory, Area, st));
            if (rc != 0) return false;
            st.Commands.Add((CommandPage.OpInvlpg, cr2, 0));
        }
        ctx.Regs.Rip += (ulong)ins.Length;
        return true;
    }
}
