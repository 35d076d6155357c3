using Iced.Intel;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;
using XenSharp.Hypervisor.Pv.Cpu;

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

    /// <summary>
    /// The syscall stub is user-executable, so a guest can jump into it with any rcx/r11 instead of executing
    /// `syscall`. Its "hypercall" then returns to rcx: a non-canonical one can be no guest's return address, and
    /// the domain is crashed with the reason instead of handing the CPU an impossible RIP.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void JumpingIntoTheSyscallStubWithANonCanonicalReturnCrashesTheDomainAlone(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            a.mov(eax, 17);                                 // xen_version
            a.xor(edi, edi);
            a.mov(rcx, unchecked((long)0x8000_0000_0000_1000)); // non-canonical "return address"
            a.mov(r11, 0x202);
            a.mov(rbx, (long)PvLayout.StubVa);              // the syscall entry is the stubs' first instruction
            a.jmp(rbx);
        });
        Assert.Equal(h.Platform.Area.Stubs.SyscallEntry, PvLayout.StubVa);
        bool done = h.Run(TimeSpan.FromSeconds(30));
        output.WriteLine(h.Log);
        Assert.True(done, "guest did not stop");
        Assert.Equal(ShutdownReason.Crash, h.Domain.ShutdownReason);
        Assert.Contains("non-canonical", h.Domain.CrashDetail);
    }
}
