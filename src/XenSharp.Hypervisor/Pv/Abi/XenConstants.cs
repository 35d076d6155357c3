namespace XenSharp.Hypervisor.Pv.Abi;

// Constants of Xen's public ABI (xen/include/public/*.h) for a 64-bit x86 PV guest.
// Every [XenName] value is compared with the real header by the ABI test.

/// <summary>Hypercall numbers (rax on <c>syscall</c>), <c>xen.h</c>.</summary>
public static class Hypercall
{
    [XenName("__HYPERVISOR_set_trap_table")] public const int SetTrapTable = 0;
    [XenName("__HYPERVISOR_mmu_update")] public const int MmuUpdate = 1;
    [XenName("__HYPERVISOR_set_gdt")] public const int SetGdt = 2;
    [XenName("__HYPERVISOR_stack_switch")] public const int StackSwitch = 3;
    [XenName("__HYPERVISOR_set_callbacks")] public const int SetCallbacks = 4;
    [XenName("__HYPERVISOR_fpu_taskswitch")] public const int FpuTaskswitch = 5;
    [XenName("__HYPERVISOR_sched_op_compat")] public const int SchedOpCompat = 6;
    [XenName("__HYPERVISOR_platform_op")] public const int PlatformOp = 7;
    [XenName("__HYPERVISOR_set_debugreg")] public const int SetDebugreg = 8;
    [XenName("__HYPERVISOR_get_debugreg")] public const int GetDebugreg = 9;
    [XenName("__HYPERVISOR_update_descriptor")] public const int UpdateDescriptor = 10;
    [XenName("__HYPERVISOR_memory_op")] public const int MemoryOp = 12;
    [XenName("__HYPERVISOR_multicall")] public const int Multicall = 13;
    [XenName("__HYPERVISOR_update_va_mapping")] public const int UpdateVaMapping = 14;
    [XenName("__HYPERVISOR_set_timer_op")] public const int SetTimerOp = 15;
    [XenName("__HYPERVISOR_event_channel_op_compat")] public const int EventChannelOpCompat = 16;
    [XenName("__HYPERVISOR_xen_version")] public const int XenVersion = 17;
    [XenName("__HYPERVISOR_console_io")] public const int ConsoleIo = 18;
    [XenName("__HYPERVISOR_physdev_op_compat")] public const int PhysdevOpCompat = 19;
    [XenName("__HYPERVISOR_grant_table_op")] public const int GrantTableOp = 20;
    [XenName("__HYPERVISOR_vm_assist")] public const int VmAssist = 21;
    [XenName("__HYPERVISOR_update_va_mapping_otherdomain")] public const int UpdateVaMappingOtherdomain = 22;
    [XenName("__HYPERVISOR_iret")] public const int Iret = 23;
    [XenName("__HYPERVISOR_vcpu_op")] public const int VcpuOp = 24;
    [XenName("__HYPERVISOR_set_segment_base")] public const int SetSegmentBase = 25;
    [XenName("__HYPERVISOR_mmuext_op")] public const int MmuextOp = 26;
    [XenName("__HYPERVISOR_xsm_op")] public const int XsmOp = 27;
    [XenName("__HYPERVISOR_nmi_op")] public const int NmiOp = 28;
    [XenName("__HYPERVISOR_sched_op")] public const int SchedOp = 29;
    [XenName("__HYPERVISOR_callback_op")] public const int CallbackOp = 30;
    [XenName("__HYPERVISOR_xenoprof_op")] public const int XenoprofOp = 31;
    [XenName("__HYPERVISOR_event_channel_op")] public const int EventChannelOp = 32;
    [XenName("__HYPERVISOR_physdev_op")] public const int PhysdevOp = 33;
    [XenName("__HYPERVISOR_hvm_op")] public const int HvmOp = 34;
    [XenName("__HYPERVISOR_sysctl")] public const int Sysctl = 35;
    [XenName("__HYPERVISOR_domctl")] public const int Domctl = 36;
    [XenName("__HYPERVISOR_kexec_op")] public const int KexecOp = 37;
    [XenName("__HYPERVISOR_tmem_op")] public const int TmemOp = 38;
    [XenName("__HYPERVISOR_argo_op")] public const int ArgoOp = 39;
    [XenName("__HYPERVISOR_xenpmu_op")] public const int XenpmuOp = 40;
    [XenName("__HYPERVISOR_dm_op")] public const int DmOp = 41;
    [XenName("__HYPERVISOR_hypfs_op")] public const int HypfsOp = 42;
    [XenName("__HYPERVISOR_arch_0")] public const int Arch0 = 48;
    [XenName("__HYPERVISOR_arch_7")] public const int Arch7 = 55;
    /// <summary>x86: the arch_1 slot is the PV <c>mca</c> hypercall.</summary>
    [XenName("__HYPERVISOR_arch_1")] public const int Mca = 49;
    /// <summary>Hypercall pages hold 4096/32 stubs.</summary>
    public const int PageStubCount = 128;
}

/// <summary>Xen error numbers (<c>errno.h</c>). A hypercall returns the negated value.</summary>
public static class XenErrno
{
    [XenName("XEN_EPERM")] public const int EPERM = 1;
    [XenName("XEN_ENOENT")] public const int ENOENT = 2;
    [XenName("XEN_ESRCH")] public const int ESRCH = 3;
    /// <summary>Hypervisor-internal (only defined under __XEN__); never returned to a guest.</summary>
    public const int EINTR = 4;
    [XenName("XEN_EIO")] public const int EIO = 5;
    [XenName("XEN_ENXIO")] public const int ENXIO = 6;
    [XenName("XEN_E2BIG")] public const int E2BIG = 7;
    [XenName("XEN_ENOEXEC")] public const int ENOEXEC = 8;
    [XenName("XEN_EBADF")] public const int EBADF = 9;
    [XenName("XEN_ECHILD")] public const int ECHILD = 10;
    [XenName("XEN_EAGAIN")] public const int EAGAIN = 11;
    [XenName("XEN_EWOULDBLOCK")] public const int EWOULDBLOCK = 11;
    [XenName("XEN_ENOMEM")] public const int ENOMEM = 12;
    [XenName("XEN_EACCES")] public const int EACCES = 13;
    [XenName("XEN_EFAULT")] public const int EFAULT = 14;
    [XenName("XEN_EBUSY")] public const int EBUSY = 16;
    [XenName("XEN_EEXIST")] public const int EEXIST = 17;
    [XenName("XEN_EXDEV")] public const int EXDEV = 18;
    [XenName("XEN_ENODEV")] public const int ENODEV = 19;
    [XenName("XEN_ENOTDIR")] public const int ENOTDIR = 20;
    [XenName("XEN_EISDIR")] public const int EISDIR = 21;
    [XenName("XEN_EINVAL")] public const int EINVAL = 22;
    [XenName("XEN_ENFILE")] public const int ENFILE = 23;
    [XenName("XEN_EMFILE")] public const int EMFILE = 24;
    [XenName("XEN_ENOSPC")] public const int ENOSPC = 28;
    [XenName("XEN_EROFS")] public const int EROFS = 30;
    [XenName("XEN_EMLINK")] public const int EMLINK = 31;
    [XenName("XEN_EDOM")] public const int EDOM = 33;
    [XenName("XEN_ERANGE")] public const int ERANGE = 34;
    [XenName("XEN_EDEADLK")] public const int EDEADLK = 35;
    [XenName("XEN_ENAMETOOLONG")] public const int ENAMETOOLONG = 36;
    [XenName("XEN_ENOLCK")] public const int ENOLCK = 37;
    [XenName("XEN_ENOSYS")] public const int ENOSYS = 38;
    [XenName("XEN_ENOTEMPTY")] public const int ENOTEMPTY = 39;
    [XenName("XEN_ENODATA")] public const int ENODATA = 61;
    [XenName("XEN_ETIME")] public const int ETIME = 62;
    [XenName("XEN_EBADMSG")] public const int EBADMSG = 74;
    [XenName("XEN_EOVERFLOW")] public const int EOVERFLOW = 75;
    [XenName("XEN_EILSEQ")] public const int EILSEQ = 84;
    /// <summary>Hypervisor-internal continuation marker; never returned to a guest.</summary>
    public const int ERESTART = 85;
    [XenName("XEN_ENOTSOCK")] public const int ENOTSOCK = 88;
    [XenName("XEN_EMSGSIZE")] public const int EMSGSIZE = 90;
    [XenName("XEN_EOPNOTSUPP")] public const int EOPNOTSUPP = 95;
    [XenName("XEN_EADDRINUSE")] public const int EADDRINUSE = 98;
    [XenName("XEN_EADDRNOTAVAIL")] public const int EADDRNOTAVAIL = 99;
    [XenName("XEN_ENOBUFS")] public const int ENOBUFS = 105;
    [XenName("XEN_EISCONN")] public const int EISCONN = 106;
    [XenName("XEN_ENOTCONN")] public const int ENOTCONN = 107;
    [XenName("XEN_ETIMEDOUT")] public const int ETIMEDOUT = 110;
    [XenName("XEN_ECONNREFUSED")] public const int ECONNREFUSED = 111;
}

/// <summary>start_info.flags (<c>xen.h</c>).</summary>
public static class StartInfoFlags
{
    [XenName("SIF_PRIVILEGED")] public const uint Privileged = 1 << 0;
    [XenName("SIF_INITDOMAIN")] public const uint InitDomain = 1 << 1;
    [XenName("SIF_MULTIBOOT_MOD")] public const uint MultibootMod = 1 << 2;
    /// <summary>mod_start is a PFN and the module is not mapped by the bootstrap tables.</summary>
    [XenName("SIF_MOD_START_PFN")] public const uint ModStartPfn = 1 << 3;
    [XenName("SIF_VIRT_P2M_4TOOLS")] public const uint VirtP2m4Tools = 1 << 4;
    [XenName("SIF_PM_MASK")] public const uint PmMask = 0xff << 8;
    [XenName("MAX_GUEST_CMDLINE")] public const int MaxGuestCmdline = 1024;
    /// <summary>start_info.magic for a 64-bit PV guest (the guest type string libxenguest writes).</summary>
    public const string Magic = "xen-3.0-x86_64";
}

/// <summary>x86-64 PV address-space layout and segment selectors (<c>arch-x86/xen-x86_64.h</c>, <c>arch-x86/xen.h</c>).</summary>
public static class X86_64Layout
{
    [XenName("__HYPERVISOR_VIRT_START")] public const ulong HypervisorVirtStart = 0xFFFF_8000_0000_0000;
    [XenName("__HYPERVISOR_VIRT_END")] public const ulong HypervisorVirtEnd = 0xFFFF_8800_0000_0000;
    /// <summary>Default M2P placement (L4 slot 256). XenSharp places the M2P elsewhere in the hole and reports it with XENMEM_machphys_mapping.</summary>
    [XenName("__MACH2PHYS_VIRT_START")] public const ulong Mach2PhysVirtStart = 0xFFFF_8000_0000_0000;
    [XenName("__MACH2PHYS_VIRT_END")] public const ulong Mach2PhysVirtEnd = 0xFFFF_8040_0000_0000;
    [XenName("MACH2PHYS_NR_ENTRIES")] public const ulong Mach2PhysNrEntries = (Mach2PhysVirtEnd - Mach2PhysVirtStart) >> 3;
    /// <summary>L4 slots owned by the hypervisor: 256..271.</summary>
    public const int HypervisorFirstL4Slot = 256, HypervisorLastL4Slot = 271;

    [XenName("FIRST_RESERVED_GDT_PAGE")] public const int FirstReservedGdtPage = 14;
    [XenName("FIRST_RESERVED_GDT_BYTE")] public const int FirstReservedGdtByte = FirstReservedGdtPage * 4096;
    [XenName("FIRST_RESERVED_GDT_ENTRY")] public const int FirstReservedGdtEntry = FirstReservedGdtByte / 8;

    [XenName("FLAT_RING3_CS32")] public const ushort FlatRing3Cs32 = 0xe023;
    [XenName("FLAT_RING3_CS64")] public const ushort FlatRing3Cs64 = 0xe033;
    [XenName("FLAT_RING3_DS32")] public const ushort FlatRing3Ds32 = 0xe02b;
    [XenName("FLAT_RING3_DS64")] public const ushort FlatRing3Ds64 = 0x0000;
    [XenName("FLAT_RING3_SS32")] public const ushort FlatRing3Ss32 = 0xe02b;
    [XenName("FLAT_RING3_SS64")] public const ushort FlatRing3Ss64 = 0xe02b;
    [XenName("FLAT_KERNEL_CS64")] public const ushort FlatKernelCs64 = FlatRing3Cs64;
    [XenName("FLAT_KERNEL_DS64")] public const ushort FlatKernelDs64 = FlatRing3Ds64;
    [XenName("FLAT_KERNEL_SS64")] public const ushort FlatKernelSs64 = FlatRing3Ss64;
    [XenName("FLAT_KERNEL_CS32")] public const ushort FlatKernelCs32 = FlatRing3Cs32;
    [XenName("FLAT_KERNEL_DS32")] public const ushort FlatKernelDs32 = FlatRing3Ds32;
    [XenName("FLAT_KERNEL_SS32")] public const ushort FlatKernelSs32 = FlatRing3Ss32;
    [XenName("FLAT_USER_CS64")] public const ushort FlatUserCs64 = FlatRing3Cs64;
    [XenName("FLAT_USER_DS64")] public const ushort FlatUserDs64 = FlatRing3Ds64;
    [XenName("FLAT_USER_SS64")] public const ushort FlatUserSs64 = FlatRing3Ss64;
    [XenName("FLAT_USER_CS32")] public const ushort FlatUserCs32 = FlatRing3Cs32;
    [XenName("FLAT_USER_DS32")] public const ushort FlatUserDs32 = FlatRing3Ds32;
    [XenName("FLAT_USER_SS32")] public const ushort FlatUserSs32 = FlatRing3Ss32;

    [XenName("XEN_LEGACY_MAX_VCPUS")] public const int LegacyMaxVcpus = 32;

    [XenName("SEGBASE_FS")] public const int SegbaseFs = 0;
    [XenName("SEGBASE_GS_USER")] public const int SegbaseGsUser = 1;
    [XenName("SEGBASE_GS_KERNEL")] public const int SegbaseGsKernel = 2;
    [XenName("SEGBASE_GS_USER_SEL")] public const int SegbaseGsUserSel = 3;
}

/// <summary>vcpu_guest_context.flags and the iret frame flag.</summary>
public static class Vgcf
{
    [XenName("VGCF_i387_valid")] public const ulong I387Valid = 1 << 0;
    [XenName("VGCF_in_kernel")] public const ulong InKernel = 1 << 2;
    [XenName("VGCF_failsafe_disables_events")] public const ulong FailsafeDisablesEvents = 1 << 3;
    [XenName("VGCF_syscall_disables_events")] public const ulong SyscallDisablesEvents = 1 << 4;
    [XenName("VGCF_online")] public const ulong Online = 1 << 5;
    /// <summary>iret_context.flags: return with sysret semantics (rcx/r11 from the frame).</summary>
    [XenName("VGCF_in_syscall")] public const ulong InSyscall = 1 << 8;
}

/// <summary>mmu_update.ptr low bits (<c>xen.h</c>).</summary>
public static class MmuCmd
{
    [XenName("MMU_NORMAL_PT_UPDATE")] public const ulong NormalPtUpdate = 0;
    [XenName("MMU_MACHPHYS_UPDATE")] public const ulong MachphysUpdate = 1;
    [XenName("MMU_PT_UPDATE_PRESERVE_AD")] public const ulong PtUpdatePreserveAd = 2;
    [XenName("MMU_PT_UPDATE_NO_TRANSLATE")] public const ulong PtUpdateNoTranslate = 3;
    /// <summary>The command lives in the low 2 bits of the (8-byte aligned) pointer.</summary>
    public const ulong Mask = 3;
}

/// <summary>mmuext_op.cmd.</summary>
public static class MmuExt
{
    [XenName("MMUEXT_PIN_L1_TABLE")] public const uint PinL1Table = 0;
    [XenName("MMUEXT_PIN_L2_TABLE")] public const uint PinL2Table = 1;
    [XenName("MMUEXT_PIN_L3_TABLE")] public const uint PinL3Table = 2;
    [XenName("MMUEXT_PIN_L4_TABLE")] public const uint PinL4Table = 3;
    [XenName("MMUEXT_UNPIN_TABLE")] public const uint UnpinTable = 4;
    [XenName("MMUEXT_NEW_BASEPTR")] public const uint NewBaseptr = 5;
    [XenName("MMUEXT_TLB_FLUSH_LOCAL")] public const uint TlbFlushLocal = 6;
    [XenName("MMUEXT_INVLPG_LOCAL")] public const uint InvlpgLocal = 7;
    [XenName("MMUEXT_TLB_FLUSH_MULTI")] public const uint TlbFlushMulti = 8;
    [XenName("MMUEXT_INVLPG_MULTI")] public const uint InvlpgMulti = 9;
    [XenName("MMUEXT_TLB_FLUSH_ALL")] public const uint TlbFlushAll = 10;
    [XenName("MMUEXT_INVLPG_ALL")] public const uint InvlpgAll = 11;
    [XenName("MMUEXT_FLUSH_CACHE")] public const uint FlushCache = 12;
    [XenName("MMUEXT_SET_LDT")] public const uint SetLdt = 13;
    [XenName("MMUEXT_NEW_USER_BASEPTR")] public const uint NewUserBaseptr = 15;
    [XenName("MMUEXT_CLEAR_PAGE")] public const uint ClearPage = 16;
    [XenName("MMUEXT_COPY_PAGE")] public const uint CopyPage = 17;
    [XenName("MMUEXT_FLUSH_CACHE_GLOBAL")] public const uint FlushCacheGlobal = 18;
    [XenName("MMUEXT_MARK_SUPER")] public const uint MarkSuper = 19;
    [XenName("MMUEXT_UNMARK_SUPER")] public const uint UnmarkSuper = 20;
}

/// <summary>update_va_mapping flags.</summary>
public static class Uvmf
{
    [XenName("UVMF_NONE")] public const ulong None = 0;
    [XenName("UVMF_TLB_FLUSH")] public const ulong TlbFlush = 1;
    [XenName("UVMF_INVLPG")] public const ulong Invlpg = 2;
    [XenName("UVMF_FLUSHTYPE_MASK")] public const ulong FlushTypeMask = 3;
    /// <summary>Without UVMF_ALL the upper bits are a pointer to a vCPU mask (MULTI) or 0 (LOCAL).</summary>
    [XenName("UVMF_MULTI")] public const ulong Multi = 0;
    [XenName("UVMF_LOCAL")] public const ulong Local = 0;
    [XenName("UVMF_ALL")] public const ulong All = 1 << 2;
}

/// <summary>vm_assist commands and types.</summary>
public static class Vmasst
{
    [XenName("VMASST_CMD_enable")] public const uint CmdEnable = 0;
    [XenName("VMASST_CMD_disable")] public const uint CmdDisable = 1;
    [XenName("VMASST_TYPE_4gb_segments")] public const uint Type4gbSegments = 0;
    [XenName("VMASST_TYPE_4gb_segments_notify")] public const uint Type4gbSegmentsNotify = 1;
    [XenName("VMASST_TYPE_writable_pagetables")] public const uint TypeWritablePagetables = 2;
    [XenName("VMASST_TYPE_pae_extended_cr3")] public const uint TypePaeExtendedCr3 = 3;
    [XenName("VMASST_TYPE_architectural_iopl")] public const uint TypeArchitecturalIopl = 4;
    [XenName("VMASST_TYPE_runstate_update_flag")] public const uint TypeRunstateUpdateFlag = 5;
    [XenName("VMASST_TYPE_m2p_strict")] public const uint TypeM2pStrict = 32;
}

/// <summary>Reserved domain ids.</summary>
public static class DomId
{
    [XenName("DOMID_FIRST_RESERVED")] public const ushort FirstReserved = 0x7FF0;
    [XenName("DOMID_SELF")] public const ushort Self = 0x7FF0;
    [XenName("DOMID_IO")] public const ushort Io = 0x7FF1;
    [XenName("DOMID_XEN")] public const ushort Xen = 0x7FF2;
    [XenName("DOMID_COW")] public const ushort Cow = 0x7FF3;
    [XenName("DOMID_INVALID")] public const ushort Invalid = 0x7FF4;
    [XenName("DOMID_IDLE")] public const ushort Idle = 0x7FFF;
    [XenName("DOMID_MASK")] public const ushort Mask = 0x7FFF;
}

/// <summary>Virtual IRQs.</summary>
public static class Virq
{
    [XenName("VIRQ_TIMER")] public const uint Timer = 0;
    [XenName("VIRQ_DEBUG")] public const uint Debug = 1;
    [XenName("VIRQ_CONSOLE")] public const uint Console = 2;
    [XenName("VIRQ_DOM_EXC")] public const uint DomExc = 3;
    [XenName("VIRQ_TBUF")] public const uint Tbuf = 4;
    [XenName("VIRQ_DEBUGGER")] public const uint Debugger = 6;
    [XenName("VIRQ_XENOPROF")] public const uint Xenoprof = 7;
    [XenName("VIRQ_CON_RING")] public const uint ConRing = 8;
    [XenName("VIRQ_PCPU_STATE")] public const uint PcpuState = 9;
    [XenName("VIRQ_MEM_EVENT")] public const uint MemEvent = 10;
    [XenName("VIRQ_ARGO")] public const uint Argo = 11;
    [XenName("VIRQ_ENOMEM")] public const uint Enomem = 12;
    [XenName("VIRQ_XENPMU")] public const uint Xenpmu = 13;
    [XenName("VIRQ_ARCH_0")] public const uint Arch0 = 16;
    [XenName("VIRQ_ARCH_7")] public const uint Arch7 = 23;
    [XenName("NR_VIRQS")] public const uint Count = 24;
}

/// <summary>event_channel_op commands and channel states.</summary>
public static class EvtchnOp
{
    [XenName("EVTCHNOP_bind_interdomain")] public const int BindInterdomain = 0;
    [XenName("EVTCHNOP_bind_virq")] public const int BindVirq = 1;
    [XenName("EVTCHNOP_bind_pirq")] public const int BindPirq = 2;
    [XenName("EVTCHNOP_close")] public const int Close = 3;
    [XenName("EVTCHNOP_send")] public const int Send = 4;
    [XenName("EVTCHNOP_status")] public const int Status = 5;
    [XenName("EVTCHNOP_alloc_unbound")] public const int AllocUnbound = 6;
    [XenName("EVTCHNOP_bind_ipi")] public const int BindIpi = 7;
    [XenName("EVTCHNOP_bind_vcpu")] public const int BindVcpu = 8;
    [XenName("EVTCHNOP_unmask")] public const int Unmask = 9;
    [XenName("EVTCHNOP_reset")] public const int Reset = 10;
    [XenName("EVTCHNOP_init_control")] public const int InitControl = 11;
    [XenName("EVTCHNOP_expand_array")] public const int ExpandArray = 12;
    [XenName("EVTCHNOP_set_priority")] public const int SetPriority = 13;
    [XenName("EVTCHNOP_reset_cont", IfDefined = "EVTCHNOP_reset_cont")] public const int ResetCont = 14;

    [XenName("EVTCHNSTAT_closed")] public const uint StatClosed = 0;
    [XenName("EVTCHNSTAT_unbound")] public const uint StatUnbound = 1;
    [XenName("EVTCHNSTAT_interdomain")] public const uint StatInterdomain = 2;
    [XenName("EVTCHNSTAT_pirq")] public const uint StatPirq = 3;
    [XenName("EVTCHNSTAT_virq")] public const uint StatVirq = 4;
    [XenName("EVTCHNSTAT_ipi")] public const uint StatIpi = 5;

    /// <summary>Ports of the 2-level ABI: 64 words of 64 bits.</summary>
    [XenName("EVTCHN_2L_NR_CHANNELS")] public const int TwoLevelChannels = 4096;
}

/// <summary>sched_op commands and shutdown reasons.</summary>
public static class SchedOp
{
    [XenName("SCHEDOP_yield")] public const int Yield = 0;
    [XenName("SCHEDOP_block")] public const int Block = 1;
    [XenName("SCHEDOP_shutdown")] public const int Shutdown = 2;
    [XenName("SCHEDOP_poll")] public const int Poll = 3;
    [XenName("SCHEDOP_remote_shutdown")] public const int RemoteShutdown = 4;
    [XenName("SCHEDOP_shutdown_code")] public const int ShutdownCode = 5;
    [XenName("SCHEDOP_watchdog")] public const int Watchdog = 6;
    [XenName("SCHEDOP_pin_override")] public const int PinOverride = 7;
}

public static class ShutdownReason
{
    [XenName("SHUTDOWN_poweroff")] public const uint Poweroff = 0;
    [XenName("SHUTDOWN_reboot")] public const uint Reboot = 1;
    [XenName("SHUTDOWN_suspend")] public const uint Suspend = 2;
    [XenName("SHUTDOWN_crash")] public const uint Crash = 3;
    [XenName("SHUTDOWN_watchdog")] public const uint Watchdog = 4;
    [XenName("SHUTDOWN_soft_reset")] public const uint SoftReset = 5;
    [XenName("SHUTDOWN_MAX")] public const uint Max = 5;
}

/// <summary>vcpu_op commands and runstates.</summary>
public static class VcpuOp
{
    [XenName("VCPUOP_initialise")] public const int Initialise = 0;
    [XenName("VCPUOP_up")] public const int Up = 1;
    [XenName("VCPUOP_down")] public const int Down = 2;
    [XenName("VCPUOP_is_up")] public const int IsUp = 3;
    [XenName("VCPUOP_get_runstate_info")] public const int GetRunstateInfo = 4;
    [XenName("VCPUOP_register_runstate_memory_area")] public const int RegisterRunstateMemoryArea = 5;
    [XenName("VCPUOP_set_periodic_timer")] public const int SetPeriodicTimer = 6;
    [XenName("VCPUOP_stop_periodic_timer")] public const int StopPeriodicTimer = 7;
    [XenName("VCPUOP_set_singleshot_timer")] public const int SetSingleshotTimer = 8;
    [XenName("VCPUOP_stop_singleshot_timer")] public const int StopSingleshotTimer = 9;
    [XenName("VCPUOP_register_vcpu_info")] public const int RegisterVcpuInfo = 10;
    [XenName("VCPUOP_send_nmi")] public const int SendNmi = 11;
    [XenName("VCPUOP_get_physid")] public const int GetPhysid = 12;
    [XenName("VCPUOP_register_vcpu_time_memory_area")] public const int RegisterVcpuTimeMemoryArea = 13;

    [XenName("VCPU_SSHOTTMR_future")] public const uint SingleshotFuture = 1;

    [XenName("RUNSTATE_running")] public const int RunstateRunning = 0;
    [XenName("RUNSTATE_runnable")] public const int RunstateRunnable = 1;
    [XenName("RUNSTATE_blocked")] public const int RunstateBlocked = 2;
    [XenName("RUNSTATE_offline")] public const int RunstateOffline = 3;
    [XenName("XEN_RUNSTATE_UPDATE")] public const ulong RunstateUpdate = 1UL << 63;
}

/// <summary>memory_op commands and physmap spaces.</summary>
public static class MemoryOp
{
    [XenName("XENMEM_increase_reservation")] public const int IncreaseReservation = 0;
    [XenName("XENMEM_decrease_reservation")] public const int DecreaseReservation = 1;
    [XenName("XENMEM_maximum_ram_page")] public const int MaximumRamPage = 2;
    [XenName("XENMEM_current_reservation")] public const int CurrentReservation = 3;
    [XenName("XENMEM_maximum_reservation")] public const int MaximumReservation = 4;
    [XenName("XENMEM_machphys_mfn_list")] public const int MachphysMfnList = 5;
    [XenName("XENMEM_populate_physmap")] public const int PopulatePhysmap = 6;
    [XenName("XENMEM_add_to_physmap")] public const int AddToPhysmap = 7;
    [XenName("XENMEM_memory_map")] public const int MemoryMap = 9;
    [XenName("XENMEM_machine_memory_map")] public const int MachineMemoryMap = 10;
    [XenName("XENMEM_exchange")] public const int Exchange = 11;
    [XenName("XENMEM_machphys_mapping")] public const int MachphysMapping = 12;
    [XenName("XENMEM_set_memory_map")] public const int SetMemoryMap = 13;
    [XenName("XENMEM_maximum_gpfn")] public const int MaximumGpfn = 14;
    [XenName("XENMEM_remove_from_physmap")] public const int RemoveFromPhysmap = 15;
    [XenName("XENMEM_add_to_physmap_batch")] public const int AddToPhysmapBatch = 23;
    [XenName("XENMEM_claim_pages", IfDefined = "XENMEM_claim_pages")] public const int ClaimPages = 24;
    [XenName("XENMEM_machphys_compat_mfn_list")] public const int MachphysCompatMfnList = 25;
    [XenName("XENMEM_reserved_device_memory_map", IfDefined = "XENMEM_reserved_device_memory_map")] public const int ReservedDeviceMemoryMap = 27;
    [XenName("XENMEM_acquire_resource")] public const int AcquireResource = 28;

    [XenName("XENMAPSPACE_shared_info")] public const uint SpaceSharedInfo = 0;
    [XenName("XENMAPSPACE_grant_table")] public const uint SpaceGrantTable = 1;
    [XenName("XENMAPSPACE_gmfn")] public const uint SpaceGmfn = 2;
    [XenName("XENMAPSPACE_gmfn_range")] public const uint SpaceGmfnRange = 3;
    [XenName("XENMAPSPACE_gmfn_foreign")] public const uint SpaceGmfnForeign = 4;
    [XenName("XENMAPSPACE_dev_mmio")] public const uint SpaceDevMmio = 5;
    [XenName("XENMAPIDX_grant_table_status")] public const uint IdxGrantTableStatus = 0x8000_0000;

    [XenName("XENMEMF_populate_on_demand")] public const uint FlagPopulateOnDemand = 1 << 16;
    [XenName("XENMEMF_exact_node_request")] public const uint FlagExactNodeRequest = 1 << 17;
    [XenName("XENMEMF_vnode")] public const uint FlagVnode = 1 << 18;
}

/// <summary>grant_table_op commands, entry flags, map flags and status codes.</summary>
public static class Gnttab
{
    [XenName("GNTTABOP_map_grant_ref")] public const int MapGrantRef = 0;
    [XenName("GNTTABOP_unmap_grant_ref")] public const int UnmapGrantRef = 1;
    [XenName("GNTTABOP_setup_table")] public const int SetupTable = 2;
    [XenName("GNTTABOP_dump_table")] public const int DumpTable = 3;
    [XenName("GNTTABOP_transfer")] public const int Transfer = 4;
    [XenName("GNTTABOP_copy")] public const int Copy = 5;
    [XenName("GNTTABOP_query_size")] public const int QuerySize = 6;
    [XenName("GNTTABOP_unmap_and_replace")] public const int UnmapAndReplace = 7;
    [XenName("GNTTABOP_set_version")] public const int SetVersion = 8;
    [XenName("GNTTABOP_get_status_frames")] public const int GetStatusFrames = 9;
    [XenName("GNTTABOP_get_version")] public const int GetVersion = 10;

    [XenName("GNTTAB_NR_RESERVED_ENTRIES")] public const int NrReservedEntries = 8;
    [XenName("GNTTAB_RESERVED_CONSOLE")] public const int ReservedConsole = 0;
    [XenName("GNTTAB_RESERVED_XENSTORE")] public const int ReservedXenstore = 1;

    [XenName("GTF_invalid")] public const ushort GtfInvalid = 0;
    [XenName("GTF_permit_access")] public const ushort GtfPermitAccess = 1;
    [XenName("GTF_accept_transfer")] public const ushort GtfAcceptTransfer = 2;
    [XenName("GTF_transitive")] public const ushort GtfTransitive = 3;
    [XenName("GTF_type_mask")] public const ushort GtfTypeMask = 3;
    [XenName("GTF_readonly")] public const ushort GtfReadonly = 1 << 2;
    [XenName("GTF_reading")] public const ushort GtfReading = 1 << 3;
    [XenName("GTF_writing")] public const ushort GtfWriting = 1 << 4;
    [XenName("GTF_PWT")] public const ushort GtfPwt = 1 << 5;
    [XenName("GTF_PCD")] public const ushort GtfPcd = 1 << 6;
    [XenName("GTF_PAT")] public const ushort GtfPat = 1 << 7;
    [XenName("GTF_sub_page")] public const ushort GtfSubPage = 1 << 8;
    [XenName("GTF_transfer_committed")] public const ushort GtfTransferCommitted = 1 << 2;
    [XenName("GTF_transfer_completed")] public const ushort GtfTransferCompleted = 1 << 3;

    [XenName("GNTMAP_device_map")] public const uint MapDeviceMap = 1 << 0;
    [XenName("GNTMAP_host_map")] public const uint MapHostMap = 1 << 1;
    [XenName("GNTMAP_readonly")] public const uint MapReadonly = 1 << 2;
    [XenName("GNTMAP_application_map")] public const uint MapApplicationMap = 1 << 3;
    [XenName("GNTMAP_contains_pte")] public const uint MapContainsPte = 1 << 4;

    [XenName("GNTCOPY_source_gref")] public const ushort CopySourceGref = 1 << 0;
    [XenName("GNTCOPY_dest_gref")] public const ushort CopyDestGref = 1 << 1;

    [XenName("GNTST_okay")] public const short StOkay = 0;
    [XenName("GNTST_general_error")] public const short StGeneralError = -1;
    [XenName("GNTST_bad_domain")] public const short StBadDomain = -2;
    [XenName("GNTST_bad_gntref")] public const short StBadGntref = -3;
    [XenName("GNTST_bad_handle")] public const short StBadHandle = -4;
    [XenName("GNTST_bad_virt_addr")] public const short StBadVirtAddr = -5;
    [XenName("GNTST_bad_dev_addr")] public const short StBadDevAddr = -6;
    [XenName("GNTST_no_device_space")] public const short StNoDeviceSpace = -7;
    [XenName("GNTST_permission_denied")] public const short StPermissionDenied = -8;
    [XenName("GNTST_bad_page")] public const short StBadPage = -9;
    [XenName("GNTST_bad_copy_arg")] public const short StBadCopyArg = -10;
    [XenName("GNTST_address_too_big")] public const short StAddressTooBig = -11;
    [XenName("GNTST_eagain")] public const short StEagain = -12;
    [XenName("GNTST_no_space")] public const short StNoSpace = -13;
}

/// <summary>XENFEAT_* bit numbers (<c>features.h</c>); submap 0 holds bits 0..31.</summary>
public static class XenFeature
{
    [XenName("XENFEAT_writable_page_tables")] public const int WritablePageTables = 0;
    [XenName("XENFEAT_writable_descriptor_tables")] public const int WritableDescriptorTables = 1;
    [XenName("XENFEAT_auto_translated_physmap")] public const int AutoTranslatedPhysmap = 2;
    [XenName("XENFEAT_supervisor_mode_kernel")] public const int SupervisorModeKernel = 3;
    [XenName("XENFEAT_pae_pgdir_above_4gb")] public const int PaePgdirAbove4gb = 4;
    [XenName("XENFEAT_mmu_pt_update_preserve_ad")] public const int MmuPtUpdatePreserveAd = 5;
    [XenName("XENFEAT_highmem_assist")] public const int HighmemAssist = 6;
    [XenName("XENFEAT_gnttab_map_avail_bits")] public const int GnttabMapAvailBits = 7;
    [XenName("XENFEAT_hvm_callback_vector")] public const int HvmCallbackVector = 8;
    [XenName("XENFEAT_hvm_safe_pvclock")] public const int HvmSafePvclock = 9;
    [XenName("XENFEAT_hvm_pirqs")] public const int HvmPirqs = 10;
    [XenName("XENFEAT_dom0")] public const int Dom0 = 11;
    [XenName("XENFEAT_grant_map_identity", IfDefined = "XENFEAT_grant_map_identity")] public const int GrantMapIdentity = 12;
    [XenName("XENFEAT_memory_op_vnode_supported")] public const int MemoryOpVnodeSupported = 13;
    [XenName("XENFEAT_ARM_SMCCC_supported")] public const int ArmSmcccSupported = 14;
    [XenName("XENFEAT_linux_rsdp_unrestricted")] public const int LinuxRsdpUnrestricted = 15;
    [XenName("XENFEAT_not_direct_mapped")] public const int NotDirectMapped = 16;
    [XenName("XENFEAT_direct_mapped")] public const int DirectMapped = 17;
    [XenName("XENFEAT_NR_SUBMAPS")] public const int NrSubmaps = 1;

    /// <summary>The names the FEATURES ELF note may use (libelf's table: only these are understood).</summary>
    public static readonly IReadOnlyDictionary<string, int> NoteNames = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["writable_page_tables"] = WritablePageTables,
        ["writable_descriptor_tables"] = WritableDescriptorTables,
        ["auto_translated_physmap"] = AutoTranslatedPhysmap,
        ["supervisor_mode_kernel"] = SupervisorModeKernel,
        ["pae_pgdir_above_4gb"] = PaePgdirAbove4gb,
        ["hvm_callback_vector"] = HvmCallbackVector,
        ["dom0"] = Dom0,
    };

    public static string NameOf(int bit) =>
        NoteNames.FirstOrDefault(kv => kv.Value == bit).Key ?? $"feature bit {bit}";
}

/// <summary>xen_version commands.</summary>
public static class XenVer
{
    [XenName("XENVER_version")] public const int Version = 0;
    [XenName("XENVER_extraversion")] public const int Extraversion = 1;
    [XenName("XENVER_compile_info")] public const int CompileInfo = 2;
    [XenName("XENVER_capabilities")] public const int Capabilities = 3;
    [XenName("XENVER_changeset")] public const int Changeset = 4;
    [XenName("XENVER_platform_parameters")] public const int PlatformParameters = 5;
    [XenName("XENVER_get_features")] public const int GetFeatures = 6;
    [XenName("XENVER_pagesize")] public const int Pagesize = 7;
    [XenName("XENVER_guest_handle")] public const int GuestHandle = 8;
    [XenName("XENVER_commandline")] public const int Commandline = 9;
    [XenName("XENVER_build_id")] public const int BuildId = 10;
    [XenName("XEN_EXTRAVERSION_LEN")] public const int ExtraversionLen = 16;
    [XenName("XEN_CAPABILITIES_INFO_LEN")] public const int CapabilitiesInfoLen = 1024;
    [XenName("XEN_CHANGESET_INFO_LEN")] public const int ChangesetInfoLen = 64;
}

/// <summary>callback_op commands and callback types.</summary>
public static class Callback
{
    [XenName("CALLBACKOP_register")] public const int OpRegister = 0;
    [XenName("CALLBACKOP_unregister")] public const int OpUnregister = 1;
    [XenName("CALLBACKTYPE_event")] public const ushort TypeEvent = 0;
    [XenName("CALLBACKTYPE_failsafe")] public const ushort TypeFailsafe = 1;
    [XenName("CALLBACKTYPE_syscall")] public const ushort TypeSyscall = 2;
    [XenName("CALLBACKTYPE_sysenter_deprecated")] public const ushort TypeSysenterDeprecated = 3;
    [XenName("CALLBACKTYPE_nmi")] public const ushort TypeNmi = 4;
    [XenName("CALLBACKTYPE_sysenter")] public const ushort TypeSysenter = 5;
    [XenName("CALLBACKTYPE_syscall32")] public const ushort TypeSyscall32 = 7;
    [XenName("CALLBACKF_mask_events")] public const ushort FlagMaskEvents = 1;
}

/// <summary>Xen ELF note types (<c>elfnote.h</c>), name "Xen".</summary>
public static class XenElfNote
{
    [XenName("XEN_ELFNOTE_INFO")] public const uint Info = 0;
    [XenName("XEN_ELFNOTE_ENTRY")] public const uint Entry = 1;
    [XenName("XEN_ELFNOTE_HYPERCALL_PAGE")] public const uint HypercallPage = 2;
    [XenName("XEN_ELFNOTE_VIRT_BASE")] public const uint VirtBase = 3;
    [XenName("XEN_ELFNOTE_PADDR_OFFSET")] public const uint PaddrOffset = 4;
    [XenName("XEN_ELFNOTE_XEN_VERSION")] public const uint XenVersion = 5;
    [XenName("XEN_ELFNOTE_GUEST_OS")] public const uint GuestOs = 6;
    [XenName("XEN_ELFNOTE_GUEST_VERSION")] public const uint GuestVersion = 7;
    [XenName("XEN_ELFNOTE_LOADER")] public const uint Loader = 8;
    [XenName("XEN_ELFNOTE_PAE_MODE")] public const uint PaeMode = 9;
    [XenName("XEN_ELFNOTE_FEATURES")] public const uint Features = 10;
    [XenName("XEN_ELFNOTE_BSD_SYMTAB")] public const uint BsdSymtab = 11;
    [XenName("XEN_ELFNOTE_HV_START_LOW")] public const uint HvStartLow = 12;
    [XenName("XEN_ELFNOTE_L1_MFN_VALID")] public const uint L1MfnValid = 13;
    [XenName("XEN_ELFNOTE_SUSPEND_CANCEL")] public const uint SuspendCancel = 14;
    [XenName("XEN_ELFNOTE_INIT_P2M")] public const uint InitP2m = 15;
    [XenName("XEN_ELFNOTE_MOD_START_PFN")] public const uint ModStartPfn = 16;
    [XenName("XEN_ELFNOTE_SUPPORTED_FEATURES")] public const uint SupportedFeatures = 17;
    [XenName("XEN_ELFNOTE_PHYS32_ENTRY")] public const uint Phys32Entry = 18;
    [XenName("XEN_ELFNOTE_PHYS32_RELOC", IfDefined = "XEN_ELFNOTE_PHYS32_RELOC")] public const uint Phys32Reloc = 19;
    [XenName("XEN_ELFNOTE_CRASH_INFO")] public const uint CrashInfo = 0x1000001;
    [XenName("XEN_ELFNOTE_CRASH_REGS")] public const uint CrashRegs = 0x1000002;
    [XenName("XEN_ELFNOTE_DUMPCORE_NONE")] public const uint DumpcoreNone = 0x2000000;
    [XenName("XEN_ELFNOTE_DUMPCORE_HEADER")] public const uint DumpcoreHeader = 0x2000001;
    [XenName("XEN_ELFNOTE_DUMPCORE_XEN_VERSION")] public const uint DumpcoreXenVersion = 0x2000002;
    [XenName("XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION")] public const uint DumpcoreFormatVersion = 0x2000003;
}

/// <summary>Console ring connection states (<c>io/console.h</c>, newer than Xen 4.17's headers).</summary>
public static class ConsoleConnection
{
    [XenName("XENCONSOLE_CONNECTED", IfDefined = "XENCONSOLE_DISCONNECTED")] public const byte Connected = 0;
    [XenName("XENCONSOLE_DISCONNECTED", IfDefined = "XENCONSOLE_DISCONNECTED")] public const byte Disconnected = 1;
}
