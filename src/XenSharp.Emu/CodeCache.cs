using System.Runtime.CompilerServices;
using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>
/// Decoded-instruction cache, one <see cref="CodePage"/> per linear code page. A page stays valid while its frame's
/// generation word is unchanged (guest writes bump it) and, once per Run, while its bytes equal the snapshot taken
/// at decode time (catches host writes through GuestMemory between runs).
/// </summary>
public sealed unsafe partial class EmuVcpu
{
    private sealed class CodePage
    {
        public ulong Lin, Pa;
        public byte* Host;
        public int* Gen;
        public int GenValue;
        public int VerifiedRun;
        public readonly byte[] Snapshot = new byte[4096];
        public readonly short[] Index = new short[4096]; // 1-based index into Insns, 0 = not decoded
        public Decoded[] Insns = new Decoded[64];
        public int Count;
    }

    private sealed class PtrCodeReader : CodeReader
    {
        public byte* P;
        public int Len, Pos;
        public override int ReadByte() => Pos < Len ? P[Pos++] : -1;
    }

    private const ulong NoPage = 0x8000_0000_0000_0001UL;
    private const int MaxCodePages = 2048;

    private readonly PtrCodeReader _reader = new();
    private readonly Decoder _decoder;
    private readonly Dictionary<ulong, CodePage> _codePages = [];
    private ulong _curLin = NoPage;
    private CodePage? _cur;
    private int _runId;
    private Decoded _crossPage;
    private readonly byte[] _crossBytes = new byte[16];

    /// <summary>
    /// Drops every cached translation, as a CR3 reload would. The VMM calls it after writing guest page tables from
    /// the host; <see cref="SetSpecialRegisters"/> does it too.
    /// </summary>
    public void InvalidateTlb() => Interlocked.Or(ref _flushRequest, FlushTlbRequest);

    /// <summary>
    /// Forgets every decoded instruction: call after the host rewrote guest code while the vCPU may be running.
    /// Thread-safe: the vCPU applies it at its next instruction-batch boundary (and at the start of Run).
    /// </summary>
    public void InvalidateCodeCache() => Interlocked.Or(ref _flushRequest, FlushCodeRequest);

    private const int FlushTlbRequest = 1, FlushCodeRequest = 2;
    private int _flushRequest;

    private void ApplyFlushRequests()
    {
        int req = Interlocked.Exchange(ref _flushRequest, 0);
        if ((req & FlushTlbRequest) != 0) FlushTlb();
        if ((req & FlushCodeRequest) != 0) DropCodeCache();
    }

    private void DropCodeCache()
    {
        _codePages.Clear();
        _cur = null;
        _curLin = NoPage;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref Decoded Fetch()
    {
        ulong rip = _rip;
        var cp = _cur;
        if ((rip & ~0xfffUL) == _curLin && cp!.GenValue == *cp.Gen)
        {
            int ix = cp.Index[rip & 0xfff];
            if (ix != 0) return ref cp.Insns[ix - 1];
        }
        return ref FetchSlow(rip);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ref Decoded FetchSlow(ulong rip)
    {
        if (_cs.L == 0) throw new EmuInternalError($"CS 0x{_cs.Selector:x} is not a 64-bit code segment: only long mode is implemented");
        ulong lin = rip & ~0xfffUL;
        if (lin != _curLin || _cur is null || _cur.GenValue != *_cur.Gen)
        {
            _cur = GetCodePage(lin);
            _curLin = lin;
        }
        var cp = _cur;
        int off = (int)(rip & 0xfff);
        int ix = cp.Index[off];
        if (ix != 0) return ref cp.Insns[ix - 1];

        _reader.P = cp.Host + off;
        _reader.Len = 4096 - off;
        _reader.Pos = 0;
        _decoder.IP = rip;
        _decoder.Decode(out var ins);
        if (_decoder.LastError == DecoderError.NoMoreBytes)
            return ref DecodeCrossPage(rip, cp, off);
        if (cp.Count == cp.Insns.Length) Array.Resize(ref cp.Insns, cp.Insns.Length * 2);
        if (cp.Count >= short.MaxValue) { DropCodeCache(); return ref FetchSlow(rip); }
        cp.Insns[cp.Count].I = ins;
        Classify(ref cp.Insns[cp.Count]);
        cp.Index[off] = (short)(++cp.Count);
        return ref cp.Insns[cp.Count - 1];
    }

    /// <summary>An instruction that straddles two pages: decoded each time, never cached.</summary>
    private ref Decoded DecodeCrossPage(ulong rip, CodePage cp, int off)
    {
        int first = 4096 - off;
        var t2 = Translate(rip + (ulong)first, AccFetch, _cpl == 3);
        if (t2.Host is null) throw new EmuInternalError($"instruction fetch at 0x{rip + (ulong)first:x} from MMIO");
        for (int i = 0; i < 16; i++)
            _crossBytes[i] = i < first ? cp.Host[off + i] : t2.Host[i - first];
        fixed (byte* p = _crossBytes)
        {
            _reader.P = p;
            _reader.Len = 15;
            _reader.Pos = 0;
            _decoder.IP = rip;
            _decoder.Decode(out _crossPage.I);
        }
        Classify(ref _crossPage);
        return ref _crossPage;
    }

    private CodePage GetCodePage(ulong lin)
    {
        Translation t;
        ref var te = ref _tlb[(int)(lin >> 12) & (TlbSize - 1)];
        if (te.Tag == (lin >> 12) + 1 && (te.Perm & _needFetch) != 0)
            t = new Translation { Host = te.Host, Pa = te.Pa, Gen = te.Gen }; // no page walk when jumping between cached pages
        else
            t = Translate(lin, AccFetch, _cpl == 3);
        if (t.Host is null) throw new EmuInternalError($"instruction fetch at 0x{lin:x} from guest-physical 0x{t.Pa:x}, which has no RAM");
        if (_codePages.TryGetValue(lin, out var cp) && cp.Pa == t.Pa && cp.Host == t.Host && cp.GenValue == *cp.Gen)
        {
            if (cp.VerifiedRun == _runId) return cp;
            if (new ReadOnlySpan<byte>(cp.Host, 4096).SequenceEqual(cp.Snapshot)) { cp.VerifiedRun = _runId; return cp; }
        }
        if (_codePages.Count >= MaxCodePages) _codePages.Clear();
        // Mark the frame as holding code (odd generation) before snapshotting, so a racing write bumps it.
        int g;
        while (true)
        {
            g = *t.Gen;
            if ((g & 1) != 0) break;
            if (Interlocked.CompareExchange(ref *t.Gen, g + 1, g) == g) { g++; break; }
        }
        cp = new CodePage { Lin = lin, Pa = t.Pa, Host = t.Host, Gen = t.Gen, GenValue = g, VerifiedRun = _runId };
        new ReadOnlySpan<byte>(t.Host, 4096).CopyTo(cp.Snapshot);
        _codePages[lin] = cp;
        return cp;
    }
}
