using XenSharp.Hypervisor.Hvm;

namespace XenSharp.Hypervisor.Tests.Core;

public sealed class DeviceTests
{
    [Fact]
    public void UartTransmitsAndReceivesThroughTheConsole()
    {
        var console = new DomainConsole();
        var uart = new Uart16550(0x3f8, console);
        Assert.Equal(0x60UL, uart.Read(0x3fd, 1) & 0x61); // THR empty, no data
        uart.Write(0x3f8, 1, 'A');
        Assert.Equal("A"u8.ToArray(), console.History());
        console.WriteInput("z"u8);
        Assert.Equal(1UL, uart.Read(0x3fd, 1) & 1);
        Assert.Equal((ulong)'z', uart.Read(0x3f8, 1));
        Assert.Equal(0UL, uart.Read(0x3fd, 1) & 1);
    }

    [Fact]
    public void UartDivisorLatchDoesNotTransmit()
    {
        var console = new DomainConsole();
        var uart = new Uart16550(0x3f8, console);
        uart.Write(0x3fb, 1, 0x80);
        uart.Write(0x3f8, 1, 1);
        uart.Write(0x3f9, 1, 0);
        Assert.Equal(1UL, uart.Read(0x3f8, 1));
        uart.Write(0x3fb, 1, 0x03);
        Assert.Empty(console.History());
    }

    [Fact]
    public void UartRaisesItsInterruptLineForReceivedData()
    {
        var console = new DomainConsole();
        bool level = false;
        var uart = new Uart16550(0x3f8, console, l => level = l);
        uart.Write(0x3f9, 1, 1);
        Assert.False(level);
        console.WriteInput("k"u8);
        Assert.True(level);
        Assert.Equal(0x04UL, uart.Read(0x3fa, 1) & 0x0f);
        uart.Read(0x3f8, 1);
        Assert.False(level);
    }

    [Fact]
    public void ConsoleHistoryIsBoundedAndReplayedToLateSubscribers()
    {
        var console = new DomainConsole();
        var big = new byte[70 * 1024];
        for (int i = 0; i < big.Length; i++) big[i] = (byte)i;
        console.WriteOutput(big);
        var got = new List<byte>();
        using (console.Subscribe(m => got.AddRange(m.ToArray())))
        {
            console.WriteOutput([1, 2, 3]);
        }
        console.WriteOutput([4]);
        Assert.Equal(64 * 1024 + 3, got.Count);
        Assert.Equal(big[^(64 * 1024)], got[0]);
        Assert.Equal([1, 2, 3], got.TakeLast(3));
    }

    [Fact]
    public void ConsoleInputIsBounded()
    {
        var console = new DomainConsole();
        Assert.Equal(4096, console.WriteInput(new byte[5000]));
        Assert.Equal(0, console.WriteInput([1]));
    }

    [Fact]
    public void PowerButtonLatchIsReadOnce()
    {
        var p = new PowerControl(_ => { });
        Assert.Equal(0UL, p.Read(PowerControl.PowerButtonPort, 1));
        p.PressButton(ShutdownReason.Reboot);
        Assert.Equal(2UL, p.Read(PowerControl.PowerButtonPort, 1));
        Assert.Equal(0UL, p.Read(PowerControl.PowerButtonPort, 1));
    }

    [Fact]
    public void IoBusRefusesOverlapsAndDefaultsToAllOnes()
    {
        var bus = new IoBus();
        bus.Register(0x3f8, 8, new Uart16550(0x3f8, new DomainConsole()));
        Assert.Throws<InvalidOperationException>(() => bus.Register(0x3ff, 2, new PowerControl(_ => { })));
        Assert.Equal(0xffffffffUL, bus.Read(0x1234, 4));
        Assert.False(bus.Write(0x1234, 1, 0));
    }
}
