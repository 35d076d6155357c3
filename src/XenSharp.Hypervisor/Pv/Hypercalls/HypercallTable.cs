using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// Hypercall number → handler. <see cref="CreateDefault"/> registers the services half (events, grants,
/// time, sched_op, xen_version, console_io, memory_op, vcpu_op, multicall, physdev_op, platform_op,
/// vm_assist); the CPU half registers its own handlers (mmu_update, iret, ...) with <see cref="Register"/>.
/// A table is immutable in practice after setup and may be shared by all PV domains.
/// </summary>
public sealed class HypercallTable
{
    public const int Size = 64;

    private readonly HypercallHandler?[] _handlers = new HypercallHandler?[Size];
    private readonly string?[] _names = new string?[Size];

    /// <summary>Adds or replaces the handler for <paramref name="nr"/>.</summary>
    public void Register(int nr, string name, HypercallHandler handler)
    {
        if ((uint)nr >= Size) throw new ArgumentOutOfRangeException(nameof(nr), $"hypercall {nr} is beyond the table ({Size})");
        ArgumentNullException.ThrowIfNull(handler);
        _names[nr] = name;
        _handlers[nr] = handler;
    }

    public bool IsRegistered(ulong nr) => nr < Size && _handlers[nr] is not null;
    public string NameOf(ulong nr) => nr < Size && _names[nr] is { } n ? n : $"hypercall {nr}";

    /// <summary>
    /// Runs hypercall <paramref name="nr"/>. Unknown numbers give -ENOSYS and are counted per domain (the first
    /// of each is logged). A bad guest pointer met by a handler gives -EFAULT. Never throws for guest input.
    /// </summary>
    public long Dispatch(PvHypercallContext ctx, ulong nr, in HypercallArgs args)
    {
        var h = nr < Size ? _handlers[nr] : null;
        if (h is null)
        {
            ctx.DomainState.NoteUnimplemented(nr, NameOf(nr));
            return -XenErrno.ENOSYS;
        }
        try
        {
            return h(ctx, args);
        }
        catch (GuestFaultException)
        {
            return -XenErrno.EFAULT;
        }
        catch (GuestMemoryException)
        {
            return -XenErrno.EFAULT;
        }
    }

    /// <summary>The table with every hypercall of the services half registered.</summary>
    public static HypercallTable CreateDefault()
    {
        var t = new HypercallTable();
        t.Register(Hypercall.Multicall, "multicall", Multicall);
        Services.PvServiceHandlers.RegisterAll(t);
        return t;
    }

    /// <summary>
    /// multicall(entries, nr_calls): runs each 64-byte entry through this same table in order, storing each
    /// result in the guest's entry; returns 0, or -EFAULT when an entry cannot be read or its result written.
    /// A nested multicall entry gets -EINVAL (Xen refuses re-entry); iret in a multicall crashes the domain.
    /// </summary>
    private static long Multicall(PvHypercallContext ctx, in HypercallArgs args)
    {
        var table = ctx.DomainState.Hypercalls;
        if (ctx.MulticallDepth > 0) return -XenErrno.EINVAL;
        ulong list = args.A1;
        uint count = (uint)args.A2;
        ctx.MulticallDepth++;
        try
        {
            for (uint i = 0; i < count; i++)
            {
                ulong va = list + (ulong)i * 64;
                var e = ctx.Memory.Read<MulticallEntry>(va);
                long result;
                unsafe
                {
                    if (e.Op == Hypercall.Iret)
                    {
                        ctx.Domain.Crash("iret inside a multicall");
                        ctx.RequestedAction = ExitAction.Stop;
                        return -XenErrno.EINVAL;
                    }
                    result = table.Dispatch(ctx, e.Op, new HypercallArgs(e.Args[0], e.Args[1], e.Args[2], e.Args[3], e.Args[4]));
                }
                ctx.Memory.Write(va + 8, BitConverter.GetBytes(result));
                if (ctx.RequestedAction == ExitAction.Stop) break;
            }
        }
        finally
        {
            ctx.MulticallDepth--;
        }
        return 0;
    }
}
