namespace XenSharp.Hypervisor.Hvm;

/// <summary>Guest-physical addresses the HVM builder uses before the guest's own code takes over.</summary>
public static class HvmLayout
{
    /// <summary>Boot GDT: null, 64-bit code (0x08), data (0x10), 32-bit code (0x18).</summary>
    public const ulong BootGdt = 0x1000;
    public const ulong BootPml4 = 0x2000;
    public const ulong BootPdpt = 0x3000;
    /// <summary>Four page directories of 2 MiB pages identity-map the first 4 GiB.</summary>
    public const ulong BootPageDirectories = 0x4000;
    public const ulong BootStackTop = 0x80000;
    /// <summary>Where a flat image is loaded unless the caller says otherwise.</summary>
    public const ulong DefaultFlatLoad = 0x100000;
    /// <summary>The lowest address an image may occupy: below it are the builder's tables.</summary>
    public const ulong LowestImageAddress = 0x8000;

    public const ushort Code64Selector = 0x08, DataSelector = 0x10, Code32Selector = 0x18;
    public const ushort Com1 = 0x3f8;
}
