using System.Runtime.InteropServices;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Services;

public static partial class PvServiceHandlers
{
    // ============================================================ grant_table_op (20)

    private static long GrantTableOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var m = ctx.Memory;
        var gt = ctx.DomainState.Grants;
        ulong arg = a.A2;
        uint count = (uint)a.A3;
        switch ((int)a.A1)
        {
            case Gnttab.SetupTable:
            {
                if (count != 1) return EINVAL;
                var op = m.Read<GnttabSetupTable>(arg);
                if (op.NrFrames > gt.MaxFrames) op.Status = Gnttab.StGeneralError;
                else if (ctx.DomainState.Events.CheckSelf(op.Dom) is int r && r != 0)
                    op.Status = r == -XenErrno.ESRCH ? Gnttab.StBadDomain : Gnttab.StPermissionDenied;
                else if (!gt.Grow((int)op.NrFrames)) op.Status = Gnttab.StGeneralError;
                else
                {
                    op.Status = Gnttab.StOkay;
                    for (uint i = 0; i < op.NrFrames; i++)
                    {
                        if (!m.TryWrite(op.FrameList + i * 8, BitConverter.GetBytes(gt.FrameMfn((int)i))))
                        {
                            op.Status = Gnttab.StBadVirtAddr;
                            break;
                        }
                    }
                }
                m.Write(arg, op);
                return 0;
            }
            case Gnttab.QuerySize:
            {
                if (count != 1) return EINVAL;
                var op = m.Read<GnttabQuerySize>(arg);
                if (ctx.DomainState.Events.CheckSelf(op.Dom) is int r && r != 0)
                    op.Status = r == -XenErrno.ESRCH ? Gnttab.StBadDomain : Gnttab.StPermissionDenied;
                else
                {
                    op.NrFrames = (uint)gt.NrFrames;
                    op.MaxNrFrames = (uint)gt.MaxFrames;
                    op.Status = Gnttab.StOkay;
                }
                m.Write(arg, op);
                return 0;
            }
            case Gnttab.SetVersion:
            {
                if (count != 1) return EINVAL;
                var op = m.Read<GnttabSetVersion>(arg);
                long rc = op.Version switch
                {
                    1 => 0,
                    2 => ENOSYS, // Only v1 is offered (Xen's answer when max_grant_version is 1).
                    _ => EINVAL,
                };
                op.Version = gt.Version;
                m.Write(arg, op);
                return rc;
            }
            case Gnttab.GetVersion:
            {
                if (count != 1) return EINVAL;
                var op = m.Read<GnttabGetVersion>(arg);
                int r = ctx.DomainState.Events.CheckSelf(op.Dom);
                if (r != 0) return r;
                op.Version = gt.Version;
                m.Write(arg, op);
                return 0;
            }
            case Gnttab.Copy:
                return GrantCopy(ctx, arg, count);
            default:
                // map/unmap_grant_ref, transfer, unmap_and_replace, dump_table, get_status_frames: backends are dom0 (C#).
                return Unimplemented(ctx, "grant_table_op", a.A1);
        }
    }

    private static long GrantCopy(PvHypercallContext ctx, ulong arg, uint count)
    {
        var m = ctx.Memory;
        for (uint i = 0; i < count; i++)
        {
            ulong va = arg + (ulong)i * 40;
            var op = m.Read<GnttabCopy>(va);
            op.Status = CopyOne(ctx, op);
            m.Write(va + 36, BitConverter.GetBytes(op.Status));
        }
        return 0;
    }

    private readonly record struct CopySide(PvDomainState Domain, ulong Pfn, uint Ref, bool ViaGrant, bool ReadOnly);

    private static short CopyOne(PvHypercallContext ctx, GnttabCopy op)
    {
        if ((op.Flags & ~(Gnttab.CopySourceGref | Gnttab.CopyDestGref)) != 0) return Gnttab.StBadCopyArg;
        if (op.SourceOffset + op.Len > 4096 || op.DestOffset + op.Len > 4096) return Gnttab.StBadCopyArg;
        short st = AcquireSide(ctx, op.SourceDomid, (op.Flags & Gnttab.CopySourceGref) != 0, op.SourceRef, op.SourceGmfn, readOnly: true, out var src);
        if (st != Gnttab.StOkay) return st;
        try
        {
            st = AcquireSide(ctx, op.DestDomid, (op.Flags & Gnttab.CopyDestGref) != 0, op.DestRef, op.DestGmfn, readOnly: false, out var dst);
            if (st != Gnttab.StOkay) return st;
            try
            {
                var from = src.Domain.Domain.Memory.Frame(src.Pfn).Slice(op.SourceOffset, op.Len);
                var to = dst.Domain.Domain.Memory.Frame(dst.Pfn).Slice(op.DestOffset, op.Len);
                from.CopyTo(to);
                return Gnttab.StOkay;
            }
            finally
            {
                if (dst.ViaGrant) dst.Domain.Grants.Release(dst.Ref, false);
            }
        }
        finally
        {
            if (src.ViaGrant) src.Domain.Grants.Release(src.Ref, true);
        }
    }

    private static short AcquireSide(PvHypercallContext ctx, ushort domid, bool viaGrant, uint gref, ulong gmfn, bool readOnly, out CopySide side)
    {
        side = default;
        var self = ctx.DomainState;
        PvDomainState? d;
        if (domid == DomId.Self || domid == self.DomainId) d = self;
        else d = ctx.Domain.Hypervisor.Find(domid) is { } dom ? PvDomainState.Of(dom) : null;
        if (d is null) return Gnttab.StBadDomain;
        if (!viaGrant)
        {
            // A frame named directly must be the caller's own.
            if (!ReferenceEquals(d, self)) return Gnttab.StPermissionDenied;
            if (!self.IsPopulatedRam(gmfn)) return Gnttab.StBadPage;
            side = new CopySide(d, gmfn, 0, false, readOnly);
            return Gnttab.StOkay;
        }
        short st = d.Grants.Acquire(gref, self.DomainId, readOnly, out ulong pfn);
        if (st != Gnttab.StOkay) return st;
        side = new CopySide(d, pfn, gref, true, readOnly);
        return Gnttab.StOkay;
    }

    // ============================================================ memory_op (12)

    private const int MemopCmdMask = 0x3f, MemopExtentShift = 6;
    /// <summary>Largest extent order a domU may use (Xen's default domU max order on x86).</summary>
    public const int MaxDomUExtentOrder = 9;

    private static long MemoryOp(PvHypercallContext ctx, in HypercallArgs a)
    {
        var m = ctx.Memory;
        var d = ctx.DomainState;
        int cmd = (int)(a.A1 & MemopCmdMask);
        ulong startExtent = a.A1 >> MemopExtentShift;
        ulong arg = a.A2;
        switch (cmd)
        {
            case Abi.MemoryOp.IncreaseReservation:
            case Abi.MemoryOp.DecreaseReservation:
            case Abi.MemoryOp.PopulatePhysmap:
                return Reservation(ctx, cmd, startExtent, m.Read<XenMemoryReservation>(arg));
            case Abi.MemoryOp.CurrentReservation:
            case Abi.MemoryOp.MaximumReservation:
            case Abi.MemoryOp.MaximumGpfn:
            {
                if (startExtent != 0) return ENOSYS;
                int r = d.Events.CheckSelf(m.ReadUInt16(arg));
                if (r != 0) return r;
                return cmd switch
                {
                    Abi.MemoryOp.CurrentReservation => d.PopulatedPages,
                    Abi.MemoryOp.MaximumReservation => (long)d.MaxPages,
                    _ => (long)d.Domain.Memory.FrameCount - 1,
                };
            }
            case Abi.MemoryOp.MaximumRamPage:
                return (long)d.SpecialFrames.EndMfn;
            case Abi.MemoryOp.MemoryMap:
            {
                var map = m.Read<XenMemoryMap>(arg);
                if (map.NrEntries < 1) return EINVAL;
                var e = new byte[XenVerSizes.E820EntrySize];
                BitConverter.TryWriteBytes(e.AsSpan(0), 0UL);
                BitConverter.TryWriteBytes(e.AsSpan(8), d.Domain.MaxBytes);
                BitConverter.TryWriteBytes(e.AsSpan(16), XenVerSizes.E820Ram);
                m.Write(map.Buffer, e);
                map.NrEntries = 1;
                m.Write(arg, map);
                return 0;
            }
            case Abi.MemoryOp.MachineMemoryMap:
            case Abi.MemoryOp.SetMemoryMap:
            case Abi.MemoryOp.ClaimPages:
                return EPERM;
            case Abi.MemoryOp.MachphysMapping:
                m.Write(arg, d.MachphysMapping);
                return 0;
            default:
                // exchange (swiotlb-xen, > 4 GiB guests), add_to_physmap & co. (auto-translated guests only), ...
                return Unimplemented(ctx, "memory_op", (ulong)cmd);
        }
    }

    /// <summary>increase/decrease_reservation and populate_physmap for a PV guest with an identity p2m. Returns extents done.</summary>
    private static long Reservation(PvHypercallContext ctx, int cmd, ulong start, XenMemoryReservation r)
    {
        var d = ctx.DomainState;
        var m = ctx.Memory;
        int self = d.Events.CheckSelf(r.Domid);
        if (self != 0) return self;
        if (r.ExtentOrder > MaxDomUExtentOrder) return (long)start;
        if (r.MemFlags != 0 && cmd != Abi.MemoryOp.DecreaseReservation && (r.MemFlags & Abi.MemoryOp.FlagPopulateOnDemand) != 0) return (long)start;
        ulong pages = 1UL << (int)r.ExtentOrder;
        if (r.NrExtents > (ulong)long.MaxValue / 8) return (long)start;
        for (ulong i = start; i < r.NrExtents; i++)
        {
            ulong slot = r.ExtentStart + i * 8;
            switch (cmd)
            {
                case Abi.MemoryOp.DecreaseReservation:
                {
                    Span<byte> buf = stackalloc byte[8];
                    if (!m.TryRead(slot, buf)) return (long)i;
                    ulong gpfn = BitConverter.ToUInt64(buf);
                    if ((gpfn & (pages - 1)) != 0) return (long)i;
                    // The frames leave tot_pages and their host pages are freed (hole-punched) in one go.
                    if (!d.TryDepopulate(gpfn, pages)) return (long)i;
                    break;
                }
                case Abi.MemoryOp.PopulatePhysmap:
                {
                    Span<byte> buf = stackalloc byte[8];
                    if (!m.TryRead(slot, buf)) return (long)i;
                    ulong gpfn = BitConverter.ToUInt64(buf);
                    if ((gpfn & (pages - 1)) != 0 || gpfn + pages > d.Domain.Memory.FrameCount) return (long)i;
                    if ((ulong)d.PopulatedPages + pages > d.MaxPages) return (long)i;
                    for (ulong p = 0; p < pages; p++)
                        if (d.IsPopulatedRam(gpfn + p)) return (long)i;
                    for (ulong p = 0; p < pages; p++)
                        if (!d.TryPopulate(gpfn + p)) return (long)i;
                    // PV: the hypervisor tells the guest the machine frame it got (identity: the same number).
                    if (!m.TryWrite(slot, BitConverter.GetBytes(gpfn))) return (long)i;
                    break;
                }
                default: // IncreaseReservation: any free frame(s); order 0 only (no contiguous search).
                {
                    if (pages != 1) return (long)i;
                    if (d.FindUnpopulated() is not ulong pfn || !d.TryPopulate(pfn)) return (long)i;
                    if (r.ExtentStart != 0 && !m.TryWrite(slot, BitConverter.GetBytes(pfn))) return (long)i;
                    break;
                }
            }
        }
        return (long)r.NrExtents;
    }
}
