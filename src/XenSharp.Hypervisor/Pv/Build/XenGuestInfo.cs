using System.Buffers.Binary;
using System.Text;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Build;

/// <summary>The Xen ELF notes of a PV kernel as read (null = note absent).</summary>
public sealed record XenElfNotes
{
    public string? Info { get; init; }
    public ulong? Entry { get; init; }
    public ulong? HypercallPage { get; init; }
    public ulong? VirtBase { get; init; }
    public ulong? PaddrOffset { get; init; }
    public string? XenVersion { get; init; }
    public string? GuestOs { get; init; }
    public string? GuestVersion { get; init; }
    public string? Loader { get; init; }
    public string? PaeMode { get; init; }
    public string? Features { get; init; }
    public string? BsdSymtab { get; init; }
    public ulong? HvStartLow { get; init; }
    /// <summary>Raw descriptor: pairs of (mask, value) words for save/restore; unused by the builder.</summary>
    public byte[]? L1MfnValid { get; init; }
    public ulong? SuspendCancel { get; init; }
    public ulong? InitP2m { get; init; }
    public ulong? ModStartPfn { get; init; }
    public uint? SupportedFeatures { get; init; }
    public ulong? Phys32Entry { get; init; }
    public byte[]? Phys32Reloc { get; init; }
    /// <summary>Where they came from: "PT_NOTE" or "SHT_NOTE".</summary>
    public required string Source { get; init; }
    /// <summary>Xen notes of types this reader does not interpret (crash/dumpcore and future ones).</summary>
    public IReadOnlyList<uint> OtherTypes { get; init; } = [];
    public int Count { get; init; }
}

/// <summary>
/// A PV kernel's Xen parameters: its notes plus the addresses libelf derives from them (virt_base, paddr_offset,
/// kernel start/end, entry), validated as libxenguest validates a domU kernel.
/// </summary>
public sealed record XenGuestInfo(
    XenElfNotes Notes,
    ulong VirtBase,
    ulong PaddrOffset,
    ulong VirtKernelStart,
    ulong VirtKernelEnd,
    ulong VirtEntry,
    ulong? HypercallPage,
    ulong? P2mBase, // INIT_P2M if usable (page aligned, below virt_base); else the p2m goes into the kernel mapping
    bool UnmappedInitrd,
    uint FeaturesSupported,
    uint FeaturesRequired)
{
    /// <summary>Reads and validates the Xen notes of <paramref name="elf"/>. <paramref name="offeredFeatures"/> is the XENFEAT bitmap the hypervisor grants.</summary>
    public static XenGuestInfo FromElf(ElfImage elf, uint offeredFeatures)
    {
        var notes = ReadNotes(elf);
        uint supported = notes.SupportedFeatures ?? 0, required = 0;
        if (notes.Features is { } features)
            ParseFeatures(features, ref supported, ref required);

        // libxenguest: only the generic loader or Linux, and only the Xen 3.0 ABI.
        bool generic = notes.Loader?.StartsWith("generic", StringComparison.Ordinal) == true;
        bool linux = notes.GuestOs?.StartsWith("linux", StringComparison.Ordinal) == true;
        if (!generic && !linux)
            throw new PvBuildException($"kernel is built neither for the generic loader nor as Linux (LOADER \"{notes.Loader}\", GUEST_OS \"{notes.GuestOs}\")");
        if (notes.XenVersion?.StartsWith("xen-3.0", StringComparison.Ordinal) != true)
            throw new PvBuildException($"kernel is built for XEN_VERSION \"{notes.XenVersion}\"; only \"xen-3.0\" kernels can be loaded");
        if ((required & (1u << XenFeature.Dom0)) != 0)
            throw new PvBuildException("kernel requires feature \"dom0\": it does not support unprivileged (domU) operation");
        uint missing = required & ~offeredFeatures & ~(1u << XenFeature.Dom0);
        if (missing != 0)
        {
            var names = Enumerable.Range(0, 32).Where(b => (missing & (1u << b)) != 0).Select(XenFeature.NameOf);
            throw new PvBuildException($"kernel requires Xen feature(s) this hypervisor does not offer: {string.Join(", ", names)}");
        }

        // Addresses (libelf's elf_xen_addr_calc_check; notes present, so paddr_offset defaults to 0).
        if (notes.PaddrOffset.HasValue && !notes.VirtBase.HasValue)
            throw new PvBuildException("kernel sets PADDR_OFFSET but not VIRT_BASE");
        ulong virtBase = notes.VirtBase ?? 0, paddrOffset = notes.PaddrOffset ?? 0;
        ulong virtOffset = unchecked(virtBase - paddrOffset);
        ulong kstart = unchecked(elf.PStart + virtOffset), kend = unchecked(elf.PEnd + virtOffset);
        ulong entry = notes.Entry ?? elf.Entry;
        if (kend < kstart || entry < kstart || entry > kend || virtBase > kstart)
            throw new PvBuildException($"kernel addresses are out of bounds: virt_base 0x{virtBase:x}, kernel [0x{kstart:x}, 0x{kend:x}), entry 0x{entry:x} (need virt_base <= start <= entry <= end)");
        if (notes.InitP2m is { } p2m && p2m >= kstart && p2m < kend)
            throw new PvBuildException($"INIT_P2M 0x{p2m:x} lies inside the kernel [0x{kstart:x}, 0x{kend:x})");
        if ((kstart & 0xfff) != 0)
            throw new PvBuildException($"kernel start 0x{kstart:x} is not page aligned");
        ulong? hypercall = notes.HypercallPage;
        if (hypercall is { } hp && (hp < kstart || hp >= kend))
            throw new PvBuildException($"HYPERCALL_PAGE 0x{hp:x} lies outside the kernel [0x{kstart:x}, 0x{kend:x})");
        ulong? p2mBase = notes.InitP2m is { } b && b < virtBase && (b & 0xfff) == 0 ? b : null;

        return new XenGuestInfo(notes, virtBase, paddrOffset, kstart, kend, entry, hypercall, p2mBase,
            UnmappedInitrd: (notes.ModStartPfn ?? 0) != 0, supported, required);
    }

    /// <summary>
    /// FEATURES: names separated by '|'; a leading '!' marks a feature the kernel requires. Unknown plain names are
    /// ignored (future features); an unknown required one is refused, as libelf does.
    /// </summary>
    public static void ParseFeatures(string features, ref uint supported, ref uint required)
    {
        foreach (var raw in features.Split('|'))
        {
            if (raw.Length == 0) continue;
            bool isRequired = raw[0] == '!';
            string name = isRequired ? raw[1..] : raw;
            if (!XenFeature.NoteNames.TryGetValue(name, out int bit))
            {
                if (isRequired) throw new PvBuildException($"kernel requires unknown Xen feature \"{name}\"");
                continue;
            }
            supported |= 1u << bit;
            if (isRequired) required |= 1u << bit;
        }
    }

    private static XenElfNotes ReadNotes(ElfImage elf)
    {
        string source = "PT_NOTE";
        var xen = elf.SegmentNotes().Where(n => n.Name == "Xen").ToList();
        if (xen.Count == 0)
        {
            source = "SHT_NOTE";
            xen = elf.SectionNotes().Where(n => n.Name == "Xen").ToList();
        }
        if (xen.Count == 0)
            throw new PvBuildException("not a Xen PV kernel: no \"Xen\" ELF notes (the legacy __xen_guest section is not supported)");

        var seen = new Dictionary<uint, byte[]>();
        var other = new List<uint>();
        var r = new XenElfNotes { Source = source, Count = xen.Count };
        foreach (var note in xen)
        {
            var desc = elf.Descriptor(note);
            if (seen.TryGetValue(note.Type, out var earlier))
            {
                if (!earlier.AsSpan().SequenceEqual(desc))
                    throw new PvBuildException($"Xen note {Name(note.Type)} appears twice with different values");
                continue;
            }
            seen[note.Type] = desc.ToArray();
            r = note.Type switch
            {
                XenElfNote.Info => r with { Info = Str(note, desc) },
                XenElfNote.Entry => r with { Entry = Num(note, desc) },
                XenElfNote.HypercallPage => r with { HypercallPage = Num(note, desc) },
                XenElfNote.VirtBase => r with { VirtBase = Num(note, desc) },
                XenElfNote.PaddrOffset => r with { PaddrOffset = Num(note, desc) },
                XenElfNote.XenVersion => r with { XenVersion = Str(note, desc) },
                XenElfNote.GuestOs => r with { GuestOs = Str(note, desc) },
                XenElfNote.GuestVersion => r with { GuestVersion = Str(note, desc) },
                XenElfNote.Loader => r with { Loader = Str(note, desc) },
                XenElfNote.PaeMode => r with { PaeMode = Str(note, desc) },
                XenElfNote.Features => r with { Features = Str(note, desc) },
                XenElfNote.BsdSymtab => r with { BsdSymtab = Str(note, desc) },
                XenElfNote.HvStartLow => r with { HvStartLow = Num(note, desc) },
                XenElfNote.L1MfnValid => r with { L1MfnValid = desc.ToArray() },
                XenElfNote.SuspendCancel => r with { SuspendCancel = Num(note, desc) },
                XenElfNote.InitP2m => r with { InitP2m = Num(note, desc) },
                XenElfNote.ModStartPfn => r with { ModStartPfn = Num(note, desc) },
                // A bitmap of submap 0 (an array of u32 submaps; only one exists).
                XenElfNote.SupportedFeatures => r with { SupportedFeatures = desc.Length >= 4 && desc.Length % 4 == 0
                    ? BinaryPrimitives.ReadUInt32LittleEndian(desc)
                    : throw new PvBuildException($"Xen note SUPPORTED_FEATURES has {desc.Length} bytes; expected whole 32-bit words") },
                XenElfNote.Phys32Entry => r with { Phys32Entry = Num(note, desc) },
                XenElfNote.Phys32Reloc => r with { Phys32Reloc = desc.ToArray() },
                _ => r,
            };
            if (note.Type > XenElfNote.Phys32Reloc) other.Add(note.Type);
        }
        return r with { OtherTypes = other };
    }

    private static string Name(uint type) =>
        typeof(XenElfNote).GetFields().FirstOrDefault(f => f.IsLiteral && (uint)f.GetRawConstantValue()! == type)?.Name ?? $"type {type}";

    private static ulong Num(ElfNote note, ReadOnlySpan<byte> d) => d.Length switch
    {
        1 => d[0],
        2 => BinaryPrimitives.ReadUInt16LittleEndian(d),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(d),
        8 => BinaryPrimitives.ReadUInt64LittleEndian(d),
        _ => throw new PvBuildException($"Xen note {Name(note.Type)} is numeric but has {d.Length} bytes (expected 1, 2, 4 or 8)"),
    };

    /// <summary>
    /// Strings end at a NUL or at the end of the descriptor: Linux emits FEATURES with <c>.ascii</c> (no NUL), which
    /// libelf only reads correctly because the note padding happens to be zero. Never read past the descriptor.
    /// </summary>
    private static string Str(ElfNote note, ReadOnlySpan<byte> d)
    {
        int nul = d.IndexOf((byte)0);
        var text = nul < 0 ? d : d[..nul];
        foreach (byte b in text)
            if (b is < 0x20 or > 0x7e)
                throw new PvBuildException($"Xen note {Name(note.Type)} holds a non-printable byte 0x{b:x2}");
        return Encoding.ASCII.GetString(text);
    }
}
