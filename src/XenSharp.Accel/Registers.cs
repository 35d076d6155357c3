using System.Runtime.InteropServices;

namespace XenSharp.Accel;

/// <summary>General-purpose registers. Same layout as KVM's <c>struct kvm_regs</c> so the KVM back end passes it through unchanged.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct VcpuRegisters
{
    public ulong Rax, Rbx, Rcx, Rdx;
    public ulong Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11;
    public ulong R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

/// <summary>A segment register's hidden state. Same layout as <c>struct kvm_segment</c> (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SegmentRegister
{
    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type;
    public byte Present, Dpl, Db, S, L, G, Avl;
    public byte Unusable;
    public byte Padding;

    /// <summary>A flat 64-bit code segment (L=1) with the given selector and DPL.</summary>
    public static SegmentRegister Code64(ushort selector, byte dpl) => new()
    {
        Selector = selector, Limit = 0xffffffff, Type = 0xb, Present = 1, Dpl = dpl, S = 1, L = 1, G = 1,
    };

    /// <summary>A flat writable data segment with the given selector and DPL.</summary>
    public static SegmentRegister Data(ushort selector, byte dpl) => new()
    {
        Selector = selector, Limit = 0xffffffff, Type = 0x3, Present = 1, Dpl = dpl, S = 1, Db = 1, G = 1,
    };
}

/// <summary>GDTR/IDTR. Same layout as <c>struct kvm_dtable</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DescriptorTableRegister
{
    public ulong Base;
    public ushort Limit;
    public ushort Padding0, Padding1, Padding2;
}

/// <summary>Segment, control and system registers. Same layout as <c>struct kvm_sregs</c> (312 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct SpecialRegisters
{
    /// <summary>
    /// Paging, long mode and flat 64-bit segments at CPL3 (code <paramref name="userCs"/>, data <paramref name="userDs"/>),
    /// with the given page tables, GDT and 64-bit TSS: how a vCPU that runs user code from its first instruction starts.
    /// </summary>
    public void SetFlatUserLongMode(ulong cr3, ushort userCs, ushort userDs, DescriptorTableRegister gdt, ulong tssBase, uint tssLimit, ushort tssSelector)
    {
        Cr3 = cr3;
        Cr4 = X86.Cr4Pae;
        Cr0 = X86.Cr0Pe | X86.Cr0Et | X86.Cr0Pg;
        Efer = X86.EferSce | X86.EferLme | X86.EferLma;
        Cs = SegmentRegister.Code64(userCs, 3);
        Ds = Es = Fs = Gs = Ss = SegmentRegister.Data(userDs, 3);
        Gdt = gdt;
        Tr = new SegmentRegister { Base = tssBase, Limit = tssLimit, Selector = tssSelector, Present = 1, Type = 11 };
    }

    public SegmentRegister Cs, Ds, Es, Fs, Gs, Ss;
    public SegmentRegister Tr, Ldt;
    public DescriptorTableRegister Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8;
    public ulong Efer;
    public ulong ApicBase;
    public fixed ulong InterruptBitmap[4];
}

/// <summary>Architectural bits the builders and back ends share.</summary>
public static class X86
{
    /// <summary>A 48-bit canonical address: bits 63..47 all equal.</summary>
    public static bool IsCanonical(ulong va) => (va >> 47) is 0 or 0x1ffff;

    public const ulong Cr0Pe = 1UL << 0, Cr0Mp = 1UL << 1, Cr0Et = 1UL << 4, Cr0Ne = 1UL << 5, Cr0Wp = 1UL << 16, Cr0Pg = 1UL << 31;
    public const ulong Cr4Pae = 1UL << 5, Cr4Pge = 1UL << 7, Cr4Osfxsr = 1UL << 9, Cr4Osxmmexcpt = 1UL << 10, Cr4Fsgsbase = 1UL << 16, Cr4Osxsave = 1UL << 18;
    public const ulong EferSce = 1UL << 0, EferLme = 1UL << 8, EferLma = 1UL << 10, EferNx = 1UL << 11;
    public const ulong RflagsCf = 1UL << 0, RflagsReserved1 = 1UL << 1, RflagsTf = 1UL << 8, RflagsIf = 1UL << 9, RflagsDf = 1UL << 10,
        RflagsIopl = 3UL << 12, RflagsNt = 1UL << 14, RflagsRf = 1UL << 16, RflagsVm = 1UL << 17, RflagsAc = 1UL << 18;

    public const ulong PtePresent = 1UL << 0, PteRw = 1UL << 1, PteUser = 1UL << 2, PtePwt = 1UL << 3, PtePcd = 1UL << 4,
        PteAccessed = 1UL << 5, PteDirty = 1UL << 6, PtePse = 1UL << 7, PteGlobal = 1UL << 8, PteNx = 1UL << 63;
    /// <summary>Bits 12..51 of a page-table entry: the frame address.</summary>
    public const ulong PteAddressMask = 0x000f_ffff_ffff_f000UL;

    public const uint MsrEfer = 0xc0000080, MsrStar = 0xc0000081, MsrLstar = 0xc0000082, MsrCstar = 0xc0000083, MsrSyscallMask = 0xc0000084,
        MsrFsBase = 0xc0000100, MsrGsBase = 0xc0000101, MsrKernelGsBase = 0xc0000102, MsrTscAux = 0xc0000103,
        MsrApicBase = 0x1b, MsrTsc = 0x10, MsrPat = 0x277, MsrMiscEnable = 0x1a0;

    public const int VectorDe = 0, VectorDb = 1, VectorNmi = 2, VectorBp = 3, VectorUd = 6, VectorNm = 7, VectorDf = 8,
        VectorTs = 10, VectorNp = 11, VectorSs = 12, VectorGp = 13, VectorPf = 14, VectorMf = 16, VectorAc = 17, VectorXm = 19;

    private static readonly string[] VectorNames = ["de", "db", "nmi", "bp", "of", "br", "ud", "nm", "df", "9", "ts", "np", "ss", "gp", "pf", "15", "mf", "ac", "mc", "xm", "ve", "cp"];

    /// <summary>The exception's mnemonic in lower case (#GP → "gp"), or its number for the others.</summary>
    public static string VectorName(int vector) => (uint)vector < (uint)VectorNames.Length ? VectorNames[vector] : vector.ToString();

    /// <summary>Exception vectors that push an error code.</summary>
    public static bool HasErrorCode(int vector) => vector is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21 or 29 or 30;
}
