using XenSharp.Accel;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>The guest's architectural state as the CPU half handles it: GPRs, RIP/RFLAGS/RSP, and CS/SS selectors.</summary>
public struct GuestContext
{
    public VcpuRegisters Regs;
    public ushort Cs, Ss;

    public readonly int Cpl => Cs & 3;
}

/// <summary>A page-walk failure: the guest pointer is not mapped (or not writable) in the current tables.</summary>
public sealed class GuestPageFaultException(ulong va, bool write) : Exception($"guest address 0x{va:x} is not {(write ? "writably " : "")}mapped")
{
    public ulong Address { get; } = va;
    public bool Write { get; } = write;
}

/// <summary>
/// Reads and writes guest-virtual memory by walking the guest's 4-level tables in guest RAM (identity p2m), from C#.
/// Only data pages are written this way; page-table pages are changed through the resume stub.
/// </summary>
public sealed class GuestPageWalker(GuestMemory ram, Func<ulong, (GuestMemory Mem, ulong Offset)?>? specialFrame = null)
{
    public GuestMemory Ram => ram;

    /// <summary>Translates <paramref name="va"/> with the L4 at <paramref name="cr3"/> to a guest-physical address.</summary>
    public bool TryTranslate(ulong cr3, ulong va, bool write, out ulong gpa)
    {
        gpa = 0;
        ulong table = cr3 & X86.PteAddressMask;
        for (int level = 3; level >= 0; level--)
        {
            int idx = (int)((va >> (12 + 9 * level)) & 511);
            if (!TryReadPhys(table + (ulong)idx * 8, out ulong e)) return false;
            if ((e & X86.PtePresent) == 0) return false;
            if (write && (e & X86.PteRw) == 0) return false;
            if (level > 0 && level < 3 && (e & X86.PtePse) != 0)
            {
                ulong size = 1UL << (12 + 9 * level);
                gpa = (e & X86.PteAddressMask & ~(size - 1)) | (va & (size - 1));
                return true;
            }
            table = e & X86.PteAddressMask;
        }
        gpa = table | (va & 0xfff);
        return true;
    }

    private bool TryReadPhys(ulong gpa, out ulong value)
    {
        value = 0;
        if (ram.Contains(gpa, 8)) { value = ram.ReadUInt64(gpa); return true; }
        if (specialFrame?.Invoke(gpa >> 12) is { } s) { value = s.Mem.ReadUInt64(s.Offset + (gpa & 0xfff)); return true; }
        return false;
    }

    private Span<byte> PhysSpan(ulong gpa, int len)
    {
        if (ram.Contains(gpa, (ulong)len)) return ram.Span(gpa, len);
        if (specialFrame?.Invoke(gpa >> 12) is { } s) return s.Mem.Span(s.Offset + (gpa & 0xfff), len);
        throw new GuestMemoryException(gpa, len, ram.Size);
    }

    public void Read(ulong cr3, ulong va, Span<byte> into)
    {
        int done = 0;
        while (done < into.Length)
        {
            ulong a = va + (ulong)done;
            int chunk = (int)Math.Min((ulong)(into.Length - done), 4096 - (a & 0xfff));
            if (!TryTranslate(cr3, a, false, out ulong gpa)) throw new GuestPageFaultException(a, false);
            PhysSpan(gpa, chunk).CopyTo(into[done..]);
            done += chunk;
        }
    }

    public void Write(ulong cr3, ulong va, ReadOnlySpan<byte> data)
    {
        int done = 0;
        while (done < data.Length)
        {
            ulong a = va + (ulong)done;
            int chunk = (int)Math.Min((ulong)(data.Length - done), 4096 - (a & 0xfff));
            if (!TryTranslate(cr3, a, true, out ulong gpa)) throw new GuestPageFaultException(a, true);
            data.Slice(done, chunk).CopyTo(PhysSpan(gpa, chunk));
            done += chunk;
        }
    }

    public ulong ReadUInt64(ulong cr3, ulong va) { Span<byte> b = stackalloc byte[8]; Read(cr3, va, b); return BitConverter.ToUInt64(b); }
    public void WriteUInt64(ulong cr3, ulong va, ulong v) { Span<byte> b = stackalloc byte[8]; BitConverter.TryWriteBytes(b, v); Write(cr3, va, b); }
}
