using System.Runtime.CompilerServices;
using Iced.Intel;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>
/// One software vCPU: 64-bit long mode with 4-level paging. State and the run loop live here; memory in Mmu.cs,
/// flags in Alu.cs, exceptions and privilege transfers in Interrupts.cs, instruction semantics in Execute.cs,
/// decoded-instruction caching in CodeCache.cs.
/// </summary>
public sealed unsafe partial class EmuVcpu : IVcpu
{
    private const ulong CF = 1, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80, TF = 0x100, IF = 0x200, DF = 0x400, OF = 0x800,
        IOPL = 0x3000, NT = 0x4000, RF = 0x10000, VM = 0x20000, AC = 0x40000, ID = 0x200000;
    private const int KickInterval = 256;

    private readonly EmuVirtualMachine _vm;
    private readonly ulong[] _regArray = GC.AllocateArray<ulong>(16, pinned: true);
    private readonly ulong* _r;
    private ulong _rip, _rflags = 2;
    private SegmentRegister _cs, _ds, _es, _fs, _gs, _ss, _tr, _ldt;
    private DescriptorTableRegister _gdt, _idt;
    private ulong _cr0, _cr2, _cr3, _cr4, _cr8, _efer, _apicBase = 0xfee00900;
    private int _cpl;
    private ulong _star, _lstar, _cstar, _sfmask, _kernelGsBase, _tscAux, _pat = 0x0007040600070406UL, _miscEnable;
    private long _tscOffset;
    private readonly ulong[] _dr = new ulong[8];
    private CpuidEntry[] _cpuid = [];

    // Run-loop state.
    private volatile int _kick;
    private bool _shutdown, _disposed;
    private long _retired, _shadowAt = long.MinValue / 2;
    private bool _exitPending;
    private VcpuExit _exit;
    private int _mapVersion = -1;

    // Pending completions (KVM semantics: IN/OUT leave RIP on the instruction until the next Run; an MMIO read replays it).
    private bool _ioPending, _ioIsIn;
    private int _ioSize;
    private ulong _ioRip, _ioNext;
    private ulong _completedValue = ulong.MaxValue;
    private bool _mmioReadPending;
    private ulong _mmioRip;
    private readonly ulong[] _mmioLog = new ulong[8];
    private int _mmioCount, _mmioCursor;

    // External interrupts queued by InjectInterrupt: a 256-bit pending set.
    private readonly long[] _irq = new long[4];
    private volatile int _irqAny;

    private readonly List<Mnemonic> _unimplemented = [];

    internal EmuVcpu(EmuVirtualMachine vm, int id)
    {
        _vm = vm;
        Id = id;
        _r = (ulong*)Unsafe.AsPointer(ref _regArray[0]);
        _x = (ulong*)Unsafe.AsPointer(ref _xmmArray[0]);
        _tlb = GC.AllocateArray<TlbEntry>(TlbSize, pinned: true);
        _decoder = Decoder.Create(64, _reader, DecoderOptions.None);
        _cs = SegmentRegister.Code64(0x8, 0);
        _ss = _ds = _es = _fs = _gs = SegmentRegister.Data(0x10, 0);
        _cr0 = X86.Cr0Pe | X86.Cr0Et | X86.Cr0Pg;
        UpdateCpl();
    }

    public int Id { get; }

    /// <summary>Mnemonics the guest executed that this CPU does not implement (each raised #UD), in order of first use.</summary>
    public IReadOnlyList<Mnemonic> UnimplementedMnemonics { get { lock (_unimplemented) return _unimplemented.ToArray(); } }

    /// <summary>Instructions retired since creation.</summary>
    public long InstructionsRetired => _retired;

    public void Kick() => _kick = 1;

    public void CompleteRead(ulong value)
    {
        if (_mmioReadPending && _mmioCount < _mmioLog.Length)
        {
            _mmioLog[_mmioCount++] = value;
            _mmioReadPending = false;
        }
        else _completedValue = value;
    }

    public void InjectInterrupt(int vector)
    {
        if ((uint)vector > 255) throw new ArgumentOutOfRangeException(nameof(vector));
        Interlocked.Or(ref _irq[vector >> 6], 1L << (vector & 63));
        _irqAny = 1;
    }

    public void SetCpuid(IReadOnlyList<CpuidEntry> entries) => _cpuid = entries.ToArray();

    public VcpuRegisters GetRegisters() => new()
    {
        Rax = _r[0], Rcx = _r[1], Rdx = _r[2], Rbx = _r[3], Rsp = _r[4], Rbp = _r[5], Rsi = _r[6], Rdi = _r[7],
        R8 = _r[8], R9 = _r[9], R10 = _r[10], R11 = _r[11], R12 = _r[12], R13 = _r[13], R14 = _r[14], R15 = _r[15],
        Rip = _rip, Rflags = _rflags,
    };

    public void SetRegisters(in VcpuRegisters r)
    {
        _r[0] = r.Rax; _r[1] = r.Rcx; _r[2] = r.Rdx; _r[3] = r.Rbx; _r[4] = r.Rsp; _r[5] = r.Rbp; _r[6] = r.Rsi; _r[7] = r.Rdi;
        _r[8] = r.R8; _r[9] = r.R9; _r[10] = r.R10; _r[11] = r.R11; _r[12] = r.R12; _r[13] = r.R13; _r[14] = r.R14; _r[15] = r.R15;
        _rip = r.Rip;
        _rflags = (r.Rflags & 0x3f7fd7) | 2;
    }

    public SpecialRegisters GetSpecialRegisters()
    {
        var s = new SpecialRegisters
        {
            Cs = _cs, Ds = _ds, Es = _es, Fs = _fs, Gs = _gs, Ss = _ss, Tr = _tr, Ldt = _ldt, Gdt = _gdt, Idt = _idt,
            Cr0 = _cr0, Cr2 = _cr2, Cr3 = _cr3, Cr4 = _cr4, Cr8 = _cr8, Efer = _efer, ApicBase = _apicBase,
        };
        for (int i = 0; i < 4; i++) s.InterruptBitmap[i] = (ulong)Volatile.Read(ref _irq[i]);
        return s;
    }

    public void SetSpecialRegisters(in SpecialRegisters s)
    {
        _cs = s.Cs; _ds = s.Ds; _es = s.Es; _fs = s.Fs; _gs = s.Gs; _ss = s.Ss; _tr = s.Tr; _ldt = s.Ldt; _gdt = s.Gdt; _idt = s.Idt;
        _cr0 = s.Cr0; _cr2 = s.Cr2; _cr3 = s.Cr3; _cr4 = s.Cr4; _cr8 = s.Cr8; _efer = s.Efer; _apicBase = s.ApicBase;
        for (int i = 0; i < 4; i++)
            if (s.InterruptBitmap[i] != 0) { Interlocked.Or(ref _irq[i], (long)s.InterruptBitmap[i]); _irqAny = 1; }
        UpdateCpl();
        FlushTlb();
    }

    public void SetMsr(uint index, ulong value)
    {
        if (!TryWriteMsr(index, value)) throw new ArgumentException($"MSR 0x{index:x} is not implemented by the emu accelerator");
    }

    public ulong GetMsr(uint index) =>
        TryReadMsr(index, out ulong v) ? v : throw new ArgumentException($"MSR 0x{index:x} is not implemented by the emu accelerator");

    public void Dispose() => _disposed = true;

    private void UpdateCpl()
    {
        _cpl = _cs.Dpl;
        bool user = _cpl == 3;
        _needRead = user ? PermUR : PermSR;
        _needWrite = user ? PermUW : PermSW;
        _needFetch = user ? PermUX : PermSX;
        _curLin = NoPage;
    }

    /// <summary>
    /// The host TSC plus this vCPU's offset, as KVM gives it. (A private 1 GHz counter would not match the host-TSC
    /// units a VMM publishes for the guest's clock — Xen's pvclock — and the guest's time would run at the wrong
    /// rate, far from the VMM's, so absolute timer deadlines it computes would never be reached.)
    /// </summary>
    private ulong ReadTsc() => HostTsc.Read() + (ulong)_tscOffset;

    public VcpuExit Run()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_shutdown) return new VcpuExit(ExitReason.Shutdown, Detail: "triple fault");
        _runId++;
        // A kick before a pending IN/OUT/MMIO completion keeps the completion for the Run after.
        if (_kick != 0) { _kick = 0; return new VcpuExit(ExitReason.Interrupted); }
        CheckMapVersion();
        if (_flushRequest != 0) ApplyFlushRequests();
        CompletePendingIo();
        if (_mmioCount != 0 && _rip != _mmioRip) { _mmioCount = 0; _mmioReadPending = false; }
        _exitPending = false;
        while (true)
        {
            try
            {
                return Loop();
            }
            catch (GuestFault f)
            {
                _mmioCount = 0;
                _exitPending = false;
                if (f.Vector == 14) _cr2 = _faultAddress;
                if (!DeliverEvent(f.Vector, f.HasErrorCode, f.ErrorCode, _rip, false))
                    return new VcpuExit(ExitReason.Shutdown, Detail: "triple fault");
                if (_exitPending) { _exitPending = false; return _exit; }
            }
            catch (MmioReadExit)
            {
                _exitPending = false;
                _mmioRip = _rip;
                _mmioReadPending = true;
                return _exit;
            }
            catch (EmuInternalError e)
            {
                return new VcpuExit(ExitReason.InternalError, Detail: e.Message);
            }
        }
    }

    private void CompletePendingIo()
    {
        if (!_ioPending) return;
        _ioPending = false;
        if (_rip != _ioRip) { _ioStringKind = 0; return; } // the VMM moved RIP: like KVM, do not complete
        if (_ioStringKind != 0) { CompleteStringIo(); return; }
        if (_ioIsIn)
        {
            ulong v = _completedValue;
            switch (_ioSize)
            {
                case 1: _r[0] = (_r[0] & ~0xffUL) | (v & 0xff); break;
                case 2: _r[0] = (_r[0] & ~0xffffUL) | (v & 0xffff); break;
                default: _r[0] = (uint)v; break;
            }
        }
        _rip = _ioNext;
    }

    private void CheckMapVersion()
    {
        int v = _vm.MapVersion;
        if (v != _mapVersion)
        {
            _mapVersion = v;
            FlushTlb();
            DropCodeCache();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once for a long time: skip tier-0/OSR
    private VcpuExit Loop()
    {
        int budget = KickInterval;
        while (true)
        {
            if (--budget == 0)
            {
                budget = KickInterval;
                if (_kick != 0) { _kick = 0; return new VcpuExit(ExitReason.Interrupted); }
                if (_vm.MapVersion != _mapVersion) CheckMapVersion();
                if (_flushRequest != 0) ApplyFlushRequests();
            }
            if (_irqAny != 0 && (_rflags & IF) != 0 && _retired - _shadowAt >= 2 && !TryDeliverInterrupt())
                return new VcpuExit(ExitReason.Shutdown, Detail: "triple fault");
            _mmioCursor = 0;
            ExecuteDecoded(ref Fetch());
            _retired++;
            if (_mmioCount != 0) { _mmioCount = 0; _mmioReadPending = false; }
            if (_exitPending)
            {
                _exitPending = false;
                return _exit;
            }
        }
    }

    /// <summary>Delivers the highest pending external vector; false on triple fault.</summary>
    private bool TryDeliverInterrupt()
    {
        for (int w = 3; w >= 0; w--)
        {
            long bits = Volatile.Read(ref _irq[w]);
            if (bits == 0) continue;
            int bit = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)bits);
            Interlocked.And(ref _irq[w], ~(1L << bit));
            RecomputeIrqAny();
            int vector = w * 64 + bit;
            return DeliverEvent(vector, false, 0, _rip, false, external: true);
        }
        RecomputeIrqAny();
        return true;
    }

    private void RecomputeIrqAny()
    {
        _irqAny = 0;
        for (int i = 0; i < 4; i++)
            if (Volatile.Read(ref _irq[i]) != 0) { _irqAny = 1; break; }
    }

    private bool InterruptPending => _irqAny != 0;

    private void RecordUnimplemented(Mnemonic m)
    {
        lock (_unimplemented)
            if (!_unimplemented.Contains(m)) _unimplemented.Add(m);
    }
}

/// <summary>A state the software CPU cannot represent (e.g. compatibility mode); reported as an InternalError exit.</summary>
internal sealed class EmuInternalError(string message) : Exception(message);
