using System.Buffers.Binary;
using System.Text;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Cpu;
using HypercallContext = XenSharp.Hypervisor.Pv.PvHypercallContext;

namespace XenSharp.Hypervisor.Pv;

/// <summary>The CPU half's hypercalls: trap table, MMU, GDT/descriptors, stack switch, callbacks, iret, segment bases, debug registers.</summary>
public sealed partial class PvPlatform
{
    private const long EINVAL = -XenErrno.EINVAL, EFAULT = -XenErrno.EFAULT, ENOSYS = -XenErrno.ENOSYS, EPERM = -XenErrno.EPERM;

    private static void RegisterCpuHypercalls(HypercallTable t)
    {
        void R(int nr, string name, Func<PvPlatform, PvHypercall, long> f) => t.Register(nr, name, (HypercallContext ctx, in HypercallArgs a) =>
        {
            if (ctx.Domain.Platform is not PvPlatform p) return -XenErrno.ENOSYS;
            var c = new PvHypercall { Vcpu = ctx.Vcpu, State = ctx.VcpuState, Services = ctx, A1 = a.A1, A2 = a.A2, A3 = a.A3, A4 = a.A4, A5 = a.A5 };
            return f(p, c);
        });
        R(Hypercall.SetTrapTable, "set_trap_table", (p, c) => p.SetTrapTable(c));
        R(Hypercall.MmuUpdate, "mmu_update", (p, c) => p.MmuUpdate(c));
        R(Hypercall.SetGdt, "set_gdt", (p, c) => p.SetGdt(c));
        R(Hypercall.StackSwitch, "stack_switch", (p, c) => { c.State.KernelSs = c.A1; c.State.KernelSp = c.A2; return 0; });
        R(Hypercall.SetCallbacks, "set_callbacks", (p, c) =>
        {
            // As Xen's do_set_callbacks: failsafe without, syscall with CALLBACKF_mask_events.
            var st = c.State;
            st.EventCallback = c.A1; st.FailsafeCallback = c.A2; st.SyscallCallback = c.A3;
            st.FailsafeDisablesEvents = false; st.SyscallDisablesEvents = true;
            return 0;
        });
        R(Hypercall.FpuTaskswitch, "fpu_taskswitch", (p, c) => { c.State.VirtualTs = c.A1 != 0; return 0; });
        R(Hypercall.SetDebugreg, "set_debugreg", (p, c) => p.SetDebugreg(c));
        R(Hypercall.GetDebugreg, "get_debugreg", (p, c) => c.A1 < 8 ? (long)c.State.DebugRegs[c.A1] : EINVAL);
        R(Hypercall.UpdateDescriptor, "update_descriptor", (p, c) => p.UpdateDescriptor(c));
        R(Hypercall.UpdateVaMapping, "update_va_mapping", (p, c) => p.UpdateVaMapping(c));
        R(Hypercall.Iret, "iret", (p, c) => p.Iret(c));
        R(Hypercall.SetSegmentBase, "set_segment_base", (p, c) => p.SetSegmentBase(c));
        R(Hypercall.MmuextOp, "mmuext_op", (p, c) => p.MmuextOp(c));
        R(Hypercall.CallbackOp, "callback_op", (p, c) => p.CallbackOp(c));
    }

    // Guest memory through the current page tables.
    private byte[] ReadGuest(PvHypercall c, ulong va, int len)
    {
        var b = new byte[len];
        try { Walker.Read(c.State.CurrentCr3, va, b); }
        catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException) { throw new GuestFault(); }
        return b;
    }

    private void WriteGuest(PvHypercall c, ulong va, ReadOnlySpan<byte> data)
    {
        try { Walker.Write(c.State.CurrentCr3, va, data); }
        catch (Exception e) when (e is GuestPageFaultException or GuestMemoryException) { throw new GuestFault(); }
    }

    private void WriteGuestU64(PvHypercall c, ulong va, ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); WriteGuest(c, va, b); }
    private void WriteGuestU32(PvHypercall c, ulong va, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); WriteGuest(c, va, b); }

    private sealed class GuestFault : Exception;

    private static long Guarded(Func<long> f)
    {
        try { return f(); }
        catch (GuestFault) { return EFAULT; }
    }

    private CommandPtWriter Writer(PvHypercall c) => new(_domain.Memory, Area, c.State);

    private long SetTrapTable(PvHypercall c) => Guarded(() =>
    {
        var st = c.State;
        if (c.A1 == 0)
        {
            Array.Clear(st.TrapTable);
            return 0;
        }
        for (int i = 0; i < 256; i++)
        {
            var b = ReadGuest(c, c.A1 + (ulong)i * 16, 16);
            ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8));
            if (addr == 0) break;
            st.TrapTable[b[0]] = new TrapEntry(b[1], BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(2)), addr);
        }
        return 0;
    });

    private bool ForeignOk(ulong foreigndom) => (ushort)foreigndom is DomId.Self || foreigndom == _domain.Id;

    private long MmuUpdate(PvHypercall c) => Guarded(() =>
    {
        if (!ForeignOk(c.A4)) return -XenErrno.ESRCH;
        var w = Writer(c);
        ulong count = c.A2 & 0x7fffffff;
        long rc = 0;
        ulong done = 0;
        for (; done < count; done++)
        {
            byte[] b;
            try { b = ReadGuest(c, c.A1 + done * 16, 16); }
            catch (GuestFault) { rc = EFAULT; break; } // as Xen: the requests done so far are still reported in *pdone
            ulong ptr = BinaryPrimitives.ReadUInt64LittleEndian(b), val = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8));
            ulong cmd = ptr & MmuCmd.Mask;
            ptr &= ~MmuCmd.Mask;
            rc = cmd switch
            {
                MmuCmd.NormalPtUpdate => Mmu.UpdateEntry(ptr, val, false, w),
                MmuCmd.PtUpdatePreserveAd => Mmu.UpdateEntry(ptr, val, true, w),
                MmuCmd.MachphysUpdate => (ptr >> 12) < Area.RamFrames && val == (ptr >> 12) ? 0 : EINVAL,
                _ => EINVAL,
            };
            if (rc != 0) break;
        }
        if (c.A3 != 0) WriteGuestU32(c, c.A3, (uint)done);
        return rc;
    });

    private long UpdateVaMapping(PvHypercall c)
    {
        ulong va = c.A1, val = c.A2, flags = c.A3;
        var st = c.State;
        if (va >= X86_64Layout.HypervisorVirtStart && va < X86_64Layout.HypervisorVirtEnd) return EINVAL;
        ulong l4 = st.KernelMode ? st.KernelL4 : st.UserL4;
        ulong pte;
        lock (Mmu.SyncRoot)
        {
            if (!Mmu.TryFindL1Entry(l4, va, out pte)) return EINVAL;
            if (Mmu.TypeOf(pte >> 12) != PageType.L1) return EINVAL;
        }
        var w = Writer(c);
        int rc = Mmu.UpdateEntry(pte, val, false, w);
        if (rc != 0) return rc;
        switch (flags & Uvmf.FlushTypeMask)
        {
            case Uvmf.TlbFlush: w.FlushAll(); break;
            case Uvmf.Invlpg: w.Invlpg(va); break;
        }
        // UVMF_ALL, or a vCPU-mask pointer (UVMF_MULTI): the other vCPUs flush at their next entry.
        if ((flags & Uvmf.FlushTypeMask) != 0 && (flags & ~Uvmf.FlushTypeMask) != 0) FlushOtherVcpus(c.Vcpu);
        return 0;
    }

    private long MmuextOp(PvHypercall c) => Guarded(() =>
    {
        if (!ForeignOk(c.A4)) return -XenErrno.ESRCH;
        var st = c.State;
        var w = Writer(c);
        ulong count = c.A2 & 0x7fffffff;
        long rc = 0;
        ulong done = 0;
        for (; done < count && rc == 0; done++)
        {
            var b = ReadGuest(c, c.A1 + done * 24, 24);
            uint cmd = BinaryPrimitives.ReadUInt32LittleEndian(b);
            ulong arg1 = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8)), arg2 = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(16));
            rc = MmuextOne(c, st, w, cmd, arg1, arg2);
            if (rc != 0) break;
        }
        if (c.A3 != 0) WriteGuestU32(c, c.A3, (uint)done);
        return rc;
    });

    private long MmuextOne(PvHypercall c, PvVcpuState st, CommandPtWriter w, uint cmd, ulong arg1, ulong arg2)
    {
        switch (cmd)
        {
            case MmuExt.PinL1Table: return Mmu.Pin(arg1, PageType.L1, w);
            case MmuExt.PinL2Table: return Mmu.Pin(arg1, PageType.L2, w);
            case MmuExt.PinL3Table: return Mmu.Pin(arg1, PageType.L3, w);
            case MmuExt.PinL4Table: return Mmu.Pin(arg1, PageType.L4, w);
            case MmuExt.UnpinTable: return Mmu.Unpin(arg1, w);
            case MmuExt.NewBaseptr:
            {
                if (!st.KernelMode) return EINVAL;
                long rc;
                lock (Mmu.SyncRoot) rc = Mmu.GetType(arg1, PageType.L4, w);
                if (rc != 0) return rc;
                ulong old = st.KernelL4;
                st.KernelL4 = arg1;
                st.CurrentCr3 = arg1 << 12;
                w.LoadCr3(st.CurrentCr3);
                if (old != 0) lock (Mmu.SyncRoot) Mmu.PutType(old, w);
                return 0;
            }
            case MmuExt.NewUserBaseptr:
            {
                if (arg1 != 0)
                {
                    long rc;
                    lock (Mmu.SyncRoot) rc = Mmu.GetType(arg1, PageType.L4, w);
                    if (rc != 0) return rc;
                }
                ulong old = st.UserL4;
                st.UserL4 = arg1;
                if (old != 0) lock (Mmu.SyncRoot) Mmu.PutType(old, w);
                return 0;
            }
            case MmuExt.TlbFlushLocal:
                w.FlushAll();
                return 0;
            case MmuExt.TlbFlushMulti:
            case MmuExt.TlbFlushAll:
                w.FlushAll();
                FlushOtherVcpus(c.Vcpu);
                return 0;
            case MmuExt.InvlpgLocal:
                w.Invlpg(arg1);
                return 0;
            case MmuExt.InvlpgMulti:
            case MmuExt.InvlpgAll:
                w.Invlpg(arg1);
                FlushOtherVcpus(c.Vcpu);
                return 0;
            case MmuExt.FlushCache:
            case MmuExt.FlushCacheGlobal:
                return 0;
            case MmuExt.SetLdt:
                return SetLdt(c.Vcpu, st, w, arg1, arg2);
            case MmuExt.ClearPage:
            case MmuExt.CopyPage:
            {
                if (arg1 >= Area.RamFrames || Mmu.TypeOf(arg1) != PageType.None || Mmu.TypeRefs(arg1) != 0) return EINVAL;
                var dst = _domain.Memory.Frame(arg1);
                if (cmd == MmuExt.ClearPage) dst.Clear();
                else
                {
                    if (arg2 >= Area.RamFrames) return EINVAL;
                    _domain.Memory.Frame(arg2).CopyTo(dst);
                }
                return 0;
            }
            default:
                return ENOSYS;
        }
    }

    private long SetGdt(PvHypercall c) => Guarded(() =>
    {
        var st = c.State;
        ulong entries = c.A2;
        if (entries > PvLayout.FirstReservedGdtEntry) return EINVAL;
        int nframes = (int)((entries * 8 + 4095) / 4096);
        var frames = new ulong[nframes];
        for (int i = 0; i < nframes; i++) frames[i] = BinaryPrimitives.ReadUInt64LittleEndian(ReadGuest(c, c.A1 + (ulong)i * 8, 8));
        var w = Writer(c);
        lock (Mmu.SyncRoot)
        {
            for (int i = 0; i < nframes; i++)
            {
                int rc = Mmu.GetType(frames[i], PageType.SegDesc, w);
                if (rc != 0)
                {
                    for (int j = 0; j < i; j++) Mmu.PutType(frames[j], w);
                    return rc;
                }
            }
            foreach (var old in st.GdtFrames) if (old is ulong o) Mmu.PutType(o, w);
        }
        int v = c.Vcpu.Id;
        for (int p = 0; p < 14; p++)
        {
            st.GdtFrames[p] = p < nframes ? frames[p] : null;
            w.Store(Area.GdtPteGpa(v, p), Area.GdtPteValue(st.GdtFrames[p]));
            w.Invlpg(PvLayout.GdtVa(v) + (ulong)p * 4096);
        }
        st.GdtEntries = (int)entries;
        return 0;
    });

    private long UpdateDescriptor(PvHypercall c)
    {
        ulong maddr = c.A1, desc = c.A2;
        if ((maddr & 7) != 0 || (maddr >> 12) >= Area.RamFrames) return EINVAL;
        ulong mfn = maddr >> 12;
        lock (Mmu.SyncRoot)
        {
            var t = Mmu.TypeOf(mfn);
            if (Mmu.TypeRefs(mfn) > 0 && t != PageType.SegDesc) return EINVAL;
            if (!Descriptors.Check(desc, out ulong fixedDesc)) return EINVAL;
            _domain.Memory.WriteUInt64(maddr, fixedDesc);
        }
        return 0;
    }

    private long SetDebugreg(PvHypercall c)
    {
        if (c.A1 >= 8 || c.A1 is 4 or 5) return EINVAL;
        if (c.A1 < 4 && c.A2 >= X86_64Layout.HypervisorVirtStart && c.A2 < X86_64Layout.HypervisorVirtEnd) return EPERM;
        c.State.DebugRegs[c.A1] = c.A2;
        return 0;
    }

    private long Iret(PvHypercall c)
    {
        if (c.InMulticall) return EINVAL;
        Traps.Iret(c.State, ref c.Context);
        FailsafeIfUnenterable(c.Vcpu, c.State, ref c.Context);
        return 0;
    }

    private long SetSegmentBase(PvHypercall c)
    {
        var st = c.State;
        switch ((int)c.A1)
        {
            case X86_64Layout.SegbaseFs:
                st.FsBase = c.A2;
                st.Commands.Add((CommandPage.OpWrmsr, X86.MsrFsBase, c.A2));
                return 0;
            case X86_64Layout.SegbaseGsUser:
                st.GsBaseUser = c.A2;
                return 0;
            case X86_64Layout.SegbaseGsKernel:
                st.GsBaseKernel = c.A2;
                st.Commands.Add((CommandPage.OpWrmsr, X86.MsrGsBase, c.A2));
                return 0;
            case X86_64Layout.SegbaseGsUserSel:
                // Loading a user %gs selector resets the user GS base to the descriptor's (flat: 0).
                st.GsBaseUser = 0;
                return 0;
            default:
                return EINVAL;
        }
    }

    private long CallbackOp(PvHypercall c) => Guarded(() =>
    {
        var st = c.State;
        switch ((int)c.A1)
        {
            case 0: // CALLBACKOP_register
            {
                var b = ReadGuest(c, c.A2, 16);
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(b), flags = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(2));
                ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8));
                bool mask = (flags & 1) != 0;
                switch (type)
                {
                    case 0: st.EventCallback = addr; return 0;
                    case 1: st.FailsafeCallback = addr; st.FailsafeDisablesEvents = mask; return 0;
                    case 2: st.SyscallCallback = addr; st.SyscallDisablesEvents = mask; return 0;
                    case 4: return 0; // NMI: a domU never gets one
                    case 5: st.SysenterCallback = addr; return 0;
                    case 7: st.Syscall32Callback = addr; return 0;
                    default: return EINVAL;
                }
            }
            case 1: // CALLBACKOP_unregister
            {
                var b = ReadGuest(c, c.A2, 2);
                switch (BinaryPrimitives.ReadUInt16LittleEndian(b))
                {
                    case 0: case 1: return EINVAL; // event and failsafe cannot be unregistered
                    case 2: st.SyscallCallback = 0; return 0;
                    case 5: st.SysenterCallback = 0; return 0;
                    case 7: st.Syscall32Callback = 0; return 0;
                    default: return EINVAL;
                }
            }
            default:
                return ENOSYS;
        }
    });

}
