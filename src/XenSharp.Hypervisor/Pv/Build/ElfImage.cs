using System.Buffers.Binary;
using System.Text;

namespace XenSharp.Hypervisor.Pv.Build;

/// <summary>A loadable segment (PT_LOAD with any of R/W/X set, as libelf counts them).</summary>
public sealed record ElfSegment(int Index, ulong Offset, ulong VirtualAddress, ulong PhysicalAddress, ulong FileSize, ulong MemorySize, uint Flags);

/// <summary>One ELF note as found in the file; <see cref="DescriptorOffset"/> is a file offset.</summary>
public sealed record ElfNote(string Name, uint Type, ulong DescriptorOffset, int DescriptorSize);

/// <summary>
/// A bounds-checked view of an ELF64 little-endian x86-64 executable: its loadable segments and notes.
/// Every header value is validated against the file before use, so a malformed image gives a
/// <see cref="PvBuildException"/> that names the bad field.
/// </summary>
public sealed class ElfImage
{
    public static ReadOnlySpan<byte> Magic => [0x7f, (byte)'E', (byte)'L', (byte)'F'];
    public const ushort MachineX86_64 = 62;
    public const uint PtLoad = 1, PtNote = 4, ShtNote = 7;
    public const uint PfX = 1, PfW = 2, PfR = 4;
    private const int EhdrSize = 64, PhdrSize = 56, ShdrSize = 64, NoteHeaderSize = 12;
    /// <summary>Bounds the work a hostile image can cause (libelf stops at a similar count).</summary>
    public const int MaxNotes = 1024, MaxHeaders = 4096;

    public ReadOnlyMemory<byte> File { get; }
    public ulong Entry { get; }
    public IReadOnlyList<ElfSegment> LoadSegments { get; }
    /// <summary>Lowest p_paddr and highest p_paddr + p_memsz over the loadable segments.</summary>
    public ulong PStart { get; }
    public ulong PEnd { get; }

    private readonly List<(ulong Offset, ulong Size, string What)> _noteSegments = [];
    private readonly List<(ulong Offset, ulong Size, string What)> _noteSections = [];

    private ElfImage(ReadOnlyMemory<byte> file)
    {
        File = file;
        var s = file.Span;
        if (s.Length < EhdrSize) throw new PvBuildException($"ELF image is truncated: {s.Length} bytes, its header needs {EhdrSize}");
        if (!s.StartsWith(Magic)) throw new PvBuildException("not an ELF image: bad magic");
        if (s[4] != 2) throw new PvBuildException($"ELF class {s[4]} is not ELFCLASS64: only 64-bit PV kernels are supported");
        if (s[5] != 1) throw new PvBuildException($"ELF data encoding {s[5]} is not little-endian");
        ushort machine = U16(s, 18);
        if (machine != MachineX86_64) throw new PvBuildException($"ELF e_machine {machine} is not x86-64 ({MachineX86_64})");
        Entry = U64(s, 24);
        ulong phoff = U64(s, 32), shoff = U64(s, 40);
        ushort phentsize = U16(s, 54), phnum = U16(s, 56), shentsize = U16(s, 58), shnum = U16(s, 60);

        if (phnum == 0) throw new PvBuildException("ELF image has no program headers");
        if (phentsize != PhdrSize) throw new PvBuildException($"ELF e_phentsize {phentsize} is not {PhdrSize}");
        CheckTable(s, phoff, phnum, PhdrSize, "program header table (e_phoff/e_phnum)");

        var loads = new List<ElfSegment>();
        ulong pstart = ulong.MaxValue, pend = 0;
        for (int i = 0; i < phnum; i++)
        {
            var ph = s.Slice((int)phoff + i * PhdrSize, PhdrSize);
            uint type = U32(ph, 0), flags = U32(ph, 4);
            ulong offset = U64(ph, 8), vaddr = U64(ph, 16), paddr = U64(ph, 24), filesz = U64(ph, 32), memsz = U64(ph, 40);
            if (type == PtNote)
            {
                if (offset == 0) continue; // some binutils leave p_offset 0 on note segments; libelf skips them too
                CheckRange(s, offset, filesz, $"PT_NOTE program header {i} (p_offset 0x{offset:x}, p_filesz 0x{filesz:x})");
                _noteSegments.Add((offset, filesz, $"PT_NOTE program header {i}"));
                continue;
            }
            if (type != PtLoad || (flags & (PfR | PfW | PfX)) == 0) continue;
            CheckRange(s, offset, filesz, $"PT_LOAD program header {i} (p_offset 0x{offset:x}, p_filesz 0x{filesz:x})");
            if (filesz > memsz) throw new PvBuildException($"PT_LOAD program header {i}: p_filesz 0x{filesz:x} exceeds p_memsz 0x{memsz:x}");
            if (paddr > ulong.MaxValue - memsz) throw new PvBuildException($"PT_LOAD program header {i}: p_paddr 0x{paddr:x} + p_memsz 0x{memsz:x} overflows");
            loads.Add(new ElfSegment(i, offset, vaddr, paddr, filesz, memsz, flags));
            pstart = Math.Min(pstart, paddr);
            pend = Math.Max(pend, paddr + memsz);
        }
        if (loads.Count == 0) throw new PvBuildException("ELF image has no loadable (PT_LOAD) segment");
        LoadSegments = loads;
        PStart = pstart;
        PEnd = pend;

        for (int a = 0; a < _noteSegments.Count; a++)
            for (int b = a + 1; b < _noteSegments.Count; b++)
            {
                var (oa, sa, wa) = _noteSegments[a];
                var (ob, sb, wb) = _noteSegments[b];
                if (sa > 0 && sb > 0 && oa < ob + sb && ob < oa + sa)
                    throw new PvBuildException($"{wa} [0x{oa:x}, +0x{sa:x}) and {wb} [0x{ob:x}, +0x{sb:x}) overlap: notes would be read twice");
            }

        // Section headers are only needed for the note fallback; a stripped or odd table is not fatal unless used.
        if (shnum != 0 && shoff != 0)
        {
            if (shentsize != ShdrSize) throw new PvBuildException($"ELF e_shentsize {shentsize} is not {ShdrSize}");
            CheckTable(s, shoff, shnum, ShdrSize, "section header table (e_shoff/e_shnum)");
            for (int i = 1; i < shnum; i++)
            {
                var sh = s.Slice((int)shoff + i * ShdrSize, ShdrSize);
                if (U32(sh, 4) != ShtNote) continue;
                ulong offset = U64(sh, 24), size = U64(sh, 32);
                CheckRange(s, offset, size, $"SHT_NOTE section {i} (sh_offset 0x{offset:x}, sh_size 0x{size:x})");
                _noteSections.Add((offset, size, $"SHT_NOTE section {i}"));
            }
        }
    }

    public static ElfImage Parse(ReadOnlyMemory<byte> file) => new(file);

    /// <summary>Notes of the PT_NOTE segments.</summary>
    public IReadOnlyList<ElfNote> SegmentNotes() => ReadNotes(_noteSegments);

    /// <summary>Notes of the SHT_NOTE sections (the fallback when the segments carry no Xen note).</summary>
    public IReadOnlyList<ElfNote> SectionNotes() => ReadNotes(_noteSections);

    public ReadOnlySpan<byte> Descriptor(ElfNote note) => File.Span.Slice((int)note.DescriptorOffset, note.DescriptorSize);

    private List<ElfNote> ReadNotes(List<(ulong Offset, ulong Size, string What)> areas)
    {
        var s = File.Span;
        var notes = new List<ElfNote>();
        foreach (var (start, size, what) in areas)
        {
            ulong at = start, end = start + size;
            while (at < end)
            {
                if (end - at < NoteHeaderSize)
                    throw new PvBuildException($"{what}: note header at file offset 0x{at:x} runs past the end of the notes (0x{end:x})");
                uint namesz = U32(s, (int)at), descsz = U32(s, (int)at + 4), type = U32(s, (int)at + 8);
                ulong nameAt = at + NoteHeaderSize;
                ulong descAt = nameAt + Align4(namesz);
                ulong next = descAt + Align4(descsz);
                if (descAt > end || descAt + descsz > end || next > end + 3)
                    throw new PvBuildException($"{what}: note at file offset 0x{at:x} (namesz {namesz}, descsz {descsz}, type {type}) runs past the end of the notes (0x{end:x})");
                var name = s.Slice((int)nameAt, (int)namesz);
                int nul = name.IndexOf((byte)0);
                notes.Add(new ElfNote(Encoding.ASCII.GetString(nul < 0 ? name : name[..nul]), type, descAt, (int)descsz));
                if (notes.Count > MaxNotes) throw new PvBuildException($"ELF image has more than {MaxNotes} notes");
                at = Math.Min(next, end);
            }
        }
        return notes;
    }

    private static ulong Align4(uint v) => ((ulong)v + 3) & ~3UL;

    private static void CheckTable(ReadOnlySpan<byte> s, ulong offset, int count, int entrySize, string what)
    {
        if (count > MaxHeaders) throw new PvBuildException($"ELF {what} has {count} entries, more than {MaxHeaders}");
        CheckRange(s, offset, (ulong)count * (ulong)entrySize, $"ELF {what} at 0x{offset:x}");
    }

    private static void CheckRange(ReadOnlySpan<byte> s, ulong offset, ulong length, string what)
    {
        if (offset > (ulong)s.Length || length > (ulong)s.Length - offset)
            throw new PvBuildException($"{what} lies outside the {s.Length}-byte file");
    }

    private static ushort U16(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt16LittleEndian(s[at..]);
    private static uint U32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);
    private static ulong U64(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt64LittleEndian(s[at..]);
}
