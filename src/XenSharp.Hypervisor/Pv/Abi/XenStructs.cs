using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace XenSharp.Hypervisor.Pv.Abi;

// Layouts of Xen's public structs for x86-64 (xen_ulong_t, xen_pfn_t and guest handles are 8 bytes).
// Explicit offsets so that a reader can see the ABI; every offset and size is compared with gcc's view
// of the real headers by the ABI test. Read them from guest memory with MemoryMarshal.Read<T> on a
// bounds-checked span, never by pointer.

/// <summary>struct start_info: the page whose VA the guest receives in rsi.</summary>
[XenName("struct start_info")]
[StructLayout(LayoutKind.Explicit, Size = 1168)]
public unsafe struct StartInfo
{
    [FieldOffset(0), XenName("magic")] public fixed byte Magic[32];
    [FieldOffset(32), XenName("nr_pages")] public ulong NrPages;
    /// <summary>MACHINE address of the shared_info page.</summary>
    [FieldOffset(40), XenName("shared_info")] public ulong SharedInfo;
    [FieldOffset(48), XenName("flags")] public uint Flags;
    [FieldOffset(56), XenName("store_mfn")] public ulong StoreMfn;
    [FieldOffset(64), XenName("store_evtchn")] public uint StoreEvtchn;
    [FieldOffset(72), XenName("console.domU.mfn")] public ulong ConsoleMfn;
    [FieldOffset(80), XenName("console.domU.evtchn")] public uint ConsoleEvtchn;
    /// <summary>Dom0 view of the same union.</summary>
    [FieldOffset(72), XenName("console.dom0.info_off")] public uint Dom0ConsoleInfoOff;
    [FieldOffset(76), XenName("console.dom0.info_size")] public uint Dom0ConsoleInfoSize;
    /// <summary>VIRTUAL address of the bootstrap L4.</summary>
    [FieldOffset(88), XenName("pt_base")] public ulong PtBase;
    [FieldOffset(96), XenName("nr_pt_frames")] public ulong NrPtFrames;
    /// <summary>VIRTUAL address of the p2m list.</summary>
    [FieldOffset(104), XenName("mfn_list")] public ulong MfnList;
    [FieldOffset(112), XenName("mod_start")] public ulong ModStart;
    [FieldOffset(120), XenName("mod_len")] public ulong ModLen;
    [FieldOffset(128), XenName("cmd_line")] public fixed byte CmdLine[1024];
    [FieldOffset(1152), XenName("first_p2m_pfn")] public ulong FirstP2mPfn;
    [FieldOffset(1160), XenName("nr_p2m_frames")] public ulong NrP2mFrames;
}

[XenName("struct vcpu_time_info")]
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct VcpuTimeInfo
{
    [FieldOffset(0), XenName("version")] public uint Version;
    [FieldOffset(4), XenName("pad0")] public uint Pad0;
    [FieldOffset(8), XenName("tsc_timestamp")] public ulong TscTimestamp;
    [FieldOffset(16), XenName("system_time")] public ulong SystemTime;
    [FieldOffset(24), XenName("tsc_to_system_mul")] public uint TscToSystemMul;
    [FieldOffset(28), XenName("tsc_shift")] public sbyte TscShift;
    /// <summary>Bit 0 XEN_PVCLOCK_TSC_STABLE_BIT, bit 1 guest stopped.</summary>
    [FieldOffset(29), XenName("flags")] public byte Flags;
}

[XenName("struct arch_vcpu_info")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct ArchVcpuInfo
{
    [FieldOffset(0), XenName("cr2")] public ulong Cr2;
    [FieldOffset(8), XenName("pad")] public ulong Pad;
}

[XenName("struct vcpu_info")]
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct VcpuInfo
{
    [FieldOffset(0), XenName("evtchn_upcall_pending")] public byte EvtchnUpcallPending;
    /// <summary>1 = events masked (the guest's virtual IF clear).</summary>
    [FieldOffset(1), XenName("evtchn_upcall_mask")] public byte EvtchnUpcallMask;
    [FieldOffset(8), XenName("evtchn_pending_sel")] public ulong EvtchnPendingSel;
    [FieldOffset(16), XenName("arch")] public ArchVcpuInfo Arch;
    [FieldOffset(32), XenName("time")] public VcpuTimeInfo Time;
}

[InlineArray(32)]
public struct VcpuInfoArray32 { private VcpuInfo _first; }

[XenName("struct arch_shared_info")]
[StructLayout(LayoutKind.Explicit, Size = 48)]
public struct ArchSharedInfo
{
    [FieldOffset(0), XenName("max_pfn")] public ulong MaxPfn;
    [FieldOffset(8), XenName("pfn_to_mfn_frame_list_list")] public ulong PfnToMfnFrameListList;
    [FieldOffset(16), XenName("nmi_reason")] public ulong NmiReason;
    [FieldOffset(24), XenName("p2m_cr3")] public ulong P2mCr3;
    [FieldOffset(32), XenName("p2m_vaddr")] public ulong P2mVaddr;
    [FieldOffset(40), XenName("p2m_generation")] public ulong P2mGeneration;
}

/// <summary>struct shared_info: the hypervisor-owned page (3136 bytes used).</summary>
[XenName("struct shared_info")]
[StructLayout(LayoutKind.Explicit, Size = 3136)]
public unsafe struct SharedInfo
{
    [FieldOffset(0), XenName("vcpu_info")] public VcpuInfoArray32 VcpuInfo;
    [FieldOffset(2048), XenName("evtchn_pending")] public fixed ulong EvtchnPending[64];
    [FieldOffset(2560), XenName("evtchn_mask")] public fixed ulong EvtchnMask[64];
    [FieldOffset(3072), XenName("wc_version")] public uint WcVersion;
    [FieldOffset(3076), XenName("wc_sec")] public uint WcSec;
    [FieldOffset(3080), XenName("wc_nsec")] public uint WcNsec;
    [FieldOffset(3084), XenName("wc_sec_hi")] public uint WcSecHi;
    [FieldOffset(3088), XenName("arch")] public ArchSharedInfo Arch;
}

[XenName("struct trap_info")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct TrapInfo
{
    [FieldOffset(0), XenName("vector")] public byte Vector;
    /// <summary>Bits 0-1 DPL, bit 2 clear the event mask on entry (interrupt gate).</summary>
    [FieldOffset(1), XenName("flags")] public byte Flags;
    [FieldOffset(2), XenName("cs")] public ushort Cs;
    [FieldOffset(8), XenName("address")] public ulong Address;
}

[InlineArray(256)]
public struct TrapInfoArray256 { private TrapInfo _first; }

[XenName("struct cpu_user_regs")]
[StructLayout(LayoutKind.Explicit, Size = 200)]
public struct CpuUserRegs
{
    [FieldOffset(0), XenName("r15")] public ulong R15;
    [FieldOffset(8), XenName("r14")] public ulong R14;
    [FieldOffset(16), XenName("r13")] public ulong R13;
    [FieldOffset(24), XenName("r12")] public ulong R12;
    [FieldOffset(32), XenName("rbp")] public ulong Rbp;
    [FieldOffset(40), XenName("rbx")] public ulong Rbx;
    [FieldOffset(48), XenName("r11")] public ulong R11;
    [FieldOffset(56), XenName("r10")] public ulong R10;
    [FieldOffset(64), XenName("r9")] public ulong R9;
    [FieldOffset(72), XenName("r8")] public ulong R8;
    [FieldOffset(80), XenName("rax")] public ulong Rax;
    [FieldOffset(88), XenName("rcx")] public ulong Rcx;
    [FieldOffset(96), XenName("rdx")] public ulong Rdx;
    [FieldOffset(104), XenName("rsi")] public ulong Rsi;
    [FieldOffset(112), XenName("rdi")] public ulong Rdi;
    [FieldOffset(120), XenName("error_code")] public uint ErrorCode;
    [FieldOffset(124), XenName("entry_vector")] public uint EntryVector;
    [FieldOffset(128), XenName("rip")] public ulong Rip;
    [FieldOffset(136), XenName("cs")] public ushort Cs;
    [FieldOffset(140), XenName("saved_upcall_mask")] public byte SavedUpcallMask;
    [FieldOffset(144), XenName("rflags")] public ulong Rflags;
    [FieldOffset(152), XenName("rsp")] public ulong Rsp;
    [FieldOffset(160), XenName("ss")] public ushort Ss;
    [FieldOffset(168), XenName("es")] public ushort Es;
    [FieldOffset(176), XenName("ds")] public ushort Ds;
    [FieldOffset(184), XenName("fs")] public ushort Fs;
    [FieldOffset(192), XenName("gs")] public ushort Gs;
}

/// <summary>struct vcpu_guest_context (VCPUOP_initialise, 5168 bytes).</summary>
[XenName("struct vcpu_guest_context")]
[StructLayout(LayoutKind.Explicit, Size = 5168)]
public unsafe struct VcpuGuestContext
{
    [FieldOffset(0), XenName("fpu_ctxt")] public fixed byte FpuCtxt[512];
    [FieldOffset(512), XenName("flags")] public ulong Flags;
    [FieldOffset(520), XenName("user_regs")] public CpuUserRegs UserRegs;
    [FieldOffset(720), XenName("trap_ctxt")] public TrapInfoArray256 TrapCtxt;
    [FieldOffset(4816), XenName("ldt_base")] public ulong LdtBase;
    [FieldOffset(4824), XenName("ldt_ents")] public ulong LdtEnts;
    [FieldOffset(4832), XenName("gdt_frames")] public fixed ulong GdtFrames[16];
    [FieldOffset(4960), XenName("gdt_ents")] public ulong GdtEnts;
    [FieldOffset(4968), XenName("kernel_ss")] public ulong KernelSs;
    [FieldOffset(4976), XenName("kernel_sp")] public ulong KernelSp;
    /// <summary>ctrlreg[3] = kernel L4 in cr3 format, ctrlreg[1] = user L4.</summary>
    [FieldOffset(4984), XenName("ctrlreg")] public fixed ulong Ctrlreg[8];
    [FieldOffset(5048), XenName("debugreg")] public fixed ulong Debugreg[8];
    [FieldOffset(5112), XenName("event_callback_eip")] public ulong EventCallbackEip;
    [FieldOffset(5120), XenName("failsafe_callback_eip")] public ulong FailsafeCallbackEip;
    [FieldOffset(5128), XenName("syscall_callback_eip")] public ulong SyscallCallbackEip;
    [FieldOffset(5136), XenName("vm_assist")] public ulong VmAssist;
    [FieldOffset(5144), XenName("fs_base")] public ulong FsBase;
    [FieldOffset(5152), XenName("gs_base_kernel")] public ulong GsBaseKernel;
    [FieldOffset(5160), XenName("gs_base_user")] public ulong GsBaseUser;
}

[XenName("struct mmu_update")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct MmuUpdate
{
    /// <summary>Machine address of the entry, command in the low 2 bits (MmuCmd).</summary>
    [FieldOffset(0), XenName("ptr")] public ulong Ptr;
    [FieldOffset(8), XenName("val")] public ulong Val;
}

[XenName("struct mmuext_op")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct MmuextOp
{
    [FieldOffset(0), XenName("cmd")] public uint Cmd;
    [FieldOffset(8), XenName("arg1.mfn")] public ulong Arg1Mfn;
    [FieldOffset(8), XenName("arg1.linear_addr")] public ulong Arg1LinearAddr;
    [FieldOffset(16), XenName("arg2.nr_ents")] public uint Arg2NrEnts;
    [FieldOffset(16), XenName("arg2.vcpumask")] public ulong Arg2Vcpumask;
    [FieldOffset(16), XenName("arg2.src_mfn")] public ulong Arg2SrcMfn;
}

[XenName("struct multicall_entry")]
[StructLayout(LayoutKind.Explicit, Size = 64)]
public unsafe struct MulticallEntry
{
    [FieldOffset(0), XenName("op")] public ulong Op;
    [FieldOffset(8), XenName("result")] public ulong Result;
    [FieldOffset(16), XenName("args")] public fixed ulong Args[6];
}

/// <summary>The frame HYPERVISOR_iret pops from the guest stack.</summary>
[XenName("struct iret_context")]
[StructLayout(LayoutKind.Explicit, Size = 72)]
public struct IretContext
{
    [FieldOffset(0), XenName("rax")] public ulong Rax;
    [FieldOffset(8), XenName("r11")] public ulong R11;
    [FieldOffset(16), XenName("rcx")] public ulong Rcx;
    /// <summary>VGCF_in_syscall.</summary>
    [FieldOffset(24), XenName("flags")] public ulong Flags;
    [FieldOffset(32), XenName("rip")] public ulong Rip;
    [FieldOffset(40), XenName("cs")] public ulong Cs;
    [FieldOffset(48), XenName("rflags")] public ulong Rflags;
    [FieldOffset(56), XenName("rsp")] public ulong Rsp;
    [FieldOffset(64), XenName("ss")] public ulong Ss;
}

[XenName("struct callback_register")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct CallbackRegister
{
    [FieldOffset(0), XenName("type")] public ushort Type;
    [FieldOffset(2), XenName("flags")] public ushort Flags;
    [FieldOffset(8), XenName("address")] public ulong Address;
}

[XenName("struct callback_unregister")]
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct CallbackUnregister
{
    [FieldOffset(0), XenName("type")] public ushort Type;
}

[XenName("struct evtchn_alloc_unbound")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct EvtchnAllocUnbound
{
    [FieldOffset(0), XenName("dom")] public ushort Dom;
    [FieldOffset(2), XenName("remote_dom")] public ushort RemoteDom;
    [FieldOffset(4), XenName("port")] public uint Port;
}

[XenName("struct evtchn_bind_interdomain")]
[StructLayout(LayoutKind.Explicit, Size = 12)]
public struct EvtchnBindInterdomain
{
    [FieldOffset(0), XenName("remote_dom")] public ushort RemoteDom;
    [FieldOffset(4), XenName("remote_port")] public uint RemotePort;
    [FieldOffset(8), XenName("local_port")] public uint LocalPort;
}

[XenName("struct evtchn_bind_virq")]
[StructLayout(LayoutKind.Explicit, Size = 12)]
public struct EvtchnBindVirq
{
    [FieldOffset(0), XenName("virq")] public uint Virq;
    [FieldOffset(4), XenName("vcpu")] public uint Vcpu;
    [FieldOffset(8), XenName("port")] public uint Port;
}

[XenName("struct evtchn_bind_ipi")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct EvtchnBindIpi
{
    [FieldOffset(0), XenName("vcpu")] public uint Vcpu;
    [FieldOffset(4), XenName("port")] public uint Port;
}

[XenName("struct evtchn_close")]
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct EvtchnClose { [FieldOffset(0), XenName("port")] public uint Port; }

[XenName("struct evtchn_send")]
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct EvtchnSend { [FieldOffset(0), XenName("port")] public uint Port; }

[XenName("struct evtchn_unmask")]
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct EvtchnUnmask { [FieldOffset(0), XenName("port")] public uint Port; }

[XenName("struct evtchn_bind_vcpu")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct EvtchnBindVcpu
{
    [FieldOffset(0), XenName("port")] public uint Port;
    [FieldOffset(4), XenName("vcpu")] public uint Vcpu;
}

[XenName("struct evtchn_status")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct EvtchnStatus
{
    [FieldOffset(0), XenName("dom")] public ushort Dom;
    [FieldOffset(4), XenName("port")] public uint Port;
    [FieldOffset(8), XenName("status")] public uint Status;
    [FieldOffset(12), XenName("vcpu")] public uint Vcpu;
    [FieldOffset(16), XenName("u.unbound.dom")] public ushort UnboundDom;
    [FieldOffset(16), XenName("u.interdomain.dom")] public ushort InterdomainDom;
    [FieldOffset(20), XenName("u.interdomain.port")] public uint InterdomainPort;
    [FieldOffset(16), XenName("u.pirq")] public uint Pirq;
    [FieldOffset(16), XenName("u.virq")] public uint Virq;
}

[XenName("struct sched_shutdown")]
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct SchedShutdown { [FieldOffset(0), XenName("reason")] public uint Reason; }

[XenName("struct sched_remote_shutdown")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct SchedRemoteShutdown
{
    [FieldOffset(0), XenName("domain_id")] public ushort DomainId;
    [FieldOffset(4), XenName("reason")] public uint Reason;
}

[XenName("struct sched_poll")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct SchedPoll
{
    /// <summary>Guest handle: VA of an array of evtchn_port_t.</summary>
    [FieldOffset(0), XenName("ports")] public ulong Ports;
    [FieldOffset(8), XenName("nr_ports")] public uint NrPorts;
    [FieldOffset(16), XenName("timeout")] public ulong Timeout;
}

[XenName("struct vcpu_runstate_info")]
[StructLayout(LayoutKind.Explicit, Size = 48)]
public unsafe struct VcpuRunstateInfo
{
    [FieldOffset(0), XenName("state")] public int State;
    [FieldOffset(8), XenName("state_entry_time")] public ulong StateEntryTime;
    [FieldOffset(16), XenName("time")] public fixed ulong Time[4];
}

[XenName("struct vcpu_register_runstate_memory_area")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct VcpuRegisterRunstateMemoryArea { [FieldOffset(0), XenName("addr.p")] public ulong Addr; }

[XenName("struct vcpu_register_time_memory_area")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct VcpuRegisterTimeMemoryArea { [FieldOffset(0), XenName("addr.p")] public ulong Addr; }

[XenName("struct vcpu_set_periodic_timer")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct VcpuSetPeriodicTimer { [FieldOffset(0), XenName("period_ns")] public ulong PeriodNs; }

[XenName("struct vcpu_set_singleshot_timer")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct VcpuSetSingleshotTimer
{
    [FieldOffset(0), XenName("timeout_abs_ns")] public ulong TimeoutAbsNs;
    [FieldOffset(8), XenName("flags")] public uint Flags;
}

[XenName("struct vcpu_register_vcpu_info")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct VcpuRegisterVcpuInfo
{
    [FieldOffset(0), XenName("mfn")] public ulong Mfn;
    [FieldOffset(8), XenName("offset")] public uint Offset;
    [FieldOffset(12), XenName("rsvd")] public uint Rsvd;
}

[XenName("struct xen_memory_reservation")]
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct XenMemoryReservation
{
    [FieldOffset(0), XenName("extent_start")] public ulong ExtentStart;
    [FieldOffset(8), XenName("nr_extents")] public ulong NrExtents;
    [FieldOffset(16), XenName("extent_order")] public uint ExtentOrder;
    [FieldOffset(20), XenName("mem_flags")] public uint MemFlags;
    [FieldOffset(24), XenName("domid")] public ushort Domid;
}

[XenName("struct xen_memory_map")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct XenMemoryMap
{
    [FieldOffset(0), XenName("nr_entries")] public uint NrEntries;
    /// <summary>Guest handle to an array of e820 entries (u64 addr, u64 size, u32 type; 20 bytes each).</summary>
    [FieldOffset(8), XenName("buffer")] public ulong Buffer;
}

[XenName("struct xen_machphys_mapping")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct XenMachphysMapping
{
    [FieldOffset(0), XenName("v_start")] public ulong VStart;
    [FieldOffset(8), XenName("v_end")] public ulong VEnd;
    [FieldOffset(16), XenName("max_mfn")] public ulong MaxMfn;
}

[XenName("struct xen_add_to_physmap")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct XenAddToPhysmap
{
    [FieldOffset(0), XenName("domid")] public ushort Domid;
    [FieldOffset(2), XenName("size")] public ushort Size;
    [FieldOffset(4), XenName("space")] public uint Space;
    [FieldOffset(8), XenName("idx")] public ulong Idx;
    [FieldOffset(16), XenName("gpfn")] public ulong Gpfn;
}

[XenName("struct xen_remove_from_physmap")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct XenRemoveFromPhysmap
{
    [FieldOffset(0), XenName("domid")] public ushort Domid;
    [FieldOffset(8), XenName("gpfn")] public ulong Gpfn;
}

[XenName("struct grant_entry_v1")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct GrantEntryV1
{
    [FieldOffset(0), XenName("flags")] public ushort Flags;
    [FieldOffset(2), XenName("domid")] public ushort Domid;
    [FieldOffset(4), XenName("frame")] public uint Frame;
}

[XenName("struct gnttab_setup_table")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct GnttabSetupTable
{
    [FieldOffset(0), XenName("dom")] public ushort Dom;
    [FieldOffset(4), XenName("nr_frames")] public uint NrFrames;
    [FieldOffset(8), XenName("status")] public short Status;
    [FieldOffset(16), XenName("frame_list")] public ulong FrameList;
}

[XenName("struct gnttab_query_size")]
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct GnttabQuerySize
{
    [FieldOffset(0), XenName("dom")] public ushort Dom;
    [FieldOffset(4), XenName("nr_frames")] public uint NrFrames;
    [FieldOffset(8), XenName("max_nr_frames")] public uint MaxNrFrames;
    [FieldOffset(12), XenName("status")] public short Status;
}

[XenName("struct gnttab_copy")]
[StructLayout(LayoutKind.Explicit, Size = 40)]
public struct GnttabCopy
{
    [FieldOffset(0), XenName("source.u.ref")] public uint SourceRef;
    [FieldOffset(0), XenName("source.u.gmfn")] public ulong SourceGmfn;
    [FieldOffset(8), XenName("source.domid")] public ushort SourceDomid;
    [FieldOffset(10), XenName("source.offset")] public ushort SourceOffset;
    [FieldOffset(16), XenName("dest.u.ref")] public uint DestRef;
    [FieldOffset(16), XenName("dest.u.gmfn")] public ulong DestGmfn;
    [FieldOffset(24), XenName("dest.domid")] public ushort DestDomid;
    [FieldOffset(26), XenName("dest.offset")] public ushort DestOffset;
    [FieldOffset(32), XenName("len")] public ushort Len;
    [FieldOffset(34), XenName("flags")] public ushort Flags;
    [FieldOffset(36), XenName("status")] public short Status;
}

[XenName("struct gnttab_map_grant_ref")]
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct GnttabMapGrantRef
{
    [FieldOffset(0), XenName("host_addr")] public ulong HostAddr;
    [FieldOffset(8), XenName("flags")] public uint Flags;
    [FieldOffset(12), XenName("ref")] public uint Ref;
    [FieldOffset(16), XenName("dom")] public ushort Dom;
    [FieldOffset(18), XenName("status")] public short Status;
    [FieldOffset(20), XenName("handle")] public uint Handle;
    [FieldOffset(24), XenName("dev_bus_addr")] public ulong DevBusAddr;
}

[XenName("struct gnttab_unmap_grant_ref")]
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct GnttabUnmapGrantRef
{
    [FieldOffset(0), XenName("host_addr")] public ulong HostAddr;
    [FieldOffset(8), XenName("dev_bus_addr")] public ulong DevBusAddr;
    [FieldOffset(16), XenName("handle")] public uint Handle;
    [FieldOffset(20), XenName("status")] public short Status;
}

[XenName("struct xen_feature_info")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct XenFeatureInfo
{
    [FieldOffset(0), XenName("submap_idx")] public uint SubmapIdx;
    [FieldOffset(4), XenName("submap")] public uint Submap;
}

[XenName("struct xen_platform_parameters")]
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct XenPlatformParameters { [FieldOffset(0), XenName("virt_start")] public ulong VirtStart; }

/// <summary>struct xencons_interface: the console ring page. Xen 4.17's headers end it at out_prod (3088 bytes); newer ones add the connection byte.</summary>
[XenName("struct xencons_interface", IfDefined = "XENCONSOLE_DISCONNECTED")]
[StructLayout(LayoutKind.Explicit, Size = 3092)]
public unsafe struct XenconsInterface
{
    [FieldOffset(0), XenName("in")] public fixed byte In[1024];
    [FieldOffset(1024), XenName("out")] public fixed byte Out[2048];
    [FieldOffset(3072), XenName("in_cons")] public uint InCons;
    [FieldOffset(3076), XenName("in_prod")] public uint InProd;
    [FieldOffset(3080), XenName("out_cons")] public uint OutCons;
    [FieldOffset(3084), XenName("out_prod")] public uint OutProd;
    /// <summary>ConsoleConnection: the builder starts it DISCONNECTED (1).</summary>
    [FieldOffset(3088), XenName("connection", IfDefined = "XENCONSOLE_DISCONNECTED")] public byte Connection;
}

/// <summary>
/// The header of every shared ring page (<c>io/ring.h</c> DEFINE_RING_TYPES): producer/consumer indexes,
/// 48 bytes of private/padding, then the entries at offset 64. Checked against a ring the test defines.
/// </summary>
[XenName("struct xensharp_probe_sring", SkipSize = true)]
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct SharedRingHeader
{
    [FieldOffset(0), XenName("req_prod")] public uint ReqProd;
    [FieldOffset(4), XenName("req_event")] public uint ReqEvent;
    [FieldOffset(8), XenName("rsp_prod")] public uint RspProd;
    [FieldOffset(12), XenName("rsp_event")] public uint RspEvent;
    [XenName("offsetof(struct xensharp_probe_sring, ring)")] public const int EntriesOffset = 64;
}

/// <summary>struct xenstore_domain_interface (<c>io/xs_wire.h</c>): the xenstore ring page at start_info.store_mfn.</summary>
[XenName("struct xenstore_domain_interface")]
[StructLayout(LayoutKind.Explicit, Size = 2076)]
public unsafe struct XenstoreDomainInterface
{
    [FieldOffset(0), XenName("req")] public fixed byte Req[1024];
    [FieldOffset(1024), XenName("rsp")] public fixed byte Rsp[1024];
    [FieldOffset(2048), XenName("req_cons")] public uint ReqCons;
    [FieldOffset(2052), XenName("req_prod")] public uint ReqProd;
    [FieldOffset(2056), XenName("rsp_cons")] public uint RspCons;
    [FieldOffset(2060), XenName("rsp_prod")] public uint RspProd;
    [FieldOffset(2064), XenName("server_features")] public uint ServerFeatures;
    [FieldOffset(2068), XenName("connection")] public uint Connection;
    [FieldOffset(2072), XenName("error")] public uint Error;

    [XenName("XENSTORE_RING_SIZE")] public const int RingSize = 1024;
    [XenName("XENSTORE_PAYLOAD_MAX")] public const int PayloadMax = 4096;
    [XenName("XENSTORE_ABS_PATH_MAX")] public const int AbsPathMax = 3072;
    [XenName("XENSTORE_REL_PATH_MAX")] public const int RelPathMax = 2048;
    [XenName("XENSTORE_SERVER_FEATURE_RECONNECTION")] public const uint ServerFeatureReconnection = 1;
    [XenName("XENSTORE_SERVER_FEATURE_ERROR")] public const uint ServerFeatureError = 2;
    [XenName("XENSTORE_CONNECTED")] public const uint Connected = 0;
    [XenName("XENSTORE_RECONNECT")] public const uint Reconnect = 1;
    [XenName("XENSTORE_ERROR_NONE")] public const uint ErrorNone = 0;
    [XenName("XENSTORE_ERROR_COMM")] public const uint ErrorComm = 1;
    [XenName("XENSTORE_ERROR_RINGIDX")] public const uint ErrorRingIdx = 2;
    [XenName("XENSTORE_ERROR_PROTO")] public const uint ErrorProto = 3;
}
