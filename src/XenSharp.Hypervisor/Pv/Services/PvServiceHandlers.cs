using System.Runtime.InteropServices;
using System.Text;
using XenSharp.Hypervisor.Pv.Abi;
using HvShutdown = XenSharp.Hypervisor.ShutdownReason;

namespace XenSharp.Hypervisor.Pv.Services;

/// <summary>
/// The services half's hypercalls: pure hypervisor logic over guest memory, with Xen's argument checks and
/// errno values for a 64-bit PV domU. Each handler copies its argument in once, validates, acts, and copies
/// results out.
/// </summary>
public static partial class PvServiceHandlers
{
    private const long ENOSYS = -XenErrno.ENOSYS, EINVAL = -XenErrno.EINVAL, EPERM = -XenErrno.EPERM,
        EFAULT = -XenErrno.EFAULT, ENOENT = -XenErrno.ENOENT, ESRCH = -XenErrno.ESRCH;

    /// <summary>Registers every hypercall of the services half (multicall is registered by the table itself).</summary>
    public static void RegisterAll(HypercallTable t)
    {
        t.Register(Hypercall.EventChannelOp, "event_channel_op", EventChannelOp);
        t.Register(Hypercall.GrantTableOp, "grant_table_op", GrantTableOp);
        t.Register(Hypercall.SchedOp, "sched_op", SchedOp);
        t.Register(Hypercall.SetTimerOp, "set_timer_op", SetTimerOp);
        t.Register(Hypercall.XenVersion, "xen_version", XenVersionOp);
        t.Register(Hypercall.ConsoleIo, "console_io", ConsoleIoOp);
        t.Register(Hypercall.MemoryOp, "memory_op", MemoryOp);
        t.Register(Hypercall.VcpuOp, "vcpu_op", VcpuOp);
        t.Register(Hypercall.PhysdevOp, "physdev_op", PhysdevOp);
        t.Register(Hypercall.PlatformOp, "platform_op", (_, in _) => EPERM);
        t.Register(Hypercall.VmAssist, "vm_assist", VmAssist);
        // We offer no virtual PMU: Xen with vpmu=off (its default) answers every xenpmu_op this way, and Linux then
        // says "VPMU disabled by hypervisor" and uses software perf events.
        t.Register(Hypercall.XenpmuOp, "xenpmu_op", (_, in _) => -XenErrno.EOPNOTSUPP);
    }

    private static long Unimplemented(PvHypercallContext ctx, string op, ulong cmd)
    {
        ctx.DomainState.LogOnce($"{op}:{cmd}", $"unimplemented {op} subop {cmd} -> -ENOSYS");
        return ENOSYS;
    }

    // ============================================================ event_channel_op (32)

    private static long EventChannelOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var ev = ctx.DomainState.Events;
        var m = ctx.Memory;
        ulong arg = a.A2;
        long rc;
        switch ((int)a.A1)
        {
            case EvtchnOp.AllocUnbound:
            {
                var op = m.Read<EvtchnAllocUnbound>(arg);
                rc = ev.AllocUnbound(op.Dom, op.RemoteDom, out op.Port);
                if (rc == 0) m.Write(arg, op);
                return rc;
            }
            case EvtchnOp.BindInterdomain:
            {
                var op = m.Read<EvtchnBindInterdomain>(arg);
                rc = ev.BindInterdomain(op.RemoteDom, op.RemotePort, out op.LocalPort);
                if (rc == 0) m.Write(arg, op);
                return rc;
            }
            case EvtchnOp.BindVirq:
            {
                var op = m.Read<EvtchnBindVirq>(arg);
                rc = ev.BindVirq(op.Virq, op.Vcpu, out op.Port);
                if (rc == 0) m.Write(arg, op);
                return rc;
            }
            case EvtchnOp.BindIpi:
            {
                var op = m.Read<EvtchnBindIpi>(arg);
                rc = ev.BindIpi(op.Vcpu, out op.Port);
                if (rc == 0) m.Write(arg, op);
                return rc;
            }
            case EvtchnOp.BindPirq:
                m.Read<EvtchnBindVirq>(arg); // Same 12-byte shape: {u32 pirq, u32 flags, u32 port}.
                return EPERM; // A domU has no physical IRQs.
            case EvtchnOp.Close:
                return ev.Close(m.Read<EvtchnClose>(arg).Port);
            case EvtchnOp.Send:
                return ev.Send(m.Read<EvtchnSend>(arg).Port);
            case EvtchnOp.Status:
            {
                var op = m.Read<EvtchnStatus>(arg);
                rc = ev.Status(ref op);
                if (rc == 0) m.Write(arg, op);
                return rc;
            }
            case EvtchnOp.Unmask:
                return ev.Unmask(m.Read<EvtchnUnmask>(arg).Port);
            case EvtchnOp.BindVcpu:
            {
                var op = m.Read<EvtchnBindVcpu>(arg);
                return ev.BindVcpu(op.Port, op.Vcpu);
            }
            case EvtchnOp.Reset:
                return ev.Reset(m.ReadUInt16(arg));
            case EvtchnOp.InitControl:
            case EvtchnOp.ExpandArray:
            case EvtchnOp.SetPriority:
                return ENOSYS; // FIFO ABI not offered: Linux falls back to 2-level.
            default:
                return Unimplemented(ctx, "event_channel_op", a.A1);
        }
    }

    // ============================================================ sched_op (29), set_timer_op (15)

    private static long SchedOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var v = ctx.VcpuState;
        var m = ctx.Memory;
        switch ((int)a.A1)
        {
            case Abi.SchedOp.Yield:
                ctx.DomainState.ConsoleBackend?.Service();
                Thread.Yield();
                return 0;
            case Abi.SchedOp.Block:
                // Enable event delivery, then sleep until an event is pending (VirtualCpu re-checks HasPendingWork
                // under its gate, so an event arriving meanwhile is not lost).
                v.EvtchnUpcallMask = false;
                v.SetRunstate(VcpuRunState.Blocked, m);
                ctx.RequestedAction = ExitAction.Block;
                return 0;
            case Abi.SchedOp.Shutdown:
            {
                uint reason = m.Read<SchedShutdown>(a.A2).Reason;
                return DoShutdown(ctx, reason);
            }
            case Abi.SchedOp.ShutdownCode:
            {
                uint reason = m.Read<SchedShutdown>(a.A2).Reason;
                ctx.DomainState.ShutdownCode = (byte)reason;
                return 0;
            }
            case Abi.SchedOp.Poll:
                return Poll(ctx, m.Read<SchedPoll>(a.A2));
            case Abi.SchedOp.RemoteShutdown:
            {
                var op = m.Read<SchedRemoteShutdown>(a.A2);
                if (op.DomainId != ctx.Domain.Id && ctx.Domain.Hypervisor.Find(op.DomainId) is null) return ESRCH;
                return EPERM; // Device-model privilege over the target is needed; a domU has none.
            }
            case Abi.SchedOp.PinOverride:
                return EPERM;
            case Abi.SchedOp.Watchdog:
            default:
                return Unimplemented(ctx, "sched_op", a.A1);
        }
    }

    private static long DoShutdown(PvHypercallContext ctx, uint reason)
    {
        HvShutdown r;
        switch ((byte)reason)
        {
            case (byte)Abi.ShutdownReason.Poweroff: r = HvShutdown.Poweroff; break;
            case (byte)Abi.ShutdownReason.Reboot: r = HvShutdown.Reboot; break;
            case (byte)Abi.ShutdownReason.Suspend: r = HvShutdown.Suspend; break;
            case (byte)Abi.ShutdownReason.Crash: r = HvShutdown.Crash; break;
            case (byte)Abi.ShutdownReason.Watchdog: r = HvShutdown.Watchdog; break;
            case (byte)Abi.ShutdownReason.SoftReset: r = HvShutdown.SoftReset; break;
            default: return EINVAL;
        }
        int code = ctx.DomainState.ShutdownCode is byte c ? c : (int)(byte)reason;
        ctx.Domain.Shutdown(r, code);
        ctx.RequestedAction = ExitAction.Stop;
        return 0;
    }

    private static long Poll(PvHypercallContext ctx, SchedPoll op)
    {
        if (op.NrPorts > 128) return EINVAL;
        var v = ctx.VcpuState;
        var ports = new uint[op.NrPorts];
        if (op.NrPorts > 0) ctx.Memory.Read(op.Ports, MemoryMarshal.AsBytes(ports.AsSpan()));
        if (v.UpcallPending) return 0;
        foreach (var p in ports)
        {
            if (p >= EventChannels.NrPorts) return EINVAL;
            if (ctx.DomainState.Events.IsPending(p)) return 0;
        }
        v.BeginPoll(ports, op.Timeout);
        v.SetRunstate(VcpuRunState.Blocked, ctx.Memory);
        ctx.RequestedAction = ExitAction.Block;
        return 0;
    }

    /// <summary>set_timer_op(timeout): 0 stops the singleshot timer; an absurd deadline (over 2^50 ns away) fires in 50 ms, as Xen does.</summary>
    private static long SetTimerOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var d = ctx.DomainState;
        ulong timeout = a.A1;
        if (timeout == 0)
        {
            d.Timers.SetSingleshot(ctx.VcpuState, 0);
            return 0;
        }
        ulong now = d.Clock.SystemTimeNs();
        if ((long)timeout < 0 || ((timeout - now) >> 50) != 0 && timeout > now)
            timeout = now + 50_000_000;
        d.Timers.SetSingleshot(ctx.VcpuState, timeout);
        return 0;
    }

    // ============================================================ xen_version (17)

    /// <summary>The XENFEAT bits we honour: mmu_pt_update_preserve_ad (5; the CPU half implements MMU_PT_UPDATE_PRESERVE_AD), gnttab_map_avail_bits (7), direct_mapped (17: identity p2m).</summary>
    public const uint FeatureSubmap0 = (1u << XenFeature.MmuPtUpdatePreserveAd) | (1u << XenFeature.GnttabMapAvailBits) | (1u << XenFeature.DirectMapped);

    private const string Denied = "<denied>";

    private static long XenVersionOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var m = ctx.Memory;
        ulong arg = a.A2;
        switch ((int)a.A1)
        {
            case XenVer.Version:
                return (XenVersion.Major << 16) | XenVersion.Minor;
            case XenVer.Extraversion:
                m.Write(arg, FixedString(XenVersion.Extra, XenVer.ExtraversionLen));
                return 0;
            case XenVer.CompileInfo:
            {
                // A domU is refused the build details; Xen then fills every field with "<denied>".
                var buf = new byte[144];
                FixedString(Denied, 64).CopyTo(buf.AsSpan(0));
                FixedString(Denied, 16).CopyTo(buf.AsSpan(64));
                FixedString(Denied, 32).CopyTo(buf.AsSpan(80));
                FixedString(Denied, 32).CopyTo(buf.AsSpan(112));
                m.Write(arg, buf);
                return 0;
            }
            case XenVer.Capabilities:
                m.Write(arg, FixedString(XenVersion.Capabilities, XenVer.CapabilitiesInfoLen));
                return 0;
            case XenVer.Changeset:
                m.Write(arg, FixedString(Denied, XenVer.ChangesetInfoLen));
                return 0;
            case XenVer.PlatformParameters:
                m.Write(arg, new XenPlatformParameters { VirtStart = ctx.DomainState.HypervisorVirtStart });
                return 0;
            case XenVer.GetFeatures:
            {
                var fi = m.Read<XenFeatureInfo>(arg);
                if (fi.SubmapIdx != 0) return EINVAL;
                fi.Submap = FeatureSubmap0;
                m.Write(arg, fi);
                return 0;
            }
            case XenVer.Pagesize:
                return 4096;
            case XenVer.GuestHandle:
                m.Write(arg, ctx.Domain.Uuid.ToByteArray(bigEndian: true));
                return 0;
            case XenVer.Commandline:
                m.Write(arg, Encoding.ASCII.GetBytes(Denied + "\0"));
                return 0;
            case XenVer.BuildId:
                return EPERM;
            default:
                return ENOSYS;
        }
    }

    private static byte[] FixedString(string s, int size)
    {
        var b = new byte[size];
        Encoding.ASCII.GetBytes(s.Length >= size ? s[..(size - 1)] : s).CopyTo(b, 0);
        return b;
    }

    // ============================================================ console_io (18)

    private static long ConsoleIoOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        switch ((int)a.A1)
        {
            case ConsoleIo.Write:
            {
                uint count = (uint)a.A2;
                ulong buf = a.A3;
                var chunk = new byte[Math.Min(count, 4096u)];
                for (ulong done = 0; done < count;)
                {
                    int n = (int)Math.Min((ulong)chunk.Length, count - done);
                    ctx.Memory.Read(buf + done, chunk.AsSpan(0, n));
                    ctx.DomainState.ConsoleLog.Write(chunk.AsSpan(0, n));
                    done += (ulong)n;
                }
                return 0;
            }
            case ConsoleIo.Read:
                return EPERM; // Reading Xen's console is for the control domain.
            default:
                return ENOSYS;
        }
    }

    // ============================================================ vm_assist (21), physdev_op (33)

    /// <summary>vm_assist types a 64-bit PV guest may enable (Xen's VM_ASSIST_VALID for PV64).</summary>
    public const ulong ValidVmAssist = (1UL << (int)Vmasst.Type4gbSegments) | (1UL << (int)Vmasst.Type4gbSegmentsNotify)
        | (1UL << (int)Vmasst.TypeWritablePagetables) | (1UL << (int)Vmasst.TypePaeExtendedCr3)
        | (1UL << (int)Vmasst.TypeArchitecturalIopl) | (1UL << (int)Vmasst.TypeRunstateUpdateFlag)
        | (1UL << (int)Vmasst.TypeM2pStrict);

    private static long VmAssist(PvHypercallContext ctx, in HypercallArgs a)
    {
        ulong type = a.A2;
        if (type >= 64 || (ValidVmAssist & (1UL << (int)type)) == 0) return EINVAL;
        var d = ctx.DomainState;
        switch ((uint)a.A1)
        {
            case Vmasst.CmdEnable:
                d.VmAssist |= 1UL << (int)type;
                return 0;
            case Vmasst.CmdDisable:
                d.VmAssist &= ~(1UL << (int)type);
                return 0;
            default:
                return ENOSYS;
        }
    }

    private static long PhysdevOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var m = ctx.Memory;
        switch ((int)a.A1)
        {
            case Abi.PhysdevOp.SetIopl:
            {
                uint iopl = m.ReadUInt32(a.A2);
                if (iopl > 3) return EINVAL;
                ctx.VcpuState.Iopl = iopl;
                return 0;
            }
            case Abi.PhysdevOp.PirqEoiGmfnV1:
            case Abi.PhysdevOp.PirqEoiGmfnV2:
            {
                ulong gmfn = m.ReadUInt64(a.A2);
                if (!ctx.DomainState.IsPopulatedRam(gmfn)) return EINVAL;
                if (ctx.DomainState.PirqEoiGmfn != 0) return -XenErrno.EBUSY;
                ctx.DomainState.PirqEoiGmfn = gmfn;
                return 0;
            }
            case Abi.PhysdevOp.IrqStatusQuery:
            case Abi.PhysdevOp.Eoi:
                m.ReadUInt32(a.A2);
                return EINVAL; // No PIRQ is valid for a domU without passthrough.
            case Abi.PhysdevOp.SetIobitmap:
                return ENOSYS;
            case Abi.PhysdevOp.ApicRead:
            case Abi.PhysdevOp.ApicWrite:
            case Abi.PhysdevOp.AllocIrqVector:
            case Abi.PhysdevOp.FreeIrqVector:
            case Abi.PhysdevOp.MapPirq:
            case Abi.PhysdevOp.UnmapPirq:
            case Abi.PhysdevOp.ManagePciAdd:
            case Abi.PhysdevOp.ManagePciRemove:
            case Abi.PhysdevOp.RestoreMsi:
            case Abi.PhysdevOp.ManagePciAddExt:
            case Abi.PhysdevOp.SetupGsi:
            case Abi.PhysdevOp.GetFreePirq:
            case Abi.PhysdevOp.PciMmcfgReserved:
            case Abi.PhysdevOp.PciDeviceAdd:
            case Abi.PhysdevOp.PciDeviceRemove:
            case Abi.PhysdevOp.RestoreMsiExt:
            case Abi.PhysdevOp.DbgpOp:
            case Abi.PhysdevOp.PrepareMsix:
            case Abi.PhysdevOp.ReleaseMsix:
                return EPERM;
            default:
                return Unimplemented(ctx, "physdev_op", a.A1);
        }
    }
}
