using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Build;

namespace XenSharp.Hypervisor.Tests.Pv;

/// <summary>Hostile or broken images: each must fail with a PvBuildException that says what is wrong.</summary>
public sealed class MalformedElfTests
{
    private static string Refused(byte[] image, uint offered = PvBuildOptions.DefaultOfferedFeatures) =>
        Assert.Throws<PvBuildException>(() => XenGuestInfo.FromElf(ElfImage.Parse(image), offered)).Message;

    private static string Refused(TestElf elf, uint offered = PvBuildOptions.DefaultOfferedFeatures) => Refused(elf.Build(), offered);

    [Fact]
    public void TruncatedElfHeader() =>
        Assert.Contains("truncated", Refused(TestElf.Linux().Build()[..40]));

    [Fact]
    public void ProgramHeaderTableOutsideTheFile()
    {
        var e = TestElf.Linux();
        e.Corrupt = (f, l) => TestElf.W16(f, 56, 5000); // e_phnum
        Assert.Contains("more than", Refused(e));
        e.Corrupt = (f, l) => TestElf.W64(f, 32, (ulong)f.Length - 60); // e_phoff
        Assert.Contains("program header table", Refused(e));
        e.Corrupt = (f, l) => f.AsSpan(l.PhOff + 56).Clear(); // keep only what fits: cut inside the second header
        Assert.Throws<PvBuildException>(() => XenGuestInfo.FromElf(ElfImage.Parse(e.Build()[..(64 + 80)]), 0));
    }

    [Fact]
    public void LoadSegmentOffsetOutOfRange()
    {
        var e = TestElf.Linux();
        e.Corrupt = (f, l) => TestElf.W64(f, l.PhOff + 8, 0xffff_ffff_ffff_f000); // p_offset
        var msg = Refused(e);
        Assert.Contains("PT_LOAD program header 0", msg);
        Assert.Contains("outside", msg);
        e.Corrupt = (f, l) => TestElf.W64(f, l.PhOff + 32, (ulong)f.Length); // p_filesz
        Assert.Contains("outside", Refused(e));
        e.Corrupt = (f, l) => TestElf.W64(f, l.PhOff + 40, 0x10); // p_memsz < p_filesz
        Assert.Contains("exceeds p_memsz", Refused(e));
        e.Corrupt = (f, l) => TestElf.W64(f, l.PhOff + 24, ulong.MaxValue - 5); // p_paddr + p_memsz overflows
        Assert.Contains("overflows", Refused(e));
    }

    [Fact]
    public void NoteSegmentOutOfRange()
    {
        var e = TestElf.Linux();
        e.Corrupt = (f, l) => TestElf.W64(f, l.PhOff + 56 + 32, 0x1_0000_0000); // PT_NOTE p_filesz
        var msg = Refused(e);
        Assert.Contains("PT_NOTE program header 1", msg);
        Assert.Contains("outside", msg);
    }

    [Fact]
    public void NoteRunningPastItsSegment()
    {
        var e = TestElf.Linux();
        e.Corrupt = (f, l) => TestElf.W32(f, l.NoteOffset + 4, 0x7fff_0000); // first note's descsz
        Assert.Contains("runs past the end of the notes", Refused(e));
        e.Corrupt = (f, l) => TestElf.W64(f, l.PhOff + 56 + 32, (ulong)l.NoteSize - 5); // segment ends inside the last note
        Assert.Contains("runs past the end of the notes", Refused(e));
    }

    [Fact]
    public void OverlappingNoteSegments()
    {
        // A second PT_NOTE that starts inside the first one's range.
        var e = TestElf.Linux();
        e.SecondNoteSegment = (20, 24);
        var msg = Refused(e);
        Assert.Contains("PT_NOTE program header 1", msg);
        Assert.Contains("PT_NOTE program header 2", msg);
        Assert.Contains("overlap", msg);
    }

    [Fact]
    public void ConflictingDuplicateNote()
    {
        var e = TestElf.Linux().Num(XenElfNote.VirtBase, 0xffff_ffff_c000_0000);
        Assert.Contains("VirtBase appears twice", Refused(e));
    }

    [Fact]
    public void MissingEntryFallsBackToEEntryAndIsBoundsChecked()
    {
        var e = TestElf.Linux().Without(XenElfNote.Entry);
        var g = XenGuestInfo.FromElf(ElfImage.Parse(e.Build()), PvBuildOptions.DefaultOfferedFeatures);
        Assert.Equal(e.Entry, g.VirtEntry);
        e.Entry = 0;
        var msg = Refused(e);
        Assert.Contains("entry 0x0", msg);
        Assert.Contains("out of bounds", msg);
    }

    [Fact]
    public void WrongXenVersion() =>
        Assert.Contains("XEN_VERSION \"xen-2.0\"", Refused(TestElf.Linux().Replace(XenElfNote.XenVersion, "xen-2.0")));

    [Fact]
    public void MissingXenVersion() =>
        Assert.Contains("xen-3.0", Refused(TestElf.Linux().Without(XenElfNote.XenVersion)));

    [Fact]
    public void NeitherGenericLoaderNorLinux() =>
        Assert.Contains("LOADER \"other\", GUEST_OS \"netbsd\"",
            Refused(TestElf.Linux().Replace(XenElfNote.Loader, "other").Replace(XenElfNote.GuestOs, "netbsd")));

    [Fact]
    public void RequiredDom0FeatureIsRefusedForADomU() =>
        Assert.Contains("\"dom0\"", Refused(TestElf.Linux().Replace(XenElfNote.Features, "!writable_page_tables|!dom0")));

    [Fact]
    public void RequiredFeatureNotOfferedIsNamed()
    {
        Assert.Contains("writable_descriptor_tables", Refused(TestElf.Linux().Replace(XenElfNote.Features, "!writable_descriptor_tables")));
        Assert.Contains("writable_page_tables", Refused(TestElf.Linux(), offered: 0));
        Assert.Contains("unknown Xen feature \"teleport\"", Refused(TestElf.Linux().Replace(XenElfNote.Features, "!teleport")));
        // An unknown feature that is merely supported is ignored.
        XenGuestInfo.FromElf(ElfImage.Parse(TestElf.Linux().Replace(XenElfNote.Features, "teleport|!writable_page_tables").Build()), PvBuildOptions.DefaultOfferedFeatures);
    }

    [Fact]
    public void NumericNoteOfOddSize() =>
        Assert.Contains("1, 2, 4 or 8", Refused(TestElf.Linux().Without(XenElfNote.VirtBase).Num(XenElfNote.VirtBase, 1, 3)));

    [Fact]
    public void StringNoteEndsAtItsDescriptorWithoutNul()
    {
        // Linux writes FEATURES with .ascii: no NUL inside the descriptor. The string must stop at the descriptor's end.
        var e = TestElf.Linux().Without(XenElfNote.Features);
        e.Notes.Add((XenElfNote.Features, "!writable_page_tables|pae_pgdir_above_4gb"u8.ToArray(), "Xen"));
        e.Notes.Add((1, "XXXX"u8.ToArray(), "GNU"));
        var g = XenGuestInfo.FromElf(ElfImage.Parse(e.Build()), PvBuildOptions.DefaultOfferedFeatures);
        Assert.Equal("!writable_page_tables|pae_pgdir_above_4gb", g.Notes.Features);
        var bad = TestElf.Linux().Without(XenElfNote.GuestOs);
        bad.Notes.Add((XenElfNote.GuestOs, [(byte)'l', 0x01, (byte)'x'], "Xen"));
        Assert.Contains("non-printable", Refused(bad));
    }

    [Fact]
    public void NoXenNotesAtAll()
    {
        var e = TestElf.Linux();
        e.Notes.RemoveAll(n => n.Name == "Xen");
        Assert.Contains("no \"Xen\" ELF notes", Refused(e));
    }

    [Fact]
    public void InitP2mInsideTheKernel() =>
        Assert.Contains("INIT_P2M", Refused(TestElf.Linux().Without(XenElfNote.InitP2m).Num(XenElfNote.InitP2m, TestElf.LinuxVirtBase + 0x100_1000)));

    [Fact]
    public void HypercallPageOutsideTheKernel() =>
        Assert.Contains("HYPERCALL_PAGE", Refused(TestElf.Linux().Num(XenElfNote.HypercallPage, TestElf.LinuxVirtBase)));

    [Fact]
    public void WrongClassMachineAndNoLoadSegments()
    {
        var e = TestElf.Linux();
        e.Corrupt = (f, l) => f[4] = 1;
        Assert.Contains("ELFCLASS64", Refused(e));
        e.Corrupt = (f, l) => TestElf.W16(f, 18, 3);
        Assert.Contains("x86-64", Refused(e));
        e.Corrupt = (f, l) => TestElf.W32(f, l.PhOff, 6); // PT_LOAD -> PT_PHDR
        Assert.Contains("no loadable", Refused(e));
    }

    [Fact]
    public void GarbageIsNeitherElfNorBzImage() =>
        Assert.Contains("neither an ELF file nor a bzImage", Assert.Throws<PvBuildException>(() => KernelImage.FromBytes(new byte[4096])).Message);

    [Fact]
    public void RandomCorruptionNeverEscapesAsAnotherException()
    {
        var good = TestElf.Linux().Build();
        var rng = new Random(12345);
        using var mem = new XenSharp.Accel.GuestMemory(24 << 20);
        for (int round = 0; round < 2000; round++)
        {
            var f = (byte[])good.Clone();
            int flips = rng.Next(1, 6);
            for (int i = 0; i < flips; i++)
            {
                // Aim at the headers and notes, where a flip changes structure.
                int at = rng.Next(0, Math.Min(f.Length, 0x400));
                f[at] = (byte)rng.Next(256);
            }
            int len = rng.Next(10) == 0 ? rng.Next(f.Length) : f.Length;
            try
            {
                var elf = ElfImage.Parse(f.AsMemory(0, len));
                XenGuestInfo.FromElf(elf, PvBuildOptions.DefaultOfferedFeatures);
                // Building is slow next to parsing; do it for a sample of the images that parse.
                if (round % 20 == 0) PvDomainBuilder.Build(mem, elf, PvDomainBuilderTests.Options(sharedInfoMfn: 1 << 20));
            }
            catch (PvBuildException) { }
        }
    }
}
