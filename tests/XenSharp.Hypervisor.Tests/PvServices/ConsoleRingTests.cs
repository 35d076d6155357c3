using System.Text;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Services;

namespace XenSharp.Hypervisor.Tests.PvServices;

public sealed class ConsoleRingTests : IDisposable
{
    private readonly PvHarness _h = new();
    public void Dispose() => _h.Dispose();

    private const ulong RingPfn = 0x200, Ring = RingPfn << 12;

    private static (PvConsoleBackend Backend, uint Port) Attach(TestDomain d)
    {
        uint port = d.Pv.Events.AllocateUnboundForDom0();
        d.Ram.WriteByte(Ring + 3088, ConsoleConnection.Disconnected);
        return (new PvConsoleBackend(d.Pv, RingPfn, port), port);
    }

    private static void GuestWrite(TestDomain d, string s)
    {
        uint prod = d.Ram.ReadUInt32(Ring + 3084);
        foreach (byte b in Encoding.ASCII.GetBytes(s)) d.Ram.WriteByte(Ring + 1024 + (prod++ & 2047), b);
        d.Ram.WriteUInt32(Ring + 3084, prod);
    }

    [Fact]
    public void OutputDrainsOnSendAndInputIsDelivered()
    {
        var d = _h.NewDomain();
        var (backend, port) = Attach(d);
        Assert.Equal(ConsoleConnection.Connected, d.Ram.ReadByte(Ring + 3088));
        d.GuestAcknowledgeAll(0);
        // Start near the u32 wrap to exercise free-running indexes.
        d.Ram.WriteUInt32(Ring + 3080, uint.MaxValue - 3);
        d.Ram.WriteUInt32(Ring + 3084, uint.MaxValue - 3);
        GuestWrite(d, "Linux version 6.1\n");
        Assert.Equal(0, d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = port }).Rc);
        Assert.Equal("Linux version 6.1\n", Encoding.ASCII.GetString(d.Domain.Console.History()));
        Assert.Equal(d.Ram.ReadUInt32(Ring + 3084), d.Ram.ReadUInt32(Ring + 3080));
        Assert.True(d.Pending(port));

        d.GuestAcknowledgeAll(0);
        d.Domain.Console.WriteInput("ls\n"u8);
        Assert.Equal(3u, d.Ram.ReadUInt32(Ring + 3076));
        Assert.Equal((byte)'l', d.Ram.ReadByte(Ring + 0));
        Assert.True(d.Pending(port));

        // More input than the ring holds: stops at 1024 unconsumed bytes, the rest waits.
        d.Domain.Console.WriteInput(new byte[2000]);
        Assert.Equal(1024u, d.Ram.ReadUInt32(Ring + 3076) - d.Ram.ReadUInt32(Ring + 3072));
        d.Ram.WriteUInt32(Ring + 3072, 1000); // Guest consumed 1000.
        backend.Service();
        // 24 unread + the 979 bytes still queued.
        Assert.Equal(1003u, d.Ram.ReadUInt32(Ring + 3076) - d.Ram.ReadUInt32(Ring + 3072));
        Assert.Equal(0, d.Domain.Console.PendingInput);
        Assert.False(backend.Broken);
    }

    [Fact]
    public void YieldDrainsTheRing()
    {
        var d = _h.NewDomain();
        Attach(d);
        GuestWrite(d, "spin");
        Assert.Equal(0, d.Call(Hypercall.SchedOp, SchedOp.Yield));
        Assert.Equal("spin", Encoding.ASCII.GetString(d.Domain.Console.History()));
    }

    [Fact]
    public void HostileOutIndexesBreakTheRingOnce()
    {
        var d = _h.NewDomain();
        var (backend, port) = Attach(d);
        d.Ram.WriteUInt32(Ring + 3080, 0);
        d.Ram.WriteUInt32(Ring + 3084, 2049);
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = port });
        Assert.True(backend.Broken);
        Assert.Empty(d.Domain.Console.History());
        // Repaired indexes are not served any more, and the breakage is logged once.
        d.Ram.WriteUInt32(Ring + 3084, 1);
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = port });
        d.Evtchn(EvtchnOp.Send, new EvtchnSend { Port = port });
        Assert.Empty(d.Domain.Console.History());
        Assert.Single(_h.Hv.Log.Snapshot(), l => l.Contains("console ring broken"));
    }

    [Fact]
    public void HostileInIndexesBreakTheRing()
    {
        var d = _h.NewDomain();
        var (backend, _) = Attach(d);
        d.Ram.WriteUInt32(Ring + 3072, 5000); // in_cons ahead of in_prod
        d.Ram.WriteUInt32(Ring + 3076, 0);
        d.Domain.Console.WriteInput("x"u8);
        Assert.True(backend.Broken);
    }

    [Fact]
    public void RingOutsideRamIsRefusedAndDisposeUnbinds()
    {
        var d = _h.NewDomain();
        uint port = d.Pv.Events.AllocateUnboundForDom0();
        Assert.Throws<ArgumentException>(() => new PvConsoleBackend(d.Pv, 1UL << 30, port));
        var b = new PvConsoleBackend(d.Pv, RingPfn, port);
        b.Dispose();
        Assert.Equal(EventChannelState.Unbound, d.Pv.Events.Info(port).State);
    }
}
