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
        public Instruction[] Insns = new Instruction[64];
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
    private Instruction _crossPage;
    private readonly byte[] _crossBytes = new byte[16];

    /// <summary>Forgets every decoded instruction: call after the host rewrote guest code during a run.</summary>
    public void InvalidateCodeCache()
    {
        _codePages.Clear();
        _cur = null;
        _curLin = NoPage;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref Instruction Fetch()
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

    private ref Instruction FetchSlow(ulong rip)
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
        if (cp.Count >= short.MaxValue) { InvalidateCodeCache(); return ref FetchSlow(rip); }
        cp.Insns[cp.Count] = ins;
        cp.Index[off] = (short)(++cp.Count);
        return ref cp.Insns[cp.Count - 1];
    }

    /// <summary>An instruction that straddles two pages: decoded each time, never cached.</summary>
    private ref Instruction DecodeCrossPage(ulong rip, CodePage cp, int off)
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
            _decoder.Decode(out _crossPage);
        }
        return ref _crossPage;
    }

    private CodePage GetCodePage(ulong lin)
    {
        var t = Translate(lin, AccFetch, _cpl == 3);
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
