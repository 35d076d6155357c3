using Iced.Intel;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Hypervisor.Tests.PvCpu;

public sealed class PvGuestTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void ConsoleWriteAndShutdown(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
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

public sealed class PvGuestFeatureTests(ITestOutputHelper output)
{
    private const ulong VirtBase = 0xffff_ffff_8000_0000;

    /// <summary>
    /// One guest exercising the CPU half: wrmsr GS_BASE emulation (then a gs: load), forced-emulation CPUID, a
    /// multicall, update_va_mapping of shared_info (a special frame), a trap table and a #PF it handles itself (cr2
    /// from vcpu_info, error code, iret), and an event-channel loopback delivered as an upcall.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void TrapsEventsAndEmulation(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var ok = a.CreateLabel(); var bad = a.CreateLabel(); var start = a.CreateLabel();
            var table = a.CreateLabel(); var pf = a.CreateLabel(); var ev = a.CreateLabel(); var mc = a.CreateLabel();
            var gsdata = a.CreateLabel(); var cb = a.CreateLabel(); var evs = a.CreateLabel(); var bindi = a.CreateLabel(); var send = a.CreateLabel();
            var fail = a.CreateLabel();
            a.jmp(start);
            a.Label(ref ok); a.db(System.Text.Encoding.ASCII.GetBytes("all ok\n"));
            a.Label(ref bad); a.db(System.Text.Encoding.ASCII.GetBytes("FAIL!!\n"));
            a.Label(ref start);
            a.mov(rbp, rsi);                                   // start_info
            a.lea(rax, __[pf]); a.lea(rbx, __[table]); a.mov(__qword_ptr[rbx + 8], rax);
            a.lea(rax, __[ev]); a.lea(rbx, __[cb]); a.mov(__qword_ptr[rbx + 8], rax);
            // 1. wrmsr GS_BASE (emulated on #GP), then read through gs:
            a.lea(rax, __[gsdata]);
            a.mov(rdx, rax); a.shr(rdx, 32);
            a.mov(ecx, 0xc0000101);
            a.wrmsr();
            a.db(0x65, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0);   // mov rax, gs:[0]
            a.mov(rbx, 0x1122334455667788);
            a.cmp(rax, rbx); a.jne(fail);
            // 2. forced-emulation CPUID leaf 0x40000000
            a.mov(eax, 0x40000000); a.xor(ecx, ecx);
            a.db(0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2);
            a.cmp(ebx, 0x566e6558); a.jne(fail);
            // 3. multicall of two xen_version(0)
            a.lea(rdi, __[mc]); a.mov(esi, 2); a.Hypercall(13);
            a.test(rax, rax); a.jne(fail);
            a.lea(rbx, __[mc]);
            a.cmp(__qword_ptr[rbx + 8], (4 << 16) | 17); a.jne(fail);
            a.cmp(__qword_ptr[rbx + 64 + 8], (4 << 16) | 17); a.jne(fail);
            // 4. map shared_info at VirtBase (padding frame 0) with update_va_mapping(va, maddr|P|RW|A, INVLPG)
            a.mov(rdi, unchecked((long)VirtBase));
            a.mov(rsi, __qword_ptr[rbp + 40]);
            a.or(rsi, 0x23);
            a.mov(edx, 2);
            a.Hypercall(14);
            a.test(rax, rax); a.jne(fail);
            a.mov(r12, unchecked((long)VirtBase));             // r12 = shared_info
            // 5. trap table, then a #PF on an unmapped user address
            a.lea(rdi, __[table]); a.Hypercall(0);
            a.test(rax, rax); a.jne(fail);
            a.xor(r13, r13);
            a.mov(rbx, 0x1000);
            a.mov(rax, __qword_ptr[rbx]);                      // 3 bytes: 48 8b 03
            a.cmp(r13, 1); a.jne(fail);
            a.cmp(r14, 0x1000); a.jne(fail);                   // cr2 from vcpu_info
            a.cmp(r15, 0); a.jne(fail);                        // error code: kernel read of a not-present page
            // 6. event channel loopback: alloc_unbound(self, self), bind_interdomain(self, port), callback, unmask, send
            a.lea(rdi, __[cb]); a.mov(rsi, rdi); a.mov(edi, 0); a.Hypercall(30);  // callback_op(register, &cb)
            a.test(rax, rax); a.jne(fail);
            a.mov(edi, 6); a.lea(rsi, __[evs]); a.Hypercall(32);                   // alloc_unbound
            a.test(rax, rax); a.jne(fail);
            a.lea(rbx, __[evs]); a.mov(eax, __dword_ptr[rbx + 4]);
            a.lea(rbx, __[bindi]); a.mov(__dword_ptr[rbx + 4], eax);
            a.mov(edi, 0); a.lea(rsi, __[bindi]); a.Hypercall(32);                 // bind_interdomain
            a.test(rax, rax); a.jne(fail);
            a.xor(r13, r13);
            a.mov(__byte_ptr[r12 + 1], 0);                                          // unmask upcalls
            a.lea(rbx, __[bindi]); a.mov(eax, __dword_ptr[rbx + 8]);
            a.lea(rbx, __[send]); a.mov(__dword_ptr[rbx], eax);
            a.mov(edi, 4); a.lea(rsi, __[send]); a.Hypercall(32);                  // send
            a.test(rax, rax); a.jne(fail);
            a.cmp(r13, 2); a.jne(fail);
            a.Print(ok, 7);
            a.Shutdown(0);
            a.Label(ref fail);
            a.Print(bad, 7);
            a.Shutdown(3);

            // #PF handler: frame rcx, r11, err, rip, cs, rflags, rsp, ss
            a.Label(ref pf);
            a.mov(r13, 1);
            a.mov(r14, __qword_ptr[r12 + 16]);
            a.mov(r15, __qword_ptr[rsp + 16]);
            a.pop(rcx); a.pop(r11); a.add(rsp, 8);
            a.add(__qword_ptr[rsp], 3);
            a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);
            // event upcall: clear pending, count, iret
            a.Label(ref ev);
            a.mov(r13, 2);
            a.mov(__byte_ptr[r12], 0);
            a.pop(rcx); a.pop(r11);
            a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);

            a.Label(ref table);
            a.db(14, 0); a.dw(0xe033); a.dd(0); a.dq(0); // address patched below via a second entry trick
            a.Label(ref gsdata); a.dq(0x1122334455667788);
            a.Label(ref mc);
            a.dq(17); a.dq(0); a.dq(0); a.dq(0); a.dq(0); a.dq(0); a.dq(0); a.dq(0);
            a.dq(17); a.dq(0); a.dq(0); a.dq(0); a.dq(0); a.dq(0); a.dq(0); a.dq(0);
            a.Label(ref cb); a.dw(0); a.dw(1); a.dd(0); a.dq(0);
            a.Label(ref evs); a.dw(0x7ff0); a.dw(0x7ff0); a.dd(0);
            a.Label(ref bindi); a.dw(0x7ff0); a.dw(0); a.dd(0); a.dd(0);
            a.Label(ref send); a.dd(0);
            a.dq(0); a.dq(0);
        });
        bool done = h.Run(TimeSpan.FromSeconds(30));
        output.WriteLine(h.Log);
        Assert.True(done, "guest did not shut down");
        Assert.Contains("(d1) all ok", h.Log);
        Assert.Equal(ShutdownReason.Poweroff, h.Domain.ShutdownReason);
    }
}

public sealed class PvGuestUserModeTests(ITestOutputHelper output)
{
    private const ulong VirtBase = 0xffff_ffff_8000_0000;

    /// <summary>
    /// Kernel/user switch: the guest builds a user L4 (a copy of its own), makes the frame read-only with
    /// update_va_mapping, pins it and installs it with NEW_USER_BASEPTR, registers a syscall callback and a kernel
    /// stack, irets to user mode, and issues a syscall there, which must arrive at the syscall callback in kernel mode.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void IretToUserAndSyscallBack(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var ok = a.CreateLabel(); var bad = a.CreateLabel(); var start = a.CreateLabel(); var fail = a.CreateLabel();
            var user = a.CreateLabel(); var sys = a.CreateLabel(); var cb = a.CreateLabel(); var ops = a.CreateLabel();
            var copy = a.CreateLabel();
            a.jmp(start);
            a.Label(ref ok); a.db(System.Text.Encoding.ASCII.GetBytes("user ok\n"));
            a.Label(ref bad); a.db(System.Text.Encoding.ASCII.GetBytes("FAILED!\n"));
            a.Label(ref start);
            a.mov(rbp, rsi);
            // copy the kernel L4 (start_info.pt_base) into frame 1 (VirtBase + 0x1000)
            a.mov(rsi, __qword_ptr[rbp + 88]);
            a.mov(rdi, unchecked((long)(VirtBase + 0x1000)));
            a.mov(ecx, 512);
            a.Label(ref copy);
            a.mov(rax, __qword_ptr[rsi]); a.mov(__qword_ptr[rdi], rax);
            a.add(rsi, 8); a.add(rdi, 8); a.dec(ecx); a.jnz(copy);
            // make it read-only: update_va_mapping(VirtBase+0x1000, 0x1000|P|A, INVLPG)
            a.mov(rdi, unchecked((long)(VirtBase + 0x1000))); a.mov(esi, 0x1021); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); a.jne(fail);
            // mmuext_op: PIN_L4_TABLE(1), NEW_USER_BASEPTR(1)
            a.lea(rdi, __[ops]); a.mov(esi, 2); a.xor(edx, edx); a.mov(r10d, 0x7ff0); a.Hypercall(26);
            a.test(rax, rax); a.jne(fail);
            // syscall callback (flags: mask events), kernel stack
            a.lea(rax, __[sys]); a.lea(rbx, __[cb]); a.mov(__qword_ptr[rbx + 8], rax);
            a.mov(edi, 0); a.lea(rsi, __[cb]); a.Hypercall(30);
            a.test(rax, rax); a.jne(fail);
            a.mov(edi, 0xe02b); a.lea(rsi, __[rsp - 0x800]); a.Hypercall(3);
            // iret to user mode: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss
            a.lea(rbx, __[rsp - 0x1000]);                // user stack
            a.push(0xe02b); a.push(rbx); a.push(0x202); a.push(0xe033);
            a.lea(rax, __[user]); a.push(rax);
            a.push(0); a.push(0); a.push(0); a.push(0);
            a.Hypercall(23);
            a.ud2();

            a.Label(ref user);
            a.mov(r13, 0x55);
            a.syscall();                                  // a user system call, not a hypercall
            a.ud2();

            // syscall callback, in kernel mode: frame rcx, r11, rip, cs, rflags, rsp, ss
            a.Label(ref sys);
            a.cmp(r13, 0x55); a.jne(fail);
            a.mov(rax, __qword_ptr[rsp + 24]);           // saved CS
            a.cmp(rax, 0xe033); a.jne(fail);
            a.Print(ok, 8);
            a.Shutdown(0);
            a.Label(ref fail);
            a.Print(bad, 8);
            a.Shutdown(3);

            a.Label(ref cb); a.dw(2); a.dw(1); a.dd(0); a.dq(0);
            a.Label(ref ops);
            a.dd(3); a.dd(0); a.dq(1); a.dq(0);
            a.dd(15); a.dd(0); a.dq(1); a.dq(0);
        });
        bool done = h.Run(TimeSpan.FromSeconds(30));
        output.WriteLine(h.Log);
        Assert.True(done, "guest did not shut down");
        Assert.Contains("(d1) user ok", h.Log);
        var st = h.Platform.State(0);
        Assert.True(st.KernelMode);
        Assert.Equal(1UL, st.UserL4);
        Assert.True(h.Platform.Mmu.IsPinned(1));
    }
}

public sealed class PvGuestCommandListTests(ITestOutputHelper output)
{
    /// <summary>400 INVLPG_LOCAL ops in one mmuext_op: more commands than one command page holds, run in chunks.</summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void LongCommandListsRunInChunks(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var ok = a.CreateLabel(); var start = a.CreateLabel(); var fill = a.CreateLabel(); var fail = a.CreateLabel();
            a.jmp(start);
            a.Label(ref ok); a.db(System.Text.Encoding.ASCII.GetBytes("chunks ok\n"));
            a.Label(ref start);
            a.mov(rbx, unchecked((long)0xffff_ffff_8000_0000UL)); // padding frames at virt_base: scratch space
            a.mov(rdi, rbx);
            a.mov(ecx, 400);
            a.Label(ref fill);
            a.mov(__qword_ptr[rdi], 7);                 // MMUEXT_INVLPG_LOCAL
            a.mov(__qword_ptr[rdi + 8], rbx);
            a.mov(__qword_ptr[rdi + 16], 0);
            a.add(rdi, 24); a.dec(ecx); a.jnz(fill);
            a.mov(rdi, rbx); a.mov(esi, 400); a.xor(edx, edx); a.mov(r10d, 0x7ff0);
            a.Hypercall(26);
            a.test(rax, rax); a.jne(fail);
            a.Print(ok, 10);
            a.Label(ref fail);
            a.Shutdown(0);
        });
        bool done = h.Run(TimeSpan.FromSeconds(30));
        output.WriteLine(h.Log);
        output.WriteLine($"exits {h.Domain.Vcpus[0].ExitCount}");
        Assert.True(done);
        Assert.Contains("(d1) chunks ok", h.Log);
    }
}

public sealed class PvExitCostTests(ITestOutputHelper output)
{
    /// <summary>Exits per hypercall: a hypercall costs one exit (the syscall doorbell); its return, including queued page-table work, costs none.</summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void OneExitPerHypercall(string accel)
    {
        const int n = 2000;
        using var h = new PvGuestHarness(accel, a =>
        {
            var loop = a.CreateLabel();
            a.mov(r12d, n);
            a.Label(ref loop);
            a.xor(edi, edi);
            a.Hypercall(17);                               // xen_version(0)
            a.dec(r12d);
            a.jnz(loop);
            a.Shutdown(0);
        });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(h.Run(TimeSpan.FromSeconds(60)));
        long exits = h.Domain.Vcpus[0].ExitCount;
        output.WriteLine($"{n} hypercalls: {exits} exits, {sw.Elapsed.TotalMilliseconds * 1000 / n:F1} us per hypercall on emu (incl. boot)");
        Assert.Equal(n, h.Platform.HypercallCounts[17]);
        Assert.InRange(exits, n + 1, n + 10);
    }
}

/// <summary>Port I/O from a PV kernel, answered as Xen answers a domU: the PIT channel 2 counts, 0xcf8 keeps what was written, the rest reads all ones.</summary>
public sealed class PvGuestPortTests(ITestOutputHelper output)
{
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void ThePitChannel2CountsAndOtherPortsReadAsXenAnswersThem(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var fail = a.CreateLabel(); var wait = a.CreateLabel(); var moved = a.CreateLabel();
            // Linux's quick_pit_calibrate opening: gate on, channel 2 mode 0, count 0xffff.
            a.@in(al, 0x61); a.and(al, unchecked((byte)~0x02)); a.or(al, 1); a.@out(0x61, al);
            a.mov(al, 0xb0); a.@out(0x43, al);
            a.mov(al, 0xff); a.@out(0x42, al); a.@out(0x42, al);
            // The MSB must leave 0xff within 2000 LSB/MSB pairs (it does after 256 ticks, 215 µs); all-ones never would.
            a.mov(ecx, 2000);
            a.Label(ref wait);
            a.@in(al, 0x42); a.@in(al, 0x42);
            a.cmp(al, 0xff); a.jne(moved);
            a.dec(ecx); a.jnz(wait);
            a.jmp(fail);
            a.Label(ref moved);
            // 0xcf8 keeps a 4-byte write; 0xcfc (no PCI configuration space for a domU) and 0x40 read all ones.
            a.mov(dx, 0xcf8); a.mov(eax, 0x8000_0000); a.@out(dx, eax);
            a.xor(eax, eax); a.@in(eax, dx); a.cmp(eax, 0x8000_0000); a.jne(fail);
            a.mov(dx, 0xcfc); a.@in(eax, dx); a.cmp(eax, -1); a.jne(fail);
            a.@in(al, 0x40); a.cmp(al, 0xff); a.jne(fail);
            a.Shutdown(0);
            a.FailTail(fail);
        });
        h.RunToPoweroff(output);
        var counters = DomainPerfCounters.Of(h.Domain).ToDictionary(c => c.Name, c => c.Value);
        Assert.InRange(counters["ioport/0x0042"], 4, 4002);
        Assert.Equal(2, counters["ioport/0x0061"]);
        Assert.Equal(2, counters["ioport/0x0cf8"]);
    }
}

/// <summary>
/// Software interrupts from a PV kernel: INT n with a trap-table entry whose DPL allows it, and INT3, reach the handler
/// with the return address past the instruction, as on Xen (there INT n raises #GP through the DPL0 gate, and Xen checks
/// the trap table's DPL). Under PVM INT n at CPL3 raises #UD instead, which must lead to the same place.
/// </summary>
public sealed class PvGuestSoftwareInterruptTests(ITestOutputHelper output)
{
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void IntNAndInt3ReachTheirTrapTableHandlersAndAForbiddenIntNIsAGp(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var table = a.CreateLabel(); var h80 = a.CreateLabel(); var h3 = a.CreateLabel(); var after80 = a.CreateLabel();
            var after3 = a.CreateLabel(); var fail = a.CreateLabel(); var start = a.CreateLabel();
            var int81 = a.CreateLabel(); var hgp = a.CreateLabel();
            a.jmp(start);
            a.Label(ref table);
            a.db(0x80, 3); a.dw(0xe033); a.dd(0); a.dq(0);   // vector 0x80, DPL 3
            a.db(3, 3); a.dw(0xe033); a.dd(0); a.dq(0);      // int3, DPL 3
            a.db(0x81, 0); a.dw(0xe033); a.dd(0); a.dq(0);   // vector 0x81, DPL 0: INT 0x81 from the kernel (ring 1 to Xen) is #GP
            a.db(13, 0); a.dw(0xe033); a.dd(0); a.dq(0);     // #GP
            a.dq(0); a.dq(0);
            a.Label(ref start);
            a.lea(rbx, __[table]);
            a.lea(rax, __[h80]); a.mov(__qword_ptr[rbx + 8], rax);
            a.lea(rax, __[h3]); a.mov(__qword_ptr[rbx + 24], rax);
            a.lea(rax, __[h80]); a.mov(__qword_ptr[rbx + 40], rax);
            a.lea(rax, __[hgp]); a.mov(__qword_ptr[rbx + 56], rax);
            a.mov(rdi, rbx); a.Hypercall(0);
            a.test(rax, rax); a.jne(fail);
            a.xor(r13, r13);
            a.@int(0x80);
            a.Label(ref after80);
            a.cmp(r13, 1); a.jne(fail);
            a.int3();
            a.Label(ref after3);
            a.cmp(r13, 2); a.jne(fail);
            a.Label(ref int81);
            a.@int(0x81);
            a.cmp(r13, 3); a.jne(fail);
            a.Shutdown(0);

            // #GP frame: rcx, r11, error code, rip (the INT itself), ...; step over the 2-byte INT and return.
            a.Label(ref hgp);
            a.cmp(__qword_ptr[rsp + 16], (0x81 << 3) | 2); a.jne(fail);
            a.lea(rax, __[int81]); a.cmp(__qword_ptr[rsp + 24], rax); a.jne(fail);
            a.add(__qword_ptr[rsp + 24], 2);
            a.mov(r13d, 3);
            a.pop(rcx); a.pop(r11); a.add(rsp, 8); a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);

            // Handlers: Xen's kernel-mode frame is rcx, r11, then rip, cs, rflags, rsp, ss; back with HYPERVISOR_iret.
            a.Label(ref h80);
            a.lea(rax, __[after80]); a.cmp(__qword_ptr[rsp + 16], rax); a.jne(fail);
            a.mov(r13d, 1);
            a.pop(rcx); a.pop(r11); a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);
            a.Label(ref h3);
            a.lea(rax, __[after3]); a.cmp(__qword_ptr[rsp + 16], rax); a.jne(fail);
            a.mov(r13d, 2);
            a.pop(rcx); a.pop(r11); a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);

            a.FailTail(fail);
        });
        h.RunToPoweroff(output);
    }
}
