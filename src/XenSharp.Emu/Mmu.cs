using System.Runtime.CompilerServices;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>Linear→physical translation (4-level paging), the TLB, and guest memory access with MMIO exits.</summary>
public sealed unsafe partial class EmuVcpu
{
    private struct TlbEntry
    {
        public ulong Tag;   // (linear >> 12) + 1; 0 = empty
        public byte* Host;  // host address of the 4 KiB frame
        public int* Gen;    // the frame's code-generation word
        public ulong Pa;
        public int Perm;
    }

    private const int TlbSize = 512;
    // Permission bits cached per entry; write bits only once the PTE's dirty bit is set.
    private const int PermSR = 1, PermUR = 2, PermSW = 4, PermUW = 8, PermSX = 16, PermUX = 32;
    private const int AccRead = 0, AccWrite = 1, AccFetch = 2;

    private readonly TlbEntry[] _tlb;
    private int _needRead, _needWrite, _needFetch;
    private ulong _faultAddress;

    private void FlushTlb()
    {
        Array.Clear(_tlb);
        _curLin = NoPage;
    }

    private void FlushTlbPage(ulong la)
    {
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if (e.Tag == (la >> 12) + 1) e.Tag = 0;
        _curLin = NoPage;
    }

    private static bool IsCanonical(ulong a) => (ulong)(((long)a << 16) >> 16) == a;

    private bool PagingOn => (_cr0 & X86.Cr0Pg) != 0;

    /// <summary>Result of a slow-path translation.</summary>
    private struct Translation
    {
        public byte* Host; // null when the physical address has no RAM (or a write hits a read-only slot)
        public ulong Pa;
        public int* Gen;
    }

    /// <summary>Walks the page tables for one access, raising #PF/#GP; fills the TLB for RAM pages.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private Translation Translate(ulong la, int access, bool user)
    {
        if (!IsCanonical(la)) throw GuestFault.Gp(0);
        ulong pa;
        int perm;
        if (!PagingOn)
        {
            pa = la & ~0xfffUL;
            perm = PermSR | PermUR | PermSW | PermUW | PermSX | PermUX;
        }
        else
        {
            bool nxe = (_efer & X86.EferNx) != 0;
            ulong table = _cr3 & X86.PteAddressMask;
            bool u = true, w = true, nx = false;
            long* entries = stackalloc long[4];
            int n = 0;
            ulong pageMask = 0xfff;
            ulong leaf = 0;
            for (int level = 4; level >= 1; level--)
            {
                int shift = 12 + 9 * (level - 1);
                ulong ea = table + ((la >> shift) & 511) * 8;
                long* pe = (long*)_vm.PhysPtr(ea, 8);
                ulong e = pe is null ? 0 : (ulong)Volatile.Read(ref *pe);
                if ((e & X86.PtePresent) == 0) throw PageFault(la, access, user, present: false, rsvd: false);
                bool rsvd = (!nxe && (e & X86.PteNx) != 0) || (level == 4 && (e & X86.PtePse) != 0);
                if (level == 3 && (e & X86.PtePse) != 0 && (e & 0x3fffe000UL) != 0) rsvd = true;
                if (level == 2 && (e & X86.PtePse) != 0 && (e & 0x1fe000UL) != 0) rsvd = true;
                if (rsvd) throw PageFault(la, access, user, present: true, rsvd: true);
                u &= (e & X86.PteUser) != 0;
                w &= (e & X86.PteRw) != 0;
                nx |= nxe && (e & X86.PteNx) != 0;
                entries[n++] = (long)pe;
                if (level == 1 || (level <= 3 && (e & X86.PtePse) != 0))
                {
                    pageMask = (1UL << shift) - 1;
                    leaf = e;
                    break;
                }
                table = e & X86.PteAddressMask;
            }
            bool wp = (_cr0 & X86.Cr0Wp) != 0;
            bool ok = access switch
            {
                AccWrite => user ? (u && w) : (w || !wp),
                AccFetch => !nx && (!user || u),
                _ => !user || u,
            };
            if (!ok) throw PageFault(la, access, user, present: true, rsvd: false);
            // Accessed on every level, dirty on the leaf for writes: atomically, other vCPUs share the tables.
            for (int i = 0; i < n; i++)
            {
                long* pe = (long*)entries[i];
                if ((*pe & (long)X86.PteAccessed) == 0) Interlocked.Or(ref *pe, (long)X86.PteAccessed);
            }
            bool dirty = (leaf & X86.PteDirty) != 0;
            if (access == AccWrite && !dirty)
            {
                Interlocked.Or(ref *(long*)entries[n - 1], (long)X86.PteDirty);
                dirty = true;
            }
            pa = ((leaf & X86.PteAddressMask) & ~pageMask) | (la & pageMask & ~0xfffUL);
            perm = PermSR | (u ? PermUR : 0) | (!nx ? PermSX : 0) | (u && !nx ? PermUX : 0);
            if (dirty)
                perm |= ((w || !wp) ? PermSW : 0) | (u && w ? PermUW : 0);
        }
        var t = new Translation { Pa = pa };
        var slot = _vm.FindSlot(pa);
        if (slot is null) return t;
        ulong off = pa - slot.Gpa;
        t.Gen = slot.Gen + (off >> 12);
        if (slot.ReadOnly)
        {
            perm &= ~(PermSW | PermUW);
            if (access == AccWrite) return t; // a write to ROM is an MMIO exit, as on KVM
        }
        t.Host = slot.Host + off;
        ref var te = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        te.Tag = (la >> 12) + 1;
        te.Host = t.Host;
        te.Gen = t.Gen;
        te.Pa = pa;
        te.Perm = perm;
        return t;
    }

    private GuestFault PageFault(ulong la, int access, bool user, bool present, bool rsvd)
    {
        _faultAddress = la;
        uint err = (present ? 1u : 0) | (access == AccWrite ? 2u : 0) | (user ? 4u : 0) | (rsvd ? 8u : 0)
            | (access == AccFetch && (_efer & X86.EferNx) != 0 ? 16u : 0);
        return GuestFault.Pf(err);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Load(byte* p, int size) => size switch
    {
        1 => *p,
        2 => Unsafe.ReadUnaligned<ushort>(p),
        4 => Unsafe.ReadUnaligned<uint>(p),
        _ => Unsafe.ReadUnaligned<ulong>(p),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(byte* p, int size, ulong v)
    {
        switch (size)
        {
            case 1: *p = (byte)v; break;
            case 2: Unsafe.WriteUnaligned(p, (ushort)v); break;
            case 4: Unsafe.WriteUnaligned(p, (uint)v); break;
            default: Unsafe.WriteUnaligned(p, v); break;
        }
    }

    /// <summary>A guest write to a frame that holds cached code: bump its generation so every vCPU re-decodes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void NoteWrite(int* gen)
    {
        int g = *gen;
        if ((g & 1) != 0) Interlocked.CompareExchange(ref *gen, g + 1, g);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong ReadMem(ulong la, int size)
    {
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if (e.Tag == (la >> 12) + 1 && (e.Perm & _needRead) != 0 && (la & 0xfff) <= (ulong)(4096 - size))
            return Load(e.Host + (la & 0xfff), size);
        return ReadSlow(la, size, _cpl == 3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteMem(ulong la, int size, ulong v)
    {
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if (e.Tag == (la >> 12) + 1 && (e.Perm & _needWrite) != 0 && (la & 0xfff) <= (ulong)(4096 - size))
        {
            NoteWrite(e.Gen);
            Store(e.Host + (la & 0xfff), size, v);
            return;
        }
        WriteSlow(la, size, v, _cpl == 3);
    }

    /// <summary>Implicit supervisor accesses (descriptor tables, TSS, exception frames).</summary>
    private ulong ReadSys(ulong la, int size) => ReadSlow(la, size, false);
    private void WriteSys(ulong la, int size, ulong v) => WriteSlow(la, size, v, false);

    /// <summary>Host pointer for a writable access that fits in one RAM page (for read-modify-write and LOCK), else null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private byte* TranslateWritePtr(ulong la, int size)
    {
        ref var e = ref _tlb[(int)(la >> 12) & (TlbSize - 1)];
        if ((la & 0xfff) > (ulong)(4096 - size)) return null;
        if (!(e.Tag == (la >> 12) + 1 && (e.Perm & _needWrite) != 0))
        {
            var t = Translate(la, AccWrite, _cpl == 3);
            if (t.Host is null) return null;
        }
        NoteWrite(e.Gen);
        return e.Host + (la & 0xfff);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ulong ReadSlow(ulong la, int size, bool user)
    {
        if ((la & 0xfff) <= (ulong)(4096 - size))
        {
            var t = Translate(la, AccRead, user);
            if (t.Host is not null) return Load(t.Host + (la & 0xfff), size);
            return MmioRead(t.Pa | (la & 0xfff), size);
        }
        // Crosses a page: translate both pages before touching either.
        int first = (int)(4096 - (la & 0xfff));
        var t1 = Translate(la, AccRead, user);
        var t2 = Translate(la + (ulong)first, AccRead, user);
        if (t1.Host is null || t2.Host is null) return MmioRead(t1.Pa | (la & 0xfff), size);
        ulong v = 0;
        for (int i = 0; i < size; i++)
        {
            byte b = i < first ? t1.Host[(la & 0xfff) + (ulong)i] : t2.Host[i - first];
            v |= (ulong)b << (8 * i);
        }
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteSlow(ulong la, int size, ulong v, bool user)
    {
        if ((la & 0xfff) <= (ulong)(4096 - size))
        {
            var t = Translate(la, AccWrite, user);
            if (t.Host is not null) { NoteWrite(t.Gen); Store(t.Host + (la & 0xfff), size, v); }
            else MmioWrite(t.Pa | (la & 0xfff), size, v);
            return;
        }
        int first = (int)(4096 - (la & 0xfff));
        var t1 = Translate(la, AccWrite, user);
        var t2 = Translate(la + (ulong)first, AccWrite, user);
        if (t1.Host is null || t2.Host is null) { MmioWrite(t1.Pa | (la & 0xfff), size, v); return; }
        NoteWrite(t1.Gen);
        NoteWrite(t2.Gen);
        for (int i = 0; i < size; i++)
        {
            byte b = (byte)(v >> (8 * i));
            if (i < first) t1.Host[(la & 0xfff) + (ulong)i] = b;
            else t2.Host[i - first] = b;
        }
    }

    /// <summary>An MMIO read: replay a value the VMM already supplied for this instruction, or exit and replay later.</summary>
    private ulong MmioRead(ulong gpa, int size)
    {
        if (_mmioCursor < _mmioCount) return _mmioLog[_mmioCursor++] & SizeMask(size);
        _exit = new VcpuExit(ExitReason.Mmio, gpa, size, false);
        throw MmioReadExit.Instance;
    }

    /// <summary>An MMIO write: the instruction completes and the run loop exits after it retires (KVM's order).</summary>
    private void MmioWrite(ulong gpa, int size, ulong v)
    {
        if (_exitPending) throw new EmuInternalError($"instruction at 0x{_rip:x} made two MMIO writes");
        _exit = new VcpuExit(ExitReason.Mmio, gpa, size, true, v & SizeMask(size));
        _exitPending = true;
    }

    private static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
}
