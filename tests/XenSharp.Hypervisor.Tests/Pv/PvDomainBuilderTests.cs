using System.Runtime.InteropServices;
using System.Text;
using Iced.Intel;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Build;

namespace XenSharp.Hypervisor.Tests.Pv;

public sealed class PvDomainBuilderTests
{
    private const ulong MiB = 1 << 20;
    private const ulong UpperFlags = X86.PtePresent | X86.PteRw | X86.PteAccessed | X86.PteDirty | X86.PteUser;

    internal static PvBuildOptions Options(string cmdline = "console=hvc0 root=/dev/xvda", byte[]? initrd = null, ulong sharedInfoMfn = 0x10_0000) => new()
    {
        CommandLine = cmdline,
        Initrd = initrd ?? [],
        SharedInfoMfn = sharedInfoMfn,
        StoreEvtchn = 1,
        ConsoleEvtchn = 2,
    };

    private static PvBuildResult Build(GuestMemory mem, TestElf elf, PvBuildOptions options) =>
        PvDomainBuilder.Build(mem, ElfImage.Parse(elf.Build()), options);

    [Fact]
    public void SyntheticLinuxKernelIsLaidOutLikeLibxenguest()
    {
        using var mem = new GuestMemory(64 * MiB);
        mem.Span(16 * MiB, (int)(2 * MiB)).Fill(0xAA); // the kernel's bss must come out zeroed
        var elf = TestElf.Linux();
        var initrd = Enumerable.Range(0, 10_000).Select(i => (byte)(i % 251)).ToArray();
        var r = Build(mem, elf, Options(initrd: initrd));
        ulong nrPages = 64 * MiB / 4096;

        // Placement (A.3): kernel at 16 MiB, then start_info, xenstore, console, tables, stack.
        Assert.Equal(TestElf.LinuxVirtBase, r.VirtBase);
        Assert.Equal(0x1000UL, r.KernelPfn);
        Assert.Equal(0x200UL, r.KernelPages);
        Assert.Equal(0x1200UL, r.StartInfoPfn);
        Assert.Equal(0x1201UL, r.XenstorePfn);
        Assert.Equal(0x1202UL, r.ConsolePfn);
        Assert.Equal(0x1203UL, r.PageTablePfn);
        // 20 MiB mapped: L4 + L3 + L2 + 10 L1s.
        Assert.Equal(13UL, r.PageTableCount);
        Assert.Equal(0x1210UL, r.BootStackPfn);
        Assert.Equal(TestElf.LinuxVirtBase + 20 * MiB, r.VirtPgtabEnd);
        Assert.Equal(0x1400UL, r.InitrdPfn);
        Assert.Equal(3UL, r.InitrdPages);
        Assert.Equal(0x1403UL, r.P2mPfn);
        Assert.True(r.P2mAtInitP2m);
        Assert.Equal(32UL, r.P2mDataFrames);             // 16384 entries * 8 bytes
        Assert.Equal(35UL, r.P2mFrames);                 // + L3, L2, L1 of the INIT_P2M mapping
        Assert.Equal(0x1403UL + 35, r.FirstFreePfn);
        Assert.Null(r.HypercallPagePfn);

        // Initial registers (A.7).
        Assert.Equal(elf.Entry, r.EntryRip);
        Assert.Equal(TestElf.LinuxVirtBase + 0x1211000UL, r.InitialRsp);
        Assert.Equal(TestElf.LinuxVirtBase + 0x1200000UL, r.StartInfoVirt);
        Assert.Equal(0x1203000UL, r.Cr3);

        // start_info, every field.
        var si = MemoryMarshal.Read<StartInfo>(mem.Frame(r.StartInfoPfn));
        Assert.Equal("xen-3.0-x86_64", mem.ReadCString(r.StartInfoPfn << 12, 32));
        Assert.Equal(nrPages, si.NrPages);
        Assert.Equal(0x10_0000UL << 12, si.SharedInfo);
        Assert.Equal(StartInfoFlags.ModStartPfn, si.Flags);
        Assert.Equal(r.XenstorePfn, si.StoreMfn);
        Assert.Equal(1u, si.StoreEvtchn);
        Assert.Equal(r.ConsolePfn, si.ConsoleMfn);
        Assert.Equal(2u, si.ConsoleEvtchn);
        Assert.Equal(TestElf.LinuxVirtBase + (r.PageTablePfn << 12), si.PtBase);
        Assert.Equal(13UL, si.NrPtFrames);
        Assert.Equal(TestElf.LinuxInitP2m, si.MfnList);
        Assert.Equal(0x1400UL, si.ModStart);
        Assert.Equal(3UL * 4096, si.ModLen);
        Assert.Equal("console=hvc0 root=/dev/xvda", mem.ReadCString((r.StartInfoPfn << 12) + 128, 1024));
        Assert.Equal(r.P2mPfn, si.FirstP2mPfn);
        Assert.Equal(35UL, si.NrP2mFrames);

        // Kernel bytes, zeroed bss, initrd, rings.
        Assert.True(mem.Span(16 * MiB, elf.Text.Length).SequenceEqual(elf.Text));
        Assert.True(mem.Span(16 * MiB + (ulong)elf.Text.Length, (int)(2 * MiB) - elf.Text.Length).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(mem.Span(0x1400UL << 12, initrd.Length).SequenceEqual(initrd));
        Assert.Equal(ConsoleConnection.Disconnected, mem.ReadByte((r.ConsolePfn << 12) + 3088));
        Assert.True(mem.Frame(r.XenstorePfn).IndexOfAnyExcept((byte)0) < 0);

        // Identity p2m.
        for (ulong pfn = 0; pfn < nrPages; pfn++)
            Assert.Equal(pfn, mem.ReadUInt64((r.P2mPfn << 12) + pfn * 8));

        CheckPageTables(mem, r);
    }

    /// <summary>Walks the tables: every mapped VA lands on the expected frame, page tables read-only, the rest writable.</summary>
    internal static void CheckPageTables(GuestMemory mem, PvBuildResult r)
    {
        var tableFrames = r.PageTableFrames.ToHashSet();
        Assert.Equal(r.PageTableCount + (r.P2mAtInitP2m ? r.P2mFrames - r.P2mDataFrames : 0), (ulong)tableFrames.Count);
        for (ulong i = 0; i < r.PageTableCount; i++) Assert.Contains(r.PageTablePfn + i, tableFrames);

        PageWalker.Translation Map(ulong va) => PageWalker.Walk(mem, r.Cr3, va) ?? throw new Xunit.Sdk.XunitException($"VA 0x{va:x} is not mapped");

        Assert.Equal(r.StartInfoPfn, Map(r.StartInfoVirt).Pfn);
        Assert.Equal(r.BootStackPfn, Map(r.InitialRsp - 8).Pfn);
        Assert.Equal(r.KernelPfn + ((r.EntryRip - r.VirtBase - (r.KernelPfn << 12)) >> 12), Map(r.EntryRip).Pfn);
        Assert.Equal(r.PageTablePfn, Map(r.VirtBase + (r.PageTablePfn << 12)).Pfn);
        for (ulong i = 0; i < r.P2mDataFrames; i++)
        {
            var t = Map(r.P2mVirt + (i << 12));
            Assert.Equal(r.P2mPfn + i, t.Pfn);
            Assert.True(t.Writable);
        }

        // The whole initial mapping, frame by frame.
        for (ulong va = r.VirtBase; va < r.VirtPgtabEnd; va += 4096)
        {
            var t = Map(va);
            ulong pfn = (va - r.VirtBase) >> 12;
            Assert.Equal(pfn, t.Pfn);
            bool isTable = tableFrames.Contains(pfn);
            Assert.Equal(!isTable, t.Writable);
            Assert.Equal(X86.PtePresent | X86.PteAccessed | (isTable ? 0 : X86.PteRw), t.L1Entry & 0xfff);
            Assert.All(t.UpperEntries, e => Assert.Equal(UpperFlags, e & 0xfff));
        }
        Assert.Null(PageWalker.Walk(mem, r.Cr3, r.VirtPgtabEnd));
        Assert.Null(PageWalker.Walk(mem, r.Cr3, r.VirtBase - 4096));
        if (r.InitrdPfn is { } initrd && (r.StartInfoFlags & StartInfoFlags.ModStartPfn) != 0)
            Assert.Null(PageWalker.Walk(mem, r.Cr3, r.VirtBase + (initrd << 12)));
        if (r.P2mAtInitP2m)
            Assert.Null(PageWalker.Walk(mem, r.Cr3, r.P2mVirt + (r.P2mDataFrames << 12)));

        // Only the hypervisor touches L4 slots 256-271; the builder leaves them empty.
        for (int slot = X86_64Layout.HypervisorFirstL4Slot; slot <= X86_64Layout.HypervisorLastL4Slot; slot++)
            Assert.Equal(0UL, mem.ReadUInt64(r.Cr3 + (ulong)slot * 8));
    }

    [Fact]
    public void WithoutInitP2mAndModStartPfnTheP2mAndInitrdAreMappedInTheKernelArea()
    {
        using var mem = new GuestMemory(32 * MiB);
        var elf = TestElf.Linux().Without(XenElfNote.InitP2m).Without(XenElfNote.ModStartPfn);
        var initrd = new byte[5000];
        new Random(1).NextBytes(initrd);
        var r = Build(mem, elf, Options(initrd: initrd));
        // initrd right after the kernel, then the p2m (8192 entries = 16 pages), then start_info.
        Assert.Equal(0x1200UL, r.InitrdPfn);
        Assert.Equal(0x1202UL, r.P2mPfn);
        Assert.False(r.P2mAtInitP2m);
        Assert.Equal(16UL, r.P2mFrames);
        Assert.Equal(0x1212UL, r.StartInfoPfn);
        var si = MemoryMarshal.Read<StartInfo>(mem.Frame(r.StartInfoPfn));
        Assert.Equal(0u, si.Flags);
        Assert.Equal(r.VirtBase + (0x1200UL << 12), si.ModStart);
        Assert.Equal(5000UL, si.ModLen);
        Assert.Equal(r.VirtBase + (0x1202UL << 12), si.MfnList);
        Assert.Equal(0UL, si.FirstP2mPfn);
        Assert.Equal(0UL, si.NrP2mFrames);
        Assert.Equal(r.P2mPfn, PageWalker.Walk(mem, r.Cr3, si.MfnList)!.Pfn);
        Assert.True(mem.Span(PageWalker.Walk(mem, r.Cr3, si.ModStart)!.Pfn << 12, initrd.Length).SequenceEqual(initrd));
        CheckPageTables(mem, r);
    }

    [Fact]
    public void HypercallPageHoldsSyscallStubs()
    {
        using var mem = new GuestMemory(32 * MiB);
        var elf = TestElf.Linux(hypercallPage: true);
        var r = Build(mem, elf, Options());
        Assert.Equal(0x1002UL, r.HypercallPagePfn);
        var page = mem.Frame(r.HypercallPagePfn!.Value).ToArray();

        static string Disassemble(byte[] code)
        {
            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
            var sb = new StringBuilder();
            var formatter = new IntelFormatter();
            var output = new StringOutput();
            while (decoder.IP < (ulong)code.Length)
            {
                var ins = decoder.Decode();
                if (ins.Code == Code.Int3) break;
                formatter.Format(ins, output);
                sb.Append(output.ToStringAndReset()).Append("; ");
            }
            return sb.ToString();
        }

        Assert.Equal("push rcx; push r11; mov eax,0; syscall; pop r11; pop rcx; ret; ", Disassemble(page[..32]));
        Assert.Equal("push rcx; push r11; mov eax,1Dh; syscall; pop r11; pop rcx; ret; ", Disassemble(page[(29 * 32)..(30 * 32)]));
        Assert.Equal("push rcx; push r11; push rax; mov eax,17h; syscall; ", Disassemble(page[(23 * 32)..(24 * 32)]));
        Assert.Equal(0xCC, page[14]);
        Assert.Equal(0xCC, page[4095]);
        // Kernel text around it is intact.
        Assert.Equal(elf.Text[0x1fff], mem.ReadByte((0x1002UL << 12) - 1));
    }

    [Fact]
    public void SectionNotesAreTheFallback()
    {
        using var mem = new GuestMemory(32 * MiB);
        var elf = TestElf.Linux();
        elf.NotesInSegment = false;
        elf.NotesInSection = true;
        var r = Build(mem, elf, Options());
        Assert.Equal("SHT_NOTE", r.Guest.Notes.Source);
        Assert.Equal(TestElf.LinuxInitP2m, r.Guest.P2mBase);
    }

    [Fact]
    public void NotesAreParsed()
    {
        var g = XenGuestInfo.FromElf(ElfImage.Parse(TestElf.Linux().Build()), PvBuildOptions.DefaultOfferedFeatures);
        var n = g.Notes;
        Assert.Equal("linux", n.GuestOs);
        Assert.Equal("2.6", n.GuestVersion);
        Assert.Equal("xen-3.0", n.XenVersion);
        Assert.Equal("generic", n.Loader);
        Assert.Equal("yes", n.PaeMode);
        Assert.Equal(1UL, n.SuspendCancel);
        Assert.Equal(0xffff_8000_0000_0000UL, n.HvStartLow);
        Assert.Equal(16, n.L1MfnValid!.Length);
        Assert.Equal((1u << XenFeature.WritablePageTables) | (1u << XenFeature.PaePgdirAbove4gb) | (1u << XenFeature.Dom0), g.FeaturesSupported);
        Assert.Equal(1u << XenFeature.WritablePageTables, g.FeaturesRequired);
        Assert.True(g.UnmappedInitrd);
        Assert.Equal(TestElf.LinuxVirtBase + 0x100_0000, g.VirtKernelStart);
        Assert.Equal(TestElf.LinuxVirtBase + 0x120_0000, g.VirtKernelEnd);
        Assert.Equal(0UL, g.PaddrOffset);
    }

    [Fact]
    public void OptionsAreValidated()
    {
        using var mem = new GuestMemory(32 * MiB);
        var elf = TestElf.Linux();
        Assert.Contains("non-zero", Assert.Throws<PvBuildException>(() => Build(mem, elf, Options() with { StoreEvtchn = 0 })).Message);
        Assert.Contains("inside guest RAM", Assert.Throws<PvBuildException>(() => Build(mem, elf, Options(sharedInfoMfn: 5))).Message);
        Assert.Contains("command line", Assert.Throws<PvBuildException>(() => Build(mem, elf, Options(cmdline: new string('x', 1024)))).Message);
        Build(mem, elf, Options(cmdline: new string('x', 1023)));
    }

    [Fact]
    public void TooSmallDomainIsRefused()
    {
        using var mem = new GuestMemory(19 * MiB);
        var ex = Assert.Throws<PvBuildException>(() => Build(mem, TestElf.Linux(), Options()));
        Assert.Contains("too small", ex.Message);
        using var mem2 = new GuestMemory(24 * MiB);
        var ex2 = Assert.Throws<PvBuildException>(() => Build(mem2, TestElf.Linux(), Options(initrd: new byte[8 * MiB])));
        Assert.Contains("initrd needs", ex2.Message);
    }
}
