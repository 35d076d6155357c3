using Iced.Intel;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>Answers to hostile hypercalls that the hostile PV test guest (guests/pv-hostile) found differing from Xen's.</summary>
public sealed class PvHostileGuestTests(ITestOutputHelper output)
{
    /// <summary>
    /// mmu_update whose request list faults: -EFAULT, and *pdone still gets the number of requests done (0 here),
    /// as Xen's do_mmu_update writes it on every way out of the loop. The guest powers off only if both hold.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void MmuUpdateWithAFaultingListStillReportsDone(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var bad = a.CreateLabel();
            a.push(99);                                    // *pdone, to be overwritten with 0
            a.mov(edi, 0x10000);                           // unmapped request list
            a.mov(esi, 3);
            a.mov(rdx, rsp);
            a.mov(r10, 0x7ff0);                            // DOMID_SELF
            a.Hypercall(1);                                // mmu_update
            a.cmp(rax, -14);
            a.jne(bad);
            a.cmp(__qword_ptr[rsp], 0);
            a.jne(bad);
            a.Shutdown(0);
            a.Label(ref bad);
            a.Shutdown(3);
        });
        bool done = h.Run(TimeSpan.FromSeconds(30));
        output.WriteLine(h.Log);
        Assert.True(done, "guest did not shut down");
        Assert.Equal(ShutdownReason.Poweroff, h.Domain.ShutdownReason);
    }
}
