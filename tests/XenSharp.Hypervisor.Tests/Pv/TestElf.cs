using System.Buffers.Binary;
using System.Text;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.Pv;

/// <summary>Writes small ELF64 x86-64 images with Xen notes by hand, so that every header field can be bent for malformed-image tests.</summary>
internal sealed class TestElf
{
    public const ulong LinuxVirtBase = 0xffff_ffff_8000_0000;
    public const ulong LinuxInitP2m = 0x80_0000_0000;

    public ulong Entry = LinuxVirtBase + 0x100_0000 + 0x40;
    public ulong PAddr = 0x100_0000;            // 16 MiB, as Linux links it
    public ulong VAddr = LinuxVirtBase + 0x100_0000;
    public ulong MemSize = 0x20_0000;           // 2 MiB image, most of it bss
    public byte[] Text = Enumerable.Range(0, 0x3000).Select(i => (byte)(i * 7 + 1)).ToArray();
    public List<(uint Type, byte[] Desc, string Name)> Notes = [];
    public bool NotesInSegment = true;
    public bool NotesInSection = false;
    /// <summary>Adds a second PT_NOTE covering [notes + Skip, +Size).</summary>
    public (int Skip, int Size)? SecondNoteSegment;
    /// <summary>Hooks to corrupt the finished image: (file, offsets of interest).</summary>
    public Action<byte[], Layout>? Corrupt;

    public sealed record Layout(int PhOff, int PhNum, int NoteOffset, int NoteSize, int TextOffset, int ShOff);

    public static TestElf Linux(bool hypercallPage = false)
    {
        var e = new TestElf();
        e.Str(XenElfNote.GuestOs, "linux");
        e.Str(XenElfNote.GuestVersion, "2.6");
        e.Str(XenElfNote.XenVersion, "xen-3.0");
        e.Num(XenElfNote.VirtBase, LinuxVirtBase);
        e.Num(XenElfNote.PaddrOffset, 0);
        e.Num(XenElfNote.Entry, e.Entry);
        if (hypercallPage) e.Num(XenElfNote.HypercallPage, e.VAddr + 0x2000);
        e.Str(XenElfNote.Features, "!writable_page_tables|pae_pgdir_above_4gb");
        e.Notes.Add((XenElfNote.SupportedFeatures, BitConverter.GetBytes((1u << XenFeature.WritablePageTables) | (1u << XenFeature.Dom0)), "Xen"));
        e.Str(XenElfNote.PaeMode, "yes");
        e.Str(XenElfNote.Loader, "generic");
        e.Notes.Add((XenElfNote.L1MfnValid, [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], "Xen"));
        e.Num(XenElfNote.SuspendCancel, 1, 4);
        e.Num(XenElfNote.InitP2m, LinuxInitP2m);
        e.Num(XenElfNote.ModStartPfn, 1, 4);
        e.Num(XenElfNote.HvStartLow, 0xffff_8000_0000_0000);
        e.Notes.Add((1, [1, 2, 3, 4], "GNU")); // a foreign note the reader must skip
        return e;
    }

    public TestElf Str(uint type, string value) { Notes.Add((type, Encoding.ASCII.GetBytes(value + "\0"), "Xen")); return this; }
    public TestElf Num(uint type, ulong value, int size = 8)
    {
        var b = new byte[size];
        for (int i = 0; i < size; i++) b[i] = (byte)(value >> (8 * i));
        Notes.Add((type, b, "Xen"));
        return this;
    }
    public TestElf Without(uint type) { Notes.RemoveAll(n => n.Type == type && n.Name == "Xen"); return this; }
    public TestElf Replace(uint type, string value) => Without(type).Str(type, value);

    private byte[] NoteBytes()
    {
        var ms = new MemoryStream();
        Span<byte> h = stackalloc byte[12];
        foreach (var (type, desc, name) in Notes)
        {
            var n = Encoding.ASCII.GetBytes(name + "\0");
            BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)n.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)desc.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], type);
            ms.Write(h);
            ms.Write(n); ms.Write(new byte[(4 - n.Length % 4) % 4]);
            ms.Write(desc); ms.Write(new byte[(4 - desc.Length % 4) % 4]);
        }
        return ms.ToArray();
    }

    public byte[] Build()
    {
        var notes = NoteBytes();
        int phnum = (NotesInSegment ? 2 : 1) + (SecondNoteSegment != null ? 1 : 0);
        int phoff = 64;
        int noteOff = Align(phoff + phnum * 56, 16);
        int textOff = Align(noteOff + notes.Length, 4096);
        int shoff = Align(textOff + Text.Length, 16);
        int shnum = NotesInSection ? 2 : 0;
        var f = new byte[shoff + shnum * 64];
        // e_ident
        f[0] = 0x7f; f[1] = (byte)'E'; f[2] = (byte)'L'; f[3] = (byte)'F'; f[4] = 2; f[5] = 1; f[6] = 1;
        W16(f, 16, 2); W16(f, 18, 62); W32(f, 20, 1);
        W64(f, 24, Entry); W64(f, 32, (ulong)phoff); W64(f, 40, shnum > 0 ? (ulong)shoff : 0);
        W16(f, 52, 64); W16(f, 54, 56); W16(f, 56, (ushort)phnum); W16(f, 58, 64); W16(f, 60, (ushort)shnum); W16(f, 62, 0);
        // PT_LOAD
        int p = phoff;
        W32(f, p, 1); W32(f, p + 4, 7); W64(f, p + 8, (ulong)textOff); W64(f, p + 16, VAddr); W64(f, p + 24, PAddr);
        W64(f, p + 32, (ulong)Text.Length); W64(f, p + 40, MemSize); W64(f, p + 48, 0x200000);
        if (NotesInSegment)
        {
            p += 56;
            W32(f, p, 4); W32(f, p + 4, 4); W64(f, p + 8, (ulong)noteOff); W64(f, p + 32, (ulong)notes.Length); W64(f, p + 40, (ulong)notes.Length); W64(f, p + 48, 4);
        }
        if (SecondNoteSegment is { } second)
        {
            p += 56;
            W32(f, p, 4); W32(f, p + 4, 4); W64(f, p + 8, (ulong)(noteOff + second.Skip)); W64(f, p + 32, (ulong)second.Size); W64(f, p + 48, 4);
        }
        if (NotesInSection)
        {
            int s = shoff + 64; // section 0 is the null section
            W32(f, s + 4, 7); W64(f, s + 24, (ulong)noteOff); W64(f, s + 32, (ulong)notes.Length); W64(f, s + 48, 4);
        }
        notes.CopyTo(f, noteOff);
        Text.CopyTo(f, textOff);
        Corrupt?.Invoke(f, new Layout(phoff, phnum, noteOff, notes.Length, textOff, shoff));
        return f;
    }

    private static int Align(int v, int a) => (v + a - 1) / a * a;
    public static void W16(byte[] f, int at, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(at), v);
    public static void W32(byte[] f, int at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(at), v);
    public static void W64(byte[] f, int at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(f.AsSpan(at), v);
}
