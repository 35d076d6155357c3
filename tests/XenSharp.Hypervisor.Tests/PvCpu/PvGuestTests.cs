using Iced.Intel;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Hypervisor.Tests.PvCpu;

public sealed class PvGuestTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public void ConsoleWriteAndShutdown()
    {
        using var h = new PvGuestHarness(a =>
        {
            var msg = a.CreateLabel();
            var start = a.CreateLabel();
            a.jmp(start);
            a.Label(ref msg);
            a.db(System.Text.Encoding.ASCII.GetBytes("hello from a PV guest\n"));
            a.Label(ref start);
            a.Print(msg, 22);
            a.Shutdown(0);
        });
        bool done = h.Run(Timeout);
        output.WriteLine(h.Log);
        Assert.True(done, "guest did not shut down");
        Assert.Equal(ShutdownReason.Poweroff, h.Domain.ShutdownReason);
        Assert.Contains("(d1) hello from a PV guest", h.Log);
    }
}
