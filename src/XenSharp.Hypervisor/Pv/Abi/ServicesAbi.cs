using System.Runtime.InteropServices;

namespace XenSharp.Hypervisor.Pv.Abi;

// ABI items the PV services half needs that the builder's files do not declare. Items with [XenName] are in
// headers the ABI test includes (xen.h, version.h, grant_table.h) and are checked by it; the physdev.h values
// (not included by that test) were checked by hand with gcc against libxen-dev 4.17's headers.

/// <summary>console_io commands (<c>xen.h</c>).</summary>
public static class ConsoleIo
{
    [XenName("CONSOLEIO_write")] public const int Write = 0;
    [XenName("CONSOLEIO_read")] public const int Read = 1;
}

/// <summary>vcpu_time_info.flags (<c>xen.h</c>).</summary>
public static class PvclockFlags
{
    [XenName("XEN_PVCLOCK_TSC_STABLE_BIT")] public const byte TscStable = 1 << 0;
    [XenName("XEN_PVCLOCK_GUEST_STOPPED")] public const byte GuestStopped = 1 << 1;
}

/// <summary>physdev_op commands (<c>physdev.h</c>; values checked by hand, the header is not in the ABI test).</summary>
public static class PhysdevOp
{
    public const int IrqUnmaskNotify = 4;
    public const int IrqStatusQuery = 5;
    public const int SetIopl = 6;
    public const int SetIobitmap = 7;
    public const int ApicRead = 8;
    public const int ApicWrite = 9;
    public const int AllocIrqVector = 10;
    public const int FreeIrqVector = 11;
    public const int Eoi = 12;
    public const int MapPirq = 13;
    public const int UnmapPirq = 14;
    public const int ManagePciAdd = 15;
    public const int ManagePciRemove = 16;
    public const int PirqEoiGmfnV1 = 17;
    public const int RestoreMsi = 19;
    public const int ManagePciAddExt = 20;
    public const int SetupGsi = 21;
    public const int GetFreePirq = 23;
    public const int PciMmcfgReserved = 24;
    public const int PciDeviceAdd = 25;
    public const int PciDeviceRemove = 26;
    public const int RestoreMsiExt = 27;
    public const int PirqEoiGmfnV2 = 28;
    public const int DbgpOp = 29;
    public const int PrepareMsix = 30;
    public const int ReleaseMsix = 31;
    /// <summary>sizeof(struct physdev_set_iopl) = 4 (u32 iopl); sizeof(struct physdev_pirq_eoi_gmfn) = 8 (xen_pfn_t gmfn).</summary>
    public const int SetIoplSize = 4, PirqEoiGmfnSize = 8;
}

[XenName("struct gnttab_set_version")]
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct GnttabSetVersion { [FieldOffset(0), XenName("version")] public uint Version; }

[XenName("struct gnttab_get_version")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct GnttabGetVersion
{
    [FieldOffset(0), XenName("dom")] public ushort Dom;
    [FieldOffset(2), XenName("pad")] public ushort Pad;
    [FieldOffset(4), XenName("version")] public uint Version;
}

[XenName("struct xen_compile_info")]
[StructLayout(LayoutKind.Explicit, Size = 144)]
public unsafe struct XenCompileInfo
{
    [FieldOffset(0), XenName("compiler")] public fixed byte Compiler[64];
    [FieldOffset(64), XenName("compile_by")] public fixed byte CompileBy[16];
    [FieldOffset(80), XenName("compile_domain")] public fixed byte CompileDomain[32];
    [FieldOffset(112), XenName("compile_date")] public fixed byte CompileDate[32];
}

/// <summary>Sizes of the xen_version string buffers (<c>version.h</c>).</summary>
public static class XenVerSizes
{
    /// <summary>xen_commandline_t is char[1024].</summary>
    public const int CommandlineLen = 1024;
    /// <summary>xen_domain_handle_t is uint8_t[16].</summary>
    public const int GuestHandleLen = 16;
    /// <summary>e820 entry in the guest's XENMEM_memory_map buffer: u64 addr, u64 size, u32 type (packed, 20 bytes).</summary>
    public const int E820EntrySize = 20;
    public const uint E820Ram = 1;
}
