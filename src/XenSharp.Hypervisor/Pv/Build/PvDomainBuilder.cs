using System.Runtime.InteropServices;
using System.Text;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Build;

/// <summary>What the caller supplies besides the kernel and the domain's RAM.</summary>
public sealed record PvBuildOptions
{
    public string CommandLine { get; init; } = "";
    /// <summary>Module 0 (initrd); empty = none.</summary>
    public ReadOnlyMemory<byte> Initrd { get; init; }
    /// <summary>Frame of the hypervisor-owned shared_info page. It lies outside guest RAM (MFN ≥ nr_pages).</summary>
    public required ulong SharedInfoMfn { get; init; }
    /// <summary>Guest ports of the xenstore and console channels; Linux reads port 0 as "no xenstore ring".</summary>
    public required uint StoreEvtchn { get; init; }
    public required uint ConsoleEvtchn { get; init; }
    /// <summary>XENFEAT bitmap (submap 0) the hypervisor grants; a kernel requiring anything else is refused.</summary>
    public uint OfferedFeatures { get; init; } = DefaultOfferedFeatures;

    /// <summary>
    /// What XenSharp's PV ABI provides: writable page tables are emulated (trapped writes), which is also what
    /// Linux marks as required; PAE page directories above 4 GiB are a given on x86-64.
    /// </summary>
    public const uint DefaultOfferedFeatures = (1u << XenFeature.WritablePageTables) | (1u << XenFeature.PaePgdirAbove4gb);
}

/// <summary>Everything the hypervisor needs to start the domain's first vCPU and to protect the frames the builder set up.</summary>
public sealed record PvBuildResult
{
    public required XenGuestInfo Guest { get; init; }
    public required ulong NrPages { get; init; }
    public required ulong VirtBase { get; init; }

    // Initial vCPU state (A.7).
    public required ulong EntryRip { get; init; }
    /// <summary>Top of the boot stack page.</summary>
    public required ulong InitialRsp { get; init; }
    /// <summary>VA of start_info (rsi).</summary>
    public required ulong StartInfoVirt { get; init; }
    /// <summary>Machine (== pseudo-physical) address of the bootstrap L4.</summary>
    public required ulong Cr3 { get; init; }

    public required ulong KernelPfn { get; init; }
    public required ulong KernelPages { get; init; }
    public required ulong StartInfoPfn { get; init; }
    public required ulong XenstorePfn { get; init; }
    public required ulong ConsolePfn { get; init; }
    /// <summary>First frame of the bootstrap tables (the L4; then L3s, L2s, L1s) and their count (nr_pt_frames).</summary>
    public required ulong PageTablePfn { get; init; }
    public required ulong PageTableCount { get; init; }
    public required ulong BootStackPfn { get; init; }
    /// <summary>End of the initial mapping (4 MiB aligned); every frame below it is allocated.</summary>
    public required ulong VirtPgtabEnd { get; init; }
    public required ulong P2mPfn { get; init; }
    public required ulong P2mVirt { get; init; }
    /// <summary>p2m data frames, and all p2m frames (data plus the page tables of the INIT_P2M mapping).</summary>
    public required ulong P2mDataFrames { get; init; }
    public required ulong P2mFrames { get; init; }
    public required bool P2mAtInitP2m { get; init; }
    public ulong? InitrdPfn { get; init; }
    public ulong InitrdPages { get; init; }
    public required ulong ModStart { get; init; }
    public required ulong ModLen { get; init; }
    public ulong? HypercallPagePfn { get; init; }
    /// <summary>Every frame holding a page table (both mappings): pin these and keep them free of writable mappings.</summary>
    public required IReadOnlyList<ulong> PageTableFrames { get; init; }
    public required uint StartInfoFlags { get; init; }
    public required ulong SharedInfoAddress { get; init; }
    /// <summary>Frames from here to NrPages are free RAM.</summary>
    public required ulong FirstFreePfn { get; init; }
}

/// <summary>
/// Builds a 64-bit PV domain in its RAM the way libxenguest does (xc_dom_build_image and the x86 hooks): kernel,
/// start_info, xenstore and console pages, bootstrap page tables mapping virt_base upward, boot stack, an unmapped
/// initrd, and the p2m at INIT_P2M with its own tables. The p2m is the identity (MFN == PFN). Writes guest memory
/// directly, so call it before the first vCPU runs. The hypervisor area (GDT, IDT, stubs, M2P) lives outside guest
/// RAM and is not built here.
/// </summary>
public static class PvDomainBuilder
{
    private const ulong PageSize = 4096;
    private const ulong Mask48 = (1UL << 48) - 1;
    private const ulong L1Flags = X86.PtePresent | X86.PteRw | X86.PteAccessed;
    private const ulong UpperFlags = X86.PtePresent | X86.PteRw | X86.PteAccessed | X86.PteDirty | X86.PteUser;

    public static PvBuildResult Build(GuestMemory memory, KernelImage kernel, PvBuildOptions options) =>
        Build(memory, ElfImage.Parse(kernel.Elf), options);

    public static PvBuildResult Build(GuestMemory memory, ElfImage elf, PvBuildOptions options)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(elf);
        ArgumentNullException.ThrowIfNull(options);
        ulong nrPages = memory.FrameCount;
        if (options.StoreEvtchn == 0 || options.ConsoleEvtchn == 0)
            throw new PvBuildException("xenstore and console event channels must be non-zero ports");
        if (options.SharedInfoMfn < nrPages)
            throw new PvBuildException($"shared_info frame 0x{options.SharedInfoMfn:x} lies inside guest RAM (0x{nrPages:x} pages); it must be a hypervisor frame");
        byte[] cmdline = Encoding.UTF8.GetBytes(options.CommandLine);
        if (cmdline.Length >= StartInfoFlags.MaxGuestCmdline || cmdline.Contains((byte)0))
            throw new PvBuildException($"command line is {cmdline.Length} bytes; at most {StartInfoFlags.MaxGuestCmdline - 1} without NUL fit in start_info");

        var g = XenGuestInfo.FromElf(elf, options.OfferedFeatures);
        var a = new Allocator(memory, g.VirtBase);
        bool haveInitrd = !options.Initrd.IsEmpty;
        uint flags = 0;
        ulong modStart = 0, modLen = 0, initrdPages = 0;
        ulong? initrdPfn = null;

        // 1. Kernel (the frames between virt_base and its start are allocated padding).
        a.PadTo(g.VirtKernelStart, "kernel");
        ulong kernelPfn = a.Alloc(g.VirtKernelEnd - g.VirtKernelStart, "kernel", out ulong kernelPages);
        foreach (var seg in elf.LoadSegments)
        {
            ulong dest = (kernelPfn << 12) + (seg.PhysicalAddress - elf.PStart);
            if (seg.FileSize > 0)
                memory.Write(dest, elf.File.Span.Slice((int)seg.Offset, (int)seg.FileSize));
        }
        ulong? hypercallPfn = null;
        if (g.HypercallPage is { } hp)
        {
            hypercallPfn = (hp - g.VirtBase) >> 12;
            HypercallPage.Write(memory.Frame(hypercallPfn.Value));
        }

        // 2. A mapped initrd, for kernels that cannot take an unmapped one.
        if (haveInitrd && !g.UnmappedInitrd)
        {
            initrdPfn = a.Alloc((ulong)options.Initrd.Length, "initrd", out initrdPages);
            memory.Write(initrdPfn.Value << 12, options.Initrd.Span);
            modStart = g.VirtBase + (initrdPfn.Value << 12);
            modLen = (ulong)options.Initrd.Length;
        }

        // 3. The p2m inside the kernel mapping when INIT_P2M is absent or unusable.
        ulong p2mBytes = RoundUpPage(nrPages * 8);
        ulong p2mDataFrames = p2mBytes >> 12, p2mPfn = 0, p2mVirt = 0, p2mFrames = 0;
        if (g.P2mBase == null)
        {
            p2mPfn = a.Alloc(p2mBytes, "p2m", out p2mFrames);
            p2mVirt = g.VirtBase + (p2mPfn << 12);
        }

        // 4-6. start_info, xenstore ring, console ring.
        ulong startInfoPfn = a.AllocPage("start_info");
        ulong xenstorePfn = a.AllocPage("xenstore");
        ulong consolePfn = a.AllocPage("console");
        memory.WriteByte((consolePfn << 12) + (ulong)Marshal.OffsetOf<XenconsInterface>(nameof(XenconsInterface.Connection)), ConsoleConnection.Disconnected);

        // 7. Bootstrap tables: they must map themselves, the boot stack and 512 KiB of slack, up to a 4 MiB boundary;
        //    their count depends on that end, so iterate until it is stable.
        var mappings = new List<Mapping>();
        const ulong extraPages = 1 + (512 * 1024) / PageSize;
        ulong pages = extraPages, tryEnd;
        Mapping main;
        while (true)
        {
            tryEnd = (a.VirtEnd + pages * PageSize) | ((4UL << 20) - 1);
            if ((tryEnd - g.VirtBase) >> 12 >= nrPages)
                throw new PvBuildException($"domain of {nrPages} pages is too small for the initial mapping up to 0x{tryEnd + 1:x}");
            main = Mapping.Count(g.VirtBase, tryEnd, mappings, first: true);
            pages = main.Total + extraPages;
            if (a.VirtEnd + pages * PageSize <= tryEnd + 1) break;
        }
        ulong virtPgtabEnd = tryEnd + 1;
        ulong ptPfn = a.Alloc(main.Total * PageSize, "page tables", out _);
        main.Assign(ptPfn, 0);
        mappings.Add(main);

        // 8-9. Boot stack, then every frame the initial mapping covers.
        ulong bootStackPfn = a.AllocPage("boot stack");
        a.PadTo(virtPgtabEnd, "initial mapping");

        // An initrd the kernel accepts unmapped: mod_start is a PFN, mod_len whole pages.
        if (haveInitrd && g.UnmappedInitrd)
        {
            initrdPfn = a.Alloc((ulong)options.Initrd.Length, "initrd", out initrdPages);
            memory.Write(initrdPfn.Value << 12, options.Initrd.Span);
            modStart = initrdPfn.Value;
            modLen = initrdPages * PageSize;
            flags |= StartInfoFlags.ModStartPfn;
        }

        // 10. The p2m at INIT_P2M: data, then the L3/L2/L1 tables of this mapping (its L4 entry goes in the main L4).
        ulong firstP2mPfn = 0, nrP2mFrames = 0;
        if (g.P2mBase is { } p2mBase)
        {
            if (a.PfnEnd + p2mDataFrames > nrPages)
                throw new PvBuildException($"domain of {nrPages} pages has no room for the p2m after frame 0x{a.PfnEnd:x}");
            var p2mMap = Mapping.Count(p2mBase, p2mBase + p2mBytes - 1, mappings, first: false);
            p2mPfn = a.Alloc(p2mBytes + p2mMap.Total * PageSize, "p2m", out p2mFrames);
            p2mMap.Assign(p2mPfn + p2mDataFrames, p2mPfn);
            mappings.Add(p2mMap);
            p2mVirt = p2mBase;
            firstP2mPfn = p2mPfn;
            nrP2mFrames = p2mFrames;
        }

        // Identity p2m: pseudo-physical frame i is machine frame i.
        var p2m = MemoryMarshal.Cast<byte, ulong>(memory.Span(p2mPfn << 12, checked((int)(nrPages * 8))));
        for (ulong pfn = 0; pfn < nrPages; pfn++) p2m[(int)pfn] = pfn;

        var tables = new PageTableWriter(memory, mappings);
        for (ulong va = g.VirtBase; va < virtPgtabEnd; va += PageSize)
            tables.Map(va, (va - g.VirtBase) >> 12);
        if (g.P2mBase is { } p2mVa)
            for (ulong i = 0; i < p2mDataFrames; i++)
                tables.Map(p2mVa + (i << 12), p2mPfn + i);

        var si = new StartInfo
        {
            NrPages = nrPages,
            SharedInfo = options.SharedInfoMfn << 12,
            Flags = flags,
            StoreMfn = xenstorePfn,
            StoreEvtchn = options.StoreEvtchn,
            ConsoleMfn = consolePfn,
            ConsoleEvtchn = options.ConsoleEvtchn,
            PtBase = g.VirtBase + (ptPfn << 12),
            NrPtFrames = main.Total,
            MfnList = p2mVirt,
            ModStart = modStart,
            ModLen = modLen,
            FirstP2mPfn = firstP2mPfn,
            NrP2mFrames = nrP2mFrames,
        };
        unsafe
        {
            Encoding.ASCII.GetBytes(StartInfoFlags.Magic).CopyTo(new Span<byte>(si.Magic, 31));
            cmdline.CopyTo(new Span<byte>(si.CmdLine, StartInfoFlags.MaxGuestCmdline - 1));
        }
        MemoryMarshal.Write(memory.Frame(startInfoPfn), in si);

        return new PvBuildResult
        {
            Guest = g,
            NrPages = nrPages,
            VirtBase = g.VirtBase,
            EntryRip = g.VirtEntry,
            InitialRsp = g.VirtBase + ((bootStackPfn + 1) << 12),
            StartInfoVirt = g.VirtBase + (startInfoPfn << 12),
            Cr3 = ptPfn << 12,
            KernelPfn = kernelPfn,
            KernelPages = kernelPages,
            StartInfoPfn = startInfoPfn,
            XenstorePfn = xenstorePfn,
            ConsolePfn = consolePfn,
            PageTablePfn = ptPfn,
            PageTableCount = main.Total,
            BootStackPfn = bootStackPfn,
            VirtPgtabEnd = virtPgtabEnd,
            P2mPfn = p2mPfn,
            P2mVirt = p2mVirt,
            P2mDataFrames = p2mDataFrames,
            P2mFrames = p2mFrames,
            P2mAtInitP2m = g.P2mBase != null,
            InitrdPfn = initrdPfn,
            InitrdPages = initrdPages,
            ModStart = modStart,
            ModLen = modLen,
            HypercallPagePfn = hypercallPfn,
            PageTableFrames = mappings.SelectMany(m => m.TableFrames()).ToArray(),
            StartInfoFlags = flags,
            SharedInfoAddress = options.SharedInfoMfn << 12,
            FirstFreePfn = a.PfnEnd,
        };
    }

    private static ulong RoundUpPage(ulong bytes) => (bytes / PageSize + (bytes % PageSize != 0 ? 1UL : 0)) * PageSize;

    /// <summary>Hands out frames and VAs upward in lockstep (PFN p is at virt_base + p·4096) and zeroes what it hands out.</summary>
    private sealed class Allocator(GuestMemory memory, ulong virtBase)
    {
        public ulong PfnEnd { get; private set; }
        public ulong VirtEnd => virtBase + (PfnEnd << 12);

        public ulong Alloc(ulong bytes, string what, out ulong pages)
        {
            pages = bytes / PageSize + (bytes % PageSize != 0 ? 1UL : 0);
            ulong free = memory.FrameCount - PfnEnd;
            if (pages > free)
                throw new PvBuildException($"{what} needs {pages} pages but only {free} of the domain's {memory.FrameCount} remain after frame 0x{PfnEnd:x}");
            ulong pfn = PfnEnd;
            for (ulong done = 0; done < pages;)
            {
                int chunk = (int)Math.Min(pages - done, 1UL << 18); // 1 GiB at a time
                memory.Span((pfn + done) << 12, chunk << 12).Clear();
                done += (ulong)chunk;
            }
            PfnEnd += pages;
            return pfn;
        }

        public ulong AllocPage(string what) => Alloc(PageSize, what, out _);

        /// <summary>Allocates the frames between the current end and <paramref name="virt"/> (they stay ordinary RAM).</summary>
        public void PadTo(ulong virt, string what)
        {
            if ((virt & (PageSize - 1)) != 0) throw new PvBuildException($"{what} boundary 0x{virt:x} is not page aligned");
            if (virt < VirtEnd) throw new PvBuildException($"{what} boundary 0x{virt:x} lies below the allocations so far (0x{VirtEnd:x})");
            Alloc(virt - VirtEnd, $"padding before {what}", out _);
        }
    }

    /// <summary>The tables one mapping needs at each level (0 = L1 … 3 = L4), as libxenguest counts them: tables already
    /// provided by an earlier mapping are shared, so a second mapping adds no L4 and no table whose range is covered.</summary>
    private sealed class Mapping
    {
        public readonly ulong[] From = new ulong[4], To = new ulong[4], Pfn = new ulong[4], Tables = new ulong[4];
        public ulong AreaFrom, AreaTo, AreaPfn, Total, BlockPfn;

        public static Mapping Count(ulong from, ulong to, List<Mapping> existing, bool first)
        {
            var m = new Mapping { AreaFrom = from & Mask48, AreaTo = to & Mask48 };
            foreach (var e in existing)
                if (m.AreaFrom <= e.AreaTo && m.AreaTo >= e.AreaFrom)
                    throw new PvBuildException($"mapping [0x{from:x}, 0x{to:x}] overlaps an earlier initial mapping");
            for (int l = 3; l >= 0; l--)
            {
                if (l == 3)
                {
                    if (first) { m.From[l] = 0; m.To[l] = Mask48; m.Tables[l] = 1; }
                    m.Total += m.Tables[l];
                    continue;
                }
                int bits = 12 + (l + 1) * 9;
                ulong mask = (1UL << bits) - 1;
                ulong lf = m.AreaFrom & ~mask, lt = m.AreaTo | mask;
                foreach (var e in existing)
                {
                    if (e.Tables[l] == 0) continue;
                    if (lf >= e.From[l] && lt <= e.To[l]) { lf = lt = 0; break; }
                    if (lf >= e.From[l] && lf <= e.To[l]) lf = e.To[l] + 1;
                    if (lt >= e.From[l] && lt <= e.To[l]) lt = e.From[l] - 1;
                }
                m.From[l] = lf;
                m.To[l] = lt;
                m.Tables[l] = lf < lt ? ((lt - lf) >> bits) + 1 : 0;
                m.Total += m.Tables[l];
            }
            return m;
        }

        /// <summary>Places the tables at <paramref name="blockPfn"/> in the order L4, L3s, L2s, L1s.</summary>
        public void Assign(ulong blockPfn, ulong areaPfn)
        {
            BlockPfn = blockPfn;
            AreaPfn = areaPfn;
            ulong next = blockPfn;
            for (int l = 3; l >= 0; l--) { Pfn[l] = next; next += Tables[l]; }
        }

        public IEnumerable<ulong> TableFrames()
        {
            for (ulong i = 0; i < Total; i++) yield return BlockPfn + i;
        }

        public bool IsTableFrame(ulong pfn) => pfn >= BlockPfn && pfn - BlockPfn < Total;

        public bool TryTable(int level, ulong va48, out ulong pfn)
        {
            pfn = 0;
            if (Tables[level] == 0 || va48 < From[level] || va48 > To[level]) return false;
            int bits = 12 + (level + 1) * 9;
            pfn = Pfn[level] + (bits >= 48 ? 0 : (va48 - From[level]) >> bits);
            return true;
        }
    }

    private sealed class PageTableWriter(GuestMemory memory, List<Mapping> mappings)
    {
        public void Map(ulong va, ulong pfn)
        {
            ulong va48 = va & Mask48;
            for (int level = 3; level >= 1; level--)
            {
                ulong table = Table(level, va48), child = Table(level - 1, va48);
                memory.WriteUInt64((table << 12) + (((va48 >> (12 + 9 * level)) & 511) << 3), (child << 12) | UpperFlags);
            }
            // Page-table frames are never writable through the guest's own mappings.
            ulong flags = mappings.Any(m => m.IsTableFrame(pfn)) ? L1Flags & ~X86.PteRw : L1Flags;
            memory.WriteUInt64((Table(0, va48) << 12) + (((va48 >> 12) & 511) << 3), (pfn << 12) | flags);
        }

        private ulong Table(int level, ulong va48)
        {
            foreach (var m in mappings)
                if (m.TryTable(level, va48, out ulong pfn)) return pfn;
            throw new InvalidOperationException($"no level-{level + 1} table covers 0x{va48:x}");
        }
    }
}
