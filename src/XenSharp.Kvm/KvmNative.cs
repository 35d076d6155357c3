using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>
/// ioctl numbers, capability numbers and exit reasons from &lt;linux/kvm.h&gt;. The layout tests compile a C program
/// against the installed kernel headers and compare every value here with the one the C compiler computes.
/// </summary>
public static class KvmIoctl
{
    private const uint KVMIO = 0xAE;
    private const uint IocNone = 0, IocWrite = 1, IocRead = 2;

    // asm-generic/ioctl.h: dir(2) | size(14) | type(8) | nr(8).
    private static nuint Ioc(uint dir, uint nr, int size) => (nuint)((dir << 30) | ((uint)size << 16) | (KVMIO << 8) | nr);
    private static nuint Io(uint nr) => Ioc(IocNone, nr, 0);
    private static nuint Ior(uint nr, int size) => Ioc(IocRead, nr, size);
    private static nuint Iow(uint nr, int size) => Ioc(IocWrite, nr, size);
    private static nuint Iowr(uint nr, int size) => Ioc(IocRead | IocWrite, nr, size);

    // On /dev/kvm.
    public static readonly nuint KVM_GET_API_VERSION = Io(0x00);
    public static readonly nuint KVM_CREATE_VM = Io(0x01);
    public static readonly nuint KVM_CHECK_EXTENSION = Io(0x03);
    public static readonly nuint KVM_GET_VCPU_MMAP_SIZE = Io(0x04);
    public static readonly nuint KVM_GET_SUPPORTED_CPUID = Iowr(0x05, KvmCpuid2Header.Size);

    // On a VM fd.
    public static readonly nuint KVM_CREATE_VCPU = Io(0x41);
    public static readonly nuint KVM_SET_USER_MEMORY_REGION = Iow(0x46, KvmUserspaceMemoryRegion.Size);
    public static readonly nuint KVM_SET_TSS_ADDR = Io(0x47);
    public static readonly nuint KVM_SET_IDENTITY_MAP_ADDR = Iow(0x48, sizeof(ulong));
    public static readonly nuint KVM_CREATE_IRQCHIP = Io(0x60);
    public static readonly nuint KVM_IRQ_LINE = Iow(0x61, KvmIrqLevel.Size);
    public static readonly nuint KVM_CREATE_PIT2 = Iow(0x77, KvmPitConfig.Size);

    // On a vCPU fd.
    public static readonly nuint KVM_RUN = Io(0x80);
    public static readonly nuint KVM_GET_REGS = Ior(0x81, KvmLayout.RegsSize);
    public static readonly nuint KVM_SET_REGS = Iow(0x82, KvmLayout.RegsSize);
    public static readonly nuint KVM_GET_SREGS = Ior(0x83, KvmLayout.SregsSize);
    public static readonly nuint KVM_SET_SREGS = Iow(0x84, KvmLayout.SregsSize);
    public static readonly nuint KVM_INTERRUPT = Iow(0x86, KvmInterrupt.Size);
    public static readonly nuint KVM_GET_MSRS = Iowr(0x88, KvmMsrsHeader.Size);
    public static readonly nuint KVM_SET_MSRS = Iow(0x89, KvmMsrsHeader.Size);
    public static readonly nuint KVM_SET_CPUID2 = Iow(0x90, KvmCpuid2Header.Size);
}

/// <summary>KVM_CAP_* numbers for <see cref="KvmSystem.CheckExtension"/>.</summary>
public static class KvmCap
{
    public const int IRQCHIP = 0, USER_MEMORY = 3, SET_TSS_ADDR = 4, EXT_CPUID = 7, NR_VCPUS = 9, NR_MEMSLOTS = 10, PIT2 = 33,
        SET_IDENTITY_MAP_ADDR = 37, SYNC_REGS = 74, READONLY_MEM = 81, IMMEDIATE_EXIT = 136, MAX_VCPUS = 66;
}

/// <summary>KVM_EXIT_* values of <c>kvm_run.exit_reason</c>.</summary>
public static class KvmExit
{
    public const uint UNKNOWN = 0, EXCEPTION = 1, IO = 2, HYPERCALL = 3, DEBUG = 4, HLT = 5, MMIO = 6, IRQ_WINDOW_OPEN = 7,
        SHUTDOWN = 8, FAIL_ENTRY = 9, INTR = 10, SET_TPR = 11, TPR_ACCESS = 12, NMI = 16, INTERNAL_ERROR = 17,
        SYSTEM_EVENT = 24, IOAPIC_EOI = 26, X86_RDMSR = 29, X86_WRMSR = 30, DIRTY_RING_FULL = 31, X86_BUS_LOCK = 33, XEN = 34;

    public const byte IO_IN = 0, IO_OUT = 1;

    public const uint SYSTEM_EVENT_SHUTDOWN = 1, SYSTEM_EVENT_RESET = 2, SYSTEM_EVENT_CRASH = 3;

    public const uint INTERNAL_ERROR_EMULATION = 1, INTERNAL_ERROR_SIMUL_EX = 2, INTERNAL_ERROR_DELIVERY_EV = 3,
        INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

    public static string Name(uint reason) => reason switch
    {
        UNKNOWN => "KVM_EXIT_UNKNOWN", EXCEPTION => "KVM_EXIT_EXCEPTION", IO => "KVM_EXIT_IO", HYPERCALL => "KVM_EXIT_HYPERCALL",
        DEBUG => "KVM_EXIT_DEBUG", HLT => "KVM_EXIT_HLT", MMIO => "KVM_EXIT_MMIO", IRQ_WINDOW_OPEN => "KVM_EXIT_IRQ_WINDOW_OPEN",
        SHUTDOWN => "KVM_EXIT_SHUTDOWN", FAIL_ENTRY => "KVM_EXIT_FAIL_ENTRY", INTR => "KVM_EXIT_INTR", SET_TPR => "KVM_EXIT_SET_TPR",
        TPR_ACCESS => "KVM_EXIT_TPR_ACCESS", NMI => "KVM_EXIT_NMI", INTERNAL_ERROR => "KVM_EXIT_INTERNAL_ERROR",
        SYSTEM_EVENT => "KVM_EXIT_SYSTEM_EVENT", IOAPIC_EOI => "KVM_EXIT_IOAPIC_EOI", X86_RDMSR => "KVM_EXIT_X86_RDMSR",
        X86_WRMSR => "KVM_EXIT_X86_WRMSR", DIRTY_RING_FULL => "KVM_EXIT_DIRTY_RING_FULL", X86_BUS_LOCK => "KVM_EXIT_X86_BUS_LOCK",
        XEN => "KVM_EXIT_XEN",
        _ => $"exit reason {reason}",
    };
}

/// <summary>Sizes and flags of the structures passed by pointer.</summary>
public static class KvmLayout
{
    public const int ApiVersion = 12;
    /// <summary>sizeof(struct kvm_regs) = sizeof(<see cref="VcpuRegisters"/>).</summary>
    public const int RegsSize = 144;
    /// <summary>sizeof(struct kvm_sregs) = sizeof(<see cref="SpecialRegisters"/>).</summary>
    public const int SregsSize = 312;
    public const uint MEM_READONLY = 1u << 1;
    public const uint CPUID_FLAG_SIGNIFICANT_INDEX = 1;
    public const uint PIT_SPEAKER_DUMMY = 1;
    /// <summary>KVM_SYNC_X86_* bits of kvm_valid_regs / kvm_dirty_regs.</summary>
    public const ulong SYNC_X86_REGS = 1, SYNC_X86_SREGS = 2, SYNC_X86_EVENTS = 4;
}

/// <summary>struct kvm_userspace_memory_region.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmUserspaceMemoryRegion
{
    public const int Size = 32;
    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}

/// <summary>struct kvm_irq_level (the irq/status union is one u32).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmIrqLevel
{
    public const int Size = 8;
    public uint Irq;
    public uint Level;
}

/// <summary>struct kvm_pit_config.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmPitConfig
{
    public const int Size = 64;
    public uint Flags;
    public fixed uint Pad[15];
}

/// <summary>struct kvm_interrupt.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmInterrupt
{
    public const int Size = 4;
    public uint Irq;
}

/// <summary>The fixed head of struct kvm_cpuid2; <see cref="KvmCpuidEntry2"/> entries follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmCpuid2Header
{
    public const int Size = 8;
    public uint Nent;
    public uint Padding;
}

/// <summary>struct kvm_cpuid_entry2.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmCpuidEntry2
{
    public const int Size = 40;
    public uint Function;
    public uint Index;
    public uint Flags;
    public uint Eax, Ebx, Ecx, Edx;
    public fixed uint Padding[3];
}

/// <summary>The fixed head of struct kvm_msrs; <see cref="KvmMsrEntry"/> entries follow it.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmMsrsHeader
{
    public const int Size = 8;
    public uint Nmsrs;
    public uint Pad;
}

/// <summary>struct kvm_msr_entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmMsrEntry
{
    public const int Size = 16;
    public uint Index;
    public uint Reserved;
    public ulong Data;
}

/// <summary>kvm_msrs with one entry, as KVM_GET_MSRS / KVM_SET_MSRS take it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrsOne
{
    public KvmMsrsHeader Header;
    public KvmMsrEntry Entry;
}

/// <summary>
/// The x86-64 layout of the shared <c>struct kvm_run</c> page (mmapped from the vCPU fd). Only the members this
/// back end reads or writes are declared; the exit union starts at 32 and is 256 bytes, the sync-regs area at 304.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 2352)]
public struct KvmRun
{
    public const int Size = 2352;
    [FieldOffset(0)] public byte RequestInterruptWindow;
    [FieldOffset(1)] public byte ImmediateExit;
    [FieldOffset(8)] public uint ExitReason;
    [FieldOffset(12)] public byte ReadyForInterruptInjection;
    [FieldOffset(13)] public byte IfFlag;
    [FieldOffset(14)] public ushort Flags;
    [FieldOffset(16)] public ulong Cr8;
    [FieldOffset(24)] public ulong ApicBase;

    // The exit union.
    [FieldOffset(32)] public KvmRunHw Hw;
    [FieldOffset(32)] public KvmRunFailEntry FailEntry;
    [FieldOffset(32)] public KvmRunIo Io;
    [FieldOffset(32)] public KvmRunMmio Mmio;
    [FieldOffset(32)] public KvmRunInternal Internal;
    [FieldOffset(32)] public KvmRunSystemEvent SystemEvent;

    [FieldOffset(288)] public ulong KvmValidRegs;
    [FieldOffset(296)] public ulong KvmDirtyRegs;
    /// <summary>s.regs.regs: struct kvm_sync_regs begins with kvm_regs.</summary>
    [FieldOffset(304)] public VcpuRegisters SyncRegs;
    /// <summary>s.regs.sregs.</summary>
    [FieldOffset(448)] public SpecialRegisters SyncSregs;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmRunHw
{
    public ulong HardwareExitReason;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmRunFailEntry
{
    public ulong HardwareEntryFailureReason;
    public uint Cpu;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmRunIo
{
    public byte Direction;
    public byte Size;
    public ushort Port;
    public uint Count;
    /// <summary>Offset of the data from the start of kvm_run.</summary>
    public ulong DataOffset;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmRunMmio
{
    public ulong PhysAddr;
    public fixed byte Data[8];
    public uint Len;
    public byte IsWrite;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmRunInternal
{
    public uint Suberror;
    public uint Ndata;
    public fixed ulong Data[16];
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmRunSystemEvent
{
    public uint Type;
    public uint Ndata;
    public fixed ulong Data[16];
}
