namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// Where the hypervisor area of a PV domain lives: guest-virtual (inside Xen's reserved hole, L4 slots 257-271;
/// slot 256 is unusable on PVM hosts) and guest-physical (above guest RAM, in its own memory region).
/// </summary>
public static class PvLayout
{
    public const int HvSlot = 257;      // GDTs, IDT, stubs, doorbell, per-vCPU blocks
    public const int M2pSlot = 258;     // read-only machine-to-phys table
    public const int DirectMapSlot = 259; // supervisor-only writable map of guest RAM, used by the apply stub
    public const int FirstHvSlot = 256, LastHvSlot = 271;

    public static ulong SlotBase(int slot) => 0xffff_0000_0000_0000UL | ((ulong)slot << 39);

    public static readonly ulong HvBase = SlotBase(HvSlot);
    public static readonly ulong M2pBase = SlotBase(M2pSlot);
    public static readonly ulong DirectMapBase = SlotBase(DirectMapSlot);

    /// <summary>Per-vCPU GDT: 16 pages (14 guest frames, Xen's reserved page, a zero page).</summary>
    public const ulong GdtRegionOffset = 0;
    public const ulong GdtStride = 0x10000;
    public static ulong GdtVa(int vcpu) => HvBase + GdtRegionOffset + (ulong)vcpu * GdtStride;

    /// <summary>Per-vCPU shadow LDT: 16 pages (8192 descriptors), the guest's LDT frames mapped on first use as Xen does.</summary>
    public const ulong LdtRegionOffset = 0x200_0000;
    public const ulong LdtStride = 0x10000;
    public const int LdtPages = 16;
    public static ulong LdtVa(int vcpu) => HvBase + LdtRegionOffset + (ulong)vcpu * LdtStride;
    /// <summary>Index of the LDT system descriptor (16 bytes) in Xen's reserved GDT page: selector 0xe050.</summary>
    public const int LdtReservedIndex = 10;

    /// <summary>Shared pages: IDT, stub code, doorbell.</summary>
    public const ulong MiscOffset = 0x80_0000;
    public static readonly ulong IdtVa = HvBase + MiscOffset;
    public static readonly ulong StubVa = HvBase + MiscOffset + 0x1000;
    public const int StubPages = 4;
    public static readonly ulong DoorbellVa = HvBase + MiscOffset + 0x8000;

    /// <summary>Per-vCPU block (32 KiB aligned): TSS, command page, ring-0 stack, IST stack.</summary>
    public const ulong VcpuRegionOffset = 0x100_0000;
    public const ulong VcpuStride = 0x8000;
    public const int VcpuBlockPages = 8;
    public const ulong TssPage = 0, CommandPage = 0x1000, StackBottom = 0x2000, StackTop = 0x6000, IstBottom = 0x6000, IstTop = 0x8000;
    public static ulong VcpuBlockVa(int vcpu) => HvBase + VcpuRegionOffset + (ulong)vcpu * VcpuStride;

    public const int MaxVcpus = 128;

    /// <summary>Guest-physical base of the hypervisor area's own memory: above guest RAM, below 512 GiB so the direct map covers it.</summary>
    public const ulong HvGpa = 0x70_0000_0000UL;
    /// <summary>Guest-physical doorbell page: no memory behind it, so every access is an MMIO exit.</summary>
    public const ulong DoorbellGpa = 0x7E_0000_0000UL;

    /// <summary>
    /// The syscall entry stubs ring by port I/O: `out imm8, al` reads al and writes no register, so every guest register
    /// survives, and it needs no memory access, which under PVM is what makes an MMIO doorbell from CPL3 slow (a
    /// shadow-MMU fault and an emulated store). The TSS I/O bitmap lets CPL3 use exactly these ports; any other port
    /// stays #GP, as on Xen for a domU.
    /// </summary>
    public const int DoorbellPortSyscall = 0xe2, DoorbellPortSyscall32 = 0xe3, DoorbellPortSysenter = 0xe4;
    /// <summary>TSS I/O bitmap: after the 104-byte TSS, covering ports 0..(8·IoBitmapBytes−1), then the 0xff terminator.</summary>
    public const int IoBitmapOffset = 104, IoBitmapBytes = (DoorbellPortSysenter / 8) + 1;
    public const uint TssLimit = IoBitmapOffset + IoBitmapBytes; // includes the terminator byte

    /// <summary>The TSS I/O bitmap (with its 0xff terminator) that opens exactly <paramref name="openPorts"/> to CPL3.</summary>
    public static byte[] IoBitmap(params int[] openPorts)
    {
        var bitmap = new byte[IoBitmapBytes + 1];
        Array.Fill(bitmap, (byte)0xff);
        foreach (int port in openPorts) bitmap[port / 8] &= unchecked((byte)~(1 << (port % 8)));
        return bitmap;
    }

    // Doorbell offsets: exception vector v rings at v*8 (data = CR2); the rest above 0x800.
    public const ulong DbResumeRefused = 0x818; // the resume stub entered without an armed command page
    public const ulong DbApplyDone = 0x820;     // the resume stub finished one page of a longer command list

    // Xen's reserved GDT selectors.
    public const ushort HypervisorCs = 0xe008, HypervisorDs = 0xe010, Ring3Cs32 = 0xe023, Ring3Ds = 0xe02b, Ring3Cs64 = 0xe033, TssSelector = 0xe040, LdtSelector = 0xe050, PerCpuSelector = 0xe060;
    public const int FirstReservedGdtEntry = 7168;

    /// <summary>SYSCALL/SYSRET selector bases: kernel 0xe008/0xe010, user 0xe023 (+16 = 0xe033 CS64, +8 = 0xe02b SS).</summary>
    public const ulong StarValue = ((ulong)Ring3Cs32 << 48) | ((ulong)HypervisorCs << 32);
    /// <summary>RFLAGS bits cleared on syscall entry: TF, IF, DF, IOPL, NT, AC.</summary>
    public const ulong SyscallMask = 0x47700;

    public const ulong M2pEntryBytes = 8;
}
