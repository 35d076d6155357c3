using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Services;

public static partial class PvServiceHandlers
{
    // ============================================================ vcpu_op (24)

    private static long VcpuOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var d = ctx.DomainState;
        var m = ctx.Memory;
        int cmd = (int)a.A1;
        ulong arg = a.A3;
        if (a.A2 > int.MaxValue) return ENOENT;
        var v = d.Vcpu((int)a.A2);
        if (v is null) return ENOENT;
        bool self = ReferenceEquals(v, ctx.VcpuState);
        switch (cmd)
        {
            case Abi.VcpuOp.Initialise:
            {
                if (!v.HasVcpuInfo) return EINVAL;
                var gc = m.Read<VcpuGuestContext>(arg);
                if (v.Initialised) return -XenErrno.EEXIST;
                int rc = d.ValidateInitialContext?.Invoke(v, gc) ?? 0;
                if (rc != 0) return rc;
                v.SetInitialContext(gc);
                v.Initialised = true;
                return 0;
            }
            case Abi.VcpuOp.Up:
            {
                if (!v.Initialised) return EINVAL;
                if (v.Down)
                {
                    v.Down = false;
                    v.SetRunstate(VcpuRunState.Runnable, null);
                    d.Domain.BringUp(v.Vcpu);
                    v.Vcpu.Kick();
                }
                return 0;
            }
            case Abi.VcpuOp.Down:
            {
                if (v.Down) return 0;
                // The last vCPU going down powers the domain off, as on Xen.
                if (!d.AllVcpus.Any(o => !ReferenceEquals(o, v) && !o.Down))
                {
                    d.Domain.Shutdown(XenSharp.Hypervisor.ShutdownReason.Poweroff);
                    ctx.RequestedAction = ExitAction.Stop;
                    return 0;
                }
                v.Down = true;
                v.SetRunstate(VcpuRunState.Offline, self ? m : null);
                if (self) ctx.RequestedAction = ExitAction.Block;
                else v.Vcpu.Kick(); // Let it notice (the CPU half blocks a down vCPU at its next exit).
                return 0;
            }
            case Abi.VcpuOp.IsUp:
                return v.Down ? 0 : 1;
            case Abi.VcpuOp.GetRunstateInfo:
                m.Write(arg, v.RunstateInfo);
                return 0;
            case Abi.VcpuOp.RegisterRunstateMemoryArea:
            {
                ulong va = m.Read<VcpuRegisterRunstateMemoryArea>(arg).Addr;
                v.RunstateAreaVa = va;
                // Xen writes the area at once (kernel VAs are shared by every vCPU's page tables).
                if (va != 0) v.WriteRunstateArea(m, v.RunstateInfo);
                return 0;
            }
            case Abi.VcpuOp.RegisterVcpuTimeMemoryArea:
            {
                ulong va = m.Read<VcpuRegisterTimeMemoryArea>(arg).Addr;
                v.TimeAreaVa = va;
                if (va != 0 && self) v.PublishTime(m);
                return 0;
            }
            case Abi.VcpuOp.SetPeriodicTimer:
            {
                ulong period = m.Read<VcpuSetPeriodicTimer>(arg).PeriodNs;
                if (period < 1_000_000) return EINVAL; // At least 1 ms.
                if (period > (1UL << 62)) return EINVAL;
                d.Timers.SetPeriodic(v, period);
                return 0;
            }
            case Abi.VcpuOp.StopPeriodicTimer:
                d.Timers.SetPeriodic(v, 0);
                return 0;
            case Abi.VcpuOp.SetSingleshotTimer:
            {
                if (!self) return EINVAL;
                var t = m.Read<VcpuSetSingleshotTimer>(arg);
                if ((t.Flags & Abi.VcpuOp.SingleshotFuture) != 0 && t.TimeoutAbsNs < d.Clock.SystemTimeNs()) return -XenErrno.ETIME;
                // A deadline already passed fires at once (Linux passes flags = 0); 0 would mean "none", so use 1.
                d.Timers.SetSingleshot(v, Math.Max(t.TimeoutAbsNs, 1));
                return 0;
            }
            case Abi.VcpuOp.StopSingleshotTimer:
                if (!self) return EINVAL;
                d.Timers.SetSingleshot(v, 0);
                return 0;
            case Abi.VcpuOp.RegisterVcpuInfo:
            {
                var r = m.Read<VcpuRegisterVcpuInfo>(arg);
                // Only on itself or on a vCPU that is down.
                if (!self && !v.Down) return EINVAL;
                return v.RegisterVcpuInfo(r.Mfn, r.Offset);
            }
            case Abi.VcpuOp.SendNmi:
            case Abi.VcpuOp.GetPhysid:
            default:
                return Unimplemented(ctx, "vcpu_op", a.A1);
        }
    }
}
