namespace XenSharp.Hypervisor.Tests.Core;

public sealed class HostMemoryTests
{
    [Fact]
    public void ReservationsAreAccountedAndReleased()
    {
        var m = new HostMemory(1024UL << 20, 128UL << 20);
        Assert.Equal(896UL << 20, m.TotalBytes);
        m.Reserve(1, "a", 512UL << 20);
        Assert.Equal(384UL << 20, m.FreeBytes);
        m.Reserve(1, "a", 256UL << 20); // Changing a reservation replaces it.
        Assert.Equal(640UL << 20, m.FreeBytes);
        m.Release(1);
        Assert.Equal(896UL << 20, m.FreeBytes);
    }

    [Fact]
    public void ReservingTooMuchThrowsAndChangesNothing()
    {
        var m = new HostMemory(1024UL << 20, 128UL << 20);
        m.Reserve(1, "a", 800UL << 20);
        var e = Assert.Throws<HostMemoryExhaustedException>(() => m.Reserve(2, "b", 200UL << 20));
        Assert.Contains("only 96 MiB", e.Message);
        Assert.Equal(0UL, m.ReservedBy(2));
        Assert.Equal(96UL << 20, m.FreeBytes);
    }

    [Fact]
    public void ReadsPhysicalMemoryFromProc() => Assert.True(HostMemory.ReadPhysicalBytes() > 64UL << 20);

    [Fact]
    public void AReservationOfAllTheHostIsRejected() =>
        Assert.Throws<ArgumentException>(() => new HostMemory(1UL << 30, 1UL << 30));
}
