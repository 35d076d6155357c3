using System.Diagnostics;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>PIT channel 2 and port 0x61 as a PV guest sees them (Xen's pv_pit_handler), on a clock the test moves.</summary>
public sealed class PvPitTests
{
    private long _now = 1_000_000;
    private PvPit NewPit() => new(() => _now);
    // A hundredth of a tick more, so that the clock's rounding never leaves the counter one tick short.
    private void Advance(double pitTicks) => _now += (long)Math.Round((pitTicks + 0.01) * Stopwatch.Frequency / PvPit.Hz);

    private static int ReadWord(PvPit pit) => pit.Read(0x42) | (pit.Read(0x42) << 8);

    [Fact]
    public void LinuxQuickCalibrationSeesTheMsbFallOneStepPer256Ticks()
    {
        var pit = NewPit();
        pit.Write(0x61, (byte)((pit.Read(0x61) & ~0x02) | 0x01)); // gate high, speaker off
        pit.Write(0x43, 0xb0);                                      // channel 2, LSB then MSB, mode 0
        pit.Write(0x42, 0xff);
        pit.Write(0x42, 0xff);
        Assert.Equal(0xffff, ReadWord(pit));
        Advance(256);
        Assert.Equal(0xfeff, ReadWord(pit));
        Advance(256 * 10);
        pit.Read(0x42);
        Assert.Equal(0xf4, pit.Read(0x42)); // the MSB pit_expect_msb waits for
    }

    [Fact]
    public void ModeZeroRaisesOut2InPort61WhenTheCountExpires()
    {
        var pit = NewPit();
        pit.Write(0x61, 0x01);
        pit.Write(0x43, 0xb0);
        pit.Write(0x42, 0x9c); pit.Write(0x42, 0x2e); // 11932 ticks: 10 ms, as pit_calibrate_tsc loads
        Assert.Equal(0, pit.Read(0x61) & 0x20);
        Advance(11931);
        Assert.Equal(0, pit.Read(0x61) & 0x20);
        Advance(2);
        Assert.Equal(0x20, pit.Read(0x61) & 0x20);
        Assert.Equal(1, pit.Read(0x61) & 1); // gate as written
    }

    [Fact]
    public void TheGateStopsAModeZeroCountAndResumesIt()
    {
        var pit = NewPit();
        pit.Write(0x61, 0x01);
        pit.Write(0x43, 0xb0);
        pit.Write(0x42, 0x00); pit.Write(0x42, 0x10); // 0x1000
        Advance(0x100);
        pit.Write(0x61, 0x00);
        Advance(0x800);
        Assert.Equal(0x0f00, ReadWord(pit));
        pit.Write(0x61, 0x01);
        Advance(0x100);
        Assert.Equal(0x0e00, ReadWord(pit));
    }

    [Fact]
    public void CounterLatchAndReadBackHoldTheValueUntilRead()
    {
        var pit = NewPit();
        pit.Write(0x61, 0x01);
        pit.Write(0x43, 0xb4);                         // channel 2, word, mode 2
        pit.Write(0x42, 0x00); pit.Write(0x42, 0x20); // 0x2000
        Advance(0x10);
        pit.Write(0x43, 0x80);                         // latch channel 2
        Advance(0x100);
        Assert.Equal(0x2000 - 0x10, ReadWord(pit));
        Assert.Equal(0x2000 - 0x110, ReadWord(pit)); // live again
        pit.Write(0x43, 0xe8);                         // read-back: status and count of channel 2
        byte status = pit.Read(0x42);
        Assert.Equal(0x34, status & 0x7f);             // word access (3 << 4), mode 2 (2 << 1), count loaded
        Assert.Equal(0x2000 - 0x110, ReadWord(pit));
    }

    [Fact]
    public void ControlWordsForOtherChannelsAndReadsOfTheModePortChangeNothing()
    {
        var pit = NewPit();
        pit.Write(0x61, 0x01);
        pit.Write(0x43, 0xb0);
        pit.Write(0x42, 0x34); pit.Write(0x42, 0x12);
        pit.Write(0x43, 0x30);                         // channel 0: not ours
        Assert.Equal(0, pit.Read(0x43));
        Assert.Equal(0x1234, ReadWord(pit));
        Assert.False(PvPit.Handles(0x40));
        Assert.True(PvPit.Handles(0x61));
    }
}
