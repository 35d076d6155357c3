using System.Runtime.InteropServices;
using System.Text;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Services;

namespace XenSharp.Hypervisor.Tests.PvServices;

public sealed class HypercallTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    [Fact]
    public void UnknownHypercallsAreEnosysCountedAndLoggedOnce()
    {
        var d = _h.NewDomain();
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.SchedOpCompat));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.SchedOpCompat));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.Domctl));
        Assert.Equal(-XenErrno.ENOSYS, d.Pv.Hypercalls.Dispatch(d.Ctx(), 1UL << 40, default));
        Assert.Equal(2, d.Pv.UnimplementedCounts[(ulong)Hypercall.SchedOpCompat]);
        Assert.Equal(1, d.Pv.UnimplementedCounts[(ulong)Hypercall.Domctl]);
        Assert.Single(_h.Hv.Log.Snapshot(), l => l.Contains($"d{d.Domain.Id}: unimplemented") && l.Contains($"nr {Hypercall.SchedOpCompat})"));
    }

    [Fact]
    public void CpuHalfCanRegisterHandlers()
    {
        var t = HypercallTable.CreateDefault();
        t.Register(Hypercall.StackSwitch, "stack_switch", (ctx, in a) => (long)(a.A1 + a.A2));
        var d = _h.NewDomain();
        Assert.Equal(5, t.Dispatch(d.Ctx(), Hypercall.StackSwitch, new HypercallArgs(2, 3)));
        Assert.True(t.IsRegistered(Hypercall.StackSwitch));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Register(64, "x", (c, in a) => 0));
    }

    [Fact]
    public void MulticallRunsEntriesAndStoresResults()
    {
        var d = _h.NewDomain();
        ulong mc = PvHarness.Scratch + 0x4000;
        ulong feat = PvHarness.Scratch + 0x5000;
        d.Put(feat, new XenFeatureInfo { SubmapIdx = 0 });
        var entries = new (ulong Op, ulong[] Args)[]
        {
            (Hypercall.XenVersion, [XenVer.Version, 0]),
            (Hypercall.XenVersion, [XenVer.GetFeatures, feat]),
            (Hypercall.Multicall, [mc, 1]),              // nested: -EINVAL
            (999, []),                                   // unknown: -ENOSYS
            (Hypercall.EventChannelOp, [EvtchnOp.Send, 0xdead_0000_0000]), // bad pointer: -EFAULT
            (Hypercall.XenVersion, [XenVer.Pagesize, 0]),
        };
        for (int i = 0; i < entries.Length; i++)
        {
            var e = new MulticallEntry { Op = entries[i].Op, Result = 0x5555 };
            unsafe { for (int j = 0; j < entries[i].Args.Length; j++) e.Args[j] = entries[i].Args[j]; }
            d.Put(mc + (ulong)i * 64, e);
        }
        Assert.Equal(0, d.Call(Hypercall.Multicall, mc, (ulong)entries.Length));
        long R(int i) => (long)d.Get<MulticallEntry>(mc + (ulong)i * 64).Result;
        Assert.Equal((XenVersion.Major << 16) | XenVersion.Minor, R(0));
        Assert.Equal(0, R(1));
        Assert.Equal(PvServiceHandlers.FeatureSubmap0, d.Get<XenFeatureInfo>(feat).Submap);
        Assert.Equal(-XenErrno.EINVAL, R(2));
        Assert.Equal(-XenErrno.ENOSYS, R(3));
        Assert.Equal(-XenErrno.EFAULT, R(4));
        Assert.Equal(4096, R(5));
        // A wild entry list, and a list running off the end of memory.
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.Multicall, 0xffff_8000_0000_0000, 1));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.Multicall, d.Ram.Size - 64, 2));
        Assert.Equal(0, d.Call(Hypercall.Multicall, 0xdead, 0));
    }

    [Fact]
    public void MulticallWithIretCrashesTheDomain()
    {
        var d = _h.NewDomain();
        ulong mc = PvHarness.Scratch + 0x4000;
        d.Put(mc, new MulticallEntry { Op = Hypercall.Iret });
        var ctx = d.Ctx();
        d.Pv.Hypercalls.Dispatch(ctx, Hypercall.Multicall, new HypercallArgs(mc, 1));
        Assert.Equal(ExitAction.Stop, ctx.RequestedAction);
        Assert.Equal(XenSharp.Hypervisor.ShutdownReason.Crash, d.Domain.ShutdownReason);
    }

    [Fact]
    public void XenVersionSubops()
    {
        var d = _h.NewDomain();
        ulong buf = PvHarness.Scratch;
        Assert.Equal((4 << 16) | 17, d.Call(Hypercall.XenVersion, XenVer.Version));
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.Extraversion, buf));
        Assert.Equal(XenVersion.Extra, d.Ram.ReadCString(buf, 16));
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.Capabilities, buf));
        Assert.Equal("xen-3.0-x86_64", d.Ram.ReadCString(buf, 1024));
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.CompileInfo, buf));
        Assert.Equal("<denied>", d.Ram.ReadCString(buf, 64));
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.Changeset, buf));
        Assert.Equal("<denied>", d.Ram.ReadCString(buf, 64));
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.PlatformParameters, buf));
        Assert.Equal(X86_64Layout.HypervisorVirtStart, d.Get<ulong>(buf));
        Assert.Equal(4096, d.Call(Hypercall.XenVersion, XenVer.Pagesize));
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.GuestHandle, buf));
        Assert.Equal(d.Domain.Uuid.ToByteArray(bigEndian: true), d.Ram.Span(buf, 16).ToArray());
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.XenVersion, XenVer.BuildId, buf));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.XenVersion, 99, buf));

        d.Put(buf, new XenFeatureInfo { SubmapIdx = 0 });
        Assert.Equal(0, d.Call(Hypercall.XenVersion, XenVer.GetFeatures, buf));
        uint f = d.Get<XenFeatureInfo>(buf).Submap;
        Assert.NotEqual(0u, f & (1u << XenFeature.MmuPtUpdatePreserveAd));
        Assert.NotEqual(0u, f & (1u << XenFeature.GnttabMapAvailBits));
        foreach (int bad in new[] { XenFeature.WritablePageTables, XenFeature.AutoTranslatedPhysmap, XenFeature.SupervisorModeKernel, XenFeature.HvmCallbackVector, XenFeature.Dom0 })
            Assert.Equal(0u, f & (1u << bad));
        d.Put(buf, new XenFeatureInfo { SubmapIdx = 1 });
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.XenVersion, XenVer.GetFeatures, buf));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.XenVersion, XenVer.GetFeatures, 0x10_0000_0000));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.XenVersion, XenVer.Capabilities, d.Ram.Size - 100));
    }

    [Fact]
    public void ConsoleIoWritesToTheLogAndRefusesReads()
    {
        var d = _h.NewDomain();
        var text = Encoding.ASCII.GetBytes("hello from the guest\npartial");
        d.Ram.Write(PvHarness.Scratch, text);
        Assert.Equal(0, d.Call(Hypercall.ConsoleIo, ConsoleIo.Write, (ulong)text.Length, PvHarness.Scratch));
        Assert.Contains(_h.Hv.Log.Snapshot(), l => l.EndsWith($"(d{d.Domain.Id}) hello from the guest"));
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.ConsoleIo, ConsoleIo.Read, 10, PvHarness.Scratch));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.ConsoleIo, 7, 10, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.ConsoleIo, ConsoleIo.Write, 100, 0xffff_0000_0000));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.ConsoleIo, ConsoleIo.Write, uint.MaxValue, PvHarness.Scratch));
    }

    [Fact]
    public void ConsoleIoIsRateLimited()
    {
        var d = _h.NewDomain();
        var line = Encoding.ASCII.GetBytes(new string('x', 99) + "\n");
        d.Ram.Write(PvHarness.Scratch, line);
        for (int i = 0; i < 1000; i++) d.Call(Hypercall.ConsoleIo, ConsoleIo.Write, (ulong)line.Length, PvHarness.Scratch);
        int logged = _h.Hv.Log.Snapshot().Count(l => l.Contains($"(d{d.Domain.Id}) xxx"));
        Assert.InRange(logged, 100, 200);
        Assert.True(d.Pv.ConsoleLog.DroppedBytes > 50_000);
        Assert.Single(_h.Hv.Log.Snapshot(), l => l.Contains("rate limited"));
    }

    [Fact]
    public void VmAssistAcceptsPv64TypesOnly()
    {
        var d = _h.NewDomain();
        foreach (uint t in new[] { Vmasst.Type4gbSegments, Vmasst.Type4gbSegmentsNotify, Vmasst.TypeWritablePagetables, Vmasst.TypePaeExtendedCr3, Vmasst.TypeRunstateUpdateFlag, Vmasst.TypeM2pStrict })
            Assert.Equal(0, d.Call(Hypercall.VmAssist, Vmasst.CmdEnable, t));
        Assert.NotEqual(0UL, d.Pv.VmAssist & (1UL << (int)Vmasst.TypeWritablePagetables));
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VmAssist, Vmasst.CmdEnable, 6));
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.VmAssist, Vmasst.CmdEnable, 64));
        Assert.Equal(-XenErrno.ENOSYS, d.Call(Hypercall.VmAssist, 7, Vmasst.TypeWritablePagetables));
        Assert.Equal(0, d.Call(Hypercall.VmAssist, Vmasst.CmdDisable, Vmasst.TypeWritablePagetables));
        Assert.Equal(0UL, d.Pv.VmAssist & (1UL << (int)Vmasst.TypeWritablePagetables));
    }

    [Fact]
    public void PhysdevAndPlatformOp()
    {
        var d = _h.NewDomain();
        d.Put(PvHarness.Scratch, 1u);
        Assert.Equal(0, d.Call(Hypercall.PhysdevOp, PhysdevOp.SetIopl, PvHarness.Scratch));
        Assert.Equal(1u, d.Pv.Vcpu(0)!.Iopl);
        d.Put(PvHarness.Scratch, 4u);
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.PhysdevOp, PhysdevOp.SetIopl, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EFAULT, d.Call(Hypercall.PhysdevOp, PhysdevOp.SetIopl, 0xffff_0000_0000));
        d.Put(PvHarness.Scratch, 1UL << 40);
        Assert.Equal(-XenErrno.EINVAL, d.Call(Hypercall.PhysdevOp, PhysdevOp.PirqEoiGmfnV2, PvHarness.Scratch));
        d.Put(PvHarness.Scratch, 42UL);
        Assert.Equal(0, d.Call(Hypercall.PhysdevOp, PhysdevOp.PirqEoiGmfnV2, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.PhysdevOp, PhysdevOp.MapPirq, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EPERM, d.Call(Hypercall.PlatformOp, PvHarness.Scratch));
    }

    [Fact]
    public void XenpmuOpAnswersAsXenWithoutVpmu()
    {
        var d = _h.NewDomain();
        // XENPMU_mode_get (0) and XENPMU_init (4): no virtual PMU here, as Xen with vpmu=off.
        Assert.Equal(-XenErrno.EOPNOTSUPP, d.Call(Hypercall.XenpmuOp, 0, PvHarness.Scratch));
        Assert.Equal(-XenErrno.EOPNOTSUPP, d.Call(Hypercall.XenpmuOp, 4, PvHarness.Scratch));
    }
}
