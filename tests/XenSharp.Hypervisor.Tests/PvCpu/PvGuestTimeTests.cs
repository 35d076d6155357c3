using Iced.Intel;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>Guest time as a Linux PV kernel keeps it (arch/x86/xen/time.c), on the software CPU.</summary>
public sealed class PvGuestTimeTests(ITestOutputHelper output)
{
    private const ulong VirtBase = 0xffff_ffff_8000_0000;
    private const long DelayNs = 50_000_000;

    /// <summary>
    /// The guest reads its system time from vcpu_info.time with its own RDTSC (pvclock: system_time +
    /// ((rdtsc − tsc_timestamp) shifted, × mul) >> 32), arms VCPUOP_set_singleshot_timer at that time + 50 ms (an
    /// absolute deadline, as xen_vcpuop_set_next_event does; the default periodic tick stopped, as Linux does), binds
    /// VIRQ_TIMER and blocks. The timer must fire and wake
    /// it; in the upcall it reads its time again (into r14) and shuts down. The times the guest computes must be the
    /// hypervisor's system time: when the emulator's RDTSC counted in other units than the published pvclock, the guest's
    /// "now" was far from the hypervisor's, its deadline was never reached and the vCPU stayed blocked forever.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void SingleshotTimerAtPvclockTimeWakesBlockedVcpu(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var ok = a.CreateLabel(); var bad = a.CreateLabel(); var start = a.CreateLabel(); var fail = a.CreateLabel();
            var ev = a.CreateLabel(); var cb = a.CreateLabel(); var virq = a.CreateLabel(); var timer = a.CreateLabel();
            var now = a.CreateLabel();
            a.jmp(start);
            a.Label(ref ok); a.db(System.Text.Encoding.ASCII.GetBytes("timer ok\n"));
            a.Label(ref bad); a.db(System.Text.Encoding.ASCII.GetBytes("FAILED!!\n"));
            a.Label(ref start);
            a.mov(rbp, rsi);                                   // start_info
            // map shared_info at VirtBase: update_va_mapping(va, maddr|P|RW|A, INVLPG)
            a.mov(rdi, unchecked((long)VirtBase));
            a.mov(rsi, __qword_ptr[rbp + 40]);
            a.or(rsi, 0x23);
            a.mov(edx, 2);
            a.Hypercall(14);
            a.test(rax, rax); a.jne(fail);
            a.mov(r12, unchecked((long)VirtBase));             // r12 = shared_info (vcpu_info[0] at 0, its time at +32)
            // as Linux's xen_vcpuop_set_oneshot: stop the default periodic tick (VCPUOP_stop_periodic_timer) before
            // VIRQ_TIMER is bound, so only the singleshot timer can raise it
            a.mov(edi, 7); a.xor(esi, esi); a.xor(edx, edx); a.Hypercall(24);
            a.test(rax, rax); a.jne(fail);
            // event callback, VIRQ_TIMER on vCPU 0
            a.lea(rax, __[ev]); a.lea(rbx, __[cb]); a.mov(__qword_ptr[rbx + 8], rax);
            a.mov(edi, 0); a.lea(rsi, __[cb]); a.Hypercall(30);                    // callback_op(register)
            a.test(rax, rax); a.jne(fail);
            a.mov(edi, 1); a.lea(rsi, __[virq]); a.Hypercall(32);                  // EVTCHNOP_bind_virq
            a.test(rax, rax); a.jne(fail);
            // deadline = now + 50 ms; VCPUOP_set_singleshot_timer(0, &{deadline, 0})
            a.call(now);
            a.mov(r15, rax);                                   // r15 = the guest's time when it armed the timer
            a.add(rax, (int)DelayNs);
            a.lea(rbx, __[timer]); a.mov(__qword_ptr[rbx], rax);
            a.mov(edi, 8); a.xor(esi, esi); a.lea(rdx, __[timer]); a.Hypercall(24);
            a.test(rax, rax); a.jne(fail);
            a.xor(r14, r14);
            var block = a.CreateLabel();
            a.mov(r13, rsp);
            a.Label(ref block);
            a.mov(edi, 1); a.xor(esi, esi); a.Hypercall(29);                       // SCHEDOP_block (unmasks events)
            a.jmp(fail);                                       // woken without the upcall

            // event upcall (events masked again): consume what is pending (upcall flag, selector, ports 0-63); anything
            // but the VIRQ_TIMER port blocks again (on the stack it blocked on)
            a.Label(ref ev);
            a.mov(rsp, r13);
            a.mov(__byte_ptr[r12], 0);                         // evtchn_upcall_pending = 0
            a.mov(__qword_ptr[r12 + 8], 0);                    // evtchn_pending_sel = 0
            a.xor(edx, edx);
            a.xchg(__qword_ptr[r12 + 0x800], rdx);             // shared_info.evtchn_pending[0]
            a.lea(rbx, __[virq]); a.mov(eax, __dword_ptr[rbx + 8]);
            a.bt(rdx, rax);
            a.jnc(block);
            a.call(now);
            a.mov(r14, rax);
            a.Print(ok, 9);
            a.Shutdown(0);
            a.Label(ref fail);
            a.Print(bad, 9);
            a.Shutdown(3);

            // rax = system_time + (((rdtsc - tsc_timestamp) << / >> shift) * mul >> 32), from vcpu_info[0].time
            a.Label(ref now);
            a.rdtsc();
            a.shl(rdx, 32); a.or(rax, rdx);
            a.sub(rax, __qword_ptr[r12 + 32 + 8]);
            a.movsx(ecx, __byte_ptr[r12 + 32 + 28]);
            var right = a.CreateLabel(); var scaled = a.CreateLabel();
            a.test(ecx, ecx); a.js(right);
            a.shl(rax, cl); a.jmp(scaled);
            a.Label(ref right);
            a.neg(ecx); a.shr(rax, cl);
            a.Label(ref scaled);
            a.mov(ecx, __dword_ptr[r12 + 32 + 24]);
            a.mul(rcx);                                        // rdx:rax = delta × mul
            a.shrd(rax, rdx, 32);
            a.add(rax, __qword_ptr[r12 + 32 + 16]);
            a.ret();

            a.Label(ref cb); a.dw(0); a.dw(1); a.dd(0); a.dq(0);       // CALLBACKTYPE_event, mask events
            a.Label(ref virq); a.dd(0); a.dd(0); a.dd(0);              // VIRQ_TIMER, vCPU 0, port (out)
            a.Label(ref timer); a.dq(0); a.dd(0); a.dd(0);             // timeout_abs_ns, flags
        });
        var clock = h.Parts.Services.Clock;
        bool done = h.Run(TimeSpan.FromSeconds(20));
        ulong after = clock.SystemTimeNs();
        output.WriteLine(h.Log);
        Assert.True(done, "the singleshot timer did not wake the blocked vCPU");
        Assert.Contains("(d1) timer ok", h.Log);
        var regs = h.Domain.Vcpus[0].Cpu.GetRegisters();
        output.WriteLine($"guest time when armed {regs.R15} ns, in the upcall {regs.R14} ns; hypervisor time after {after} ns");
        Assert.InRange(regs.R15, 1UL, after);
        Assert.InRange(regs.R14, regs.R15 + (ulong)DelayNs, after);
    }
}
