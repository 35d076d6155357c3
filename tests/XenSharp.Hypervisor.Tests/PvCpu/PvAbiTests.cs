using Iced.Intel;
using Xunit;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>
/// The parts of Xen's PV ABI that need segment and page-table state: the failsafe callback, writable page-table
/// emulation (ptwr) and a guest LDT. Each guest powers off (reason 0) only if every check holds; a failed check
/// reboots (reason 1) with the check's number in the log.
/// </summary>
public sealed class PvAbiTests(ITestOutputHelper output)
{
    private const ulong VirtBase = 0xffff_ffff_8000_0000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Fails with check number <paramref name="n"/> unless the flags say "equal".</summary>
    private static void Check(Assembler a, Label fail, int n)
    {
        var ok = a.CreateLabel();
        a.je(ok);
        a.mov(r15d, n);
        a.jmp(fail);
        a.Label(ref ok);
    }

    /// <summary>The common tail: power off; the fail path prints "FAIL n" (n in r15, one digit pair) and reboots.</summary>
    private static void Tail(Assembler a, Label fail)
    {
        var msg = a.CreateLabel();
        a.Shutdown(0);
        a.Label(ref fail);
        a.lea(rbx, __[msg]);
        a.mov(eax, r15d); a.mov(ecx, 10); a.xor(edx, edx); a.div(ecx);
        a.add(al, (byte)'0'); a.add(dl, (byte)'0');
        a.mov(__byte_ptr[rbx + 5], al); a.mov(__byte_ptr[rbx + 6], dl);
        a.Print(msg, 8);
        a.Shutdown(1);
        a.Label(ref msg);
        a.db(System.Text.Encoding.ASCII.GetBytes("FAIL xx\n"));
    }

    /// <summary>
    /// Whether the guest reads back the data selectors it (or its context) loaded. Under PVM the guest runs on the host's
    /// GDT: it reads the host's user selectors (0x2b/0x33) and a load of ours leaves a null ES/DS, so the checks that
    /// read selectors are kept to hardware virtualization and the software CPU; the rest of each test runs everywhere.
    /// </summary>
    private static bool SelectorsReadBack(string accel) => accel == "emu" || !PvAccelerators.IsPvm;

    private void AssertPoweroff(PvGuestHarness h, bool done)
    {
        output.WriteLine(h.Log);
        Assert.True(done, "guest did not shut down");
        Assert.DoesNotContain("FAIL", h.Log);
        Assert.Equal(ShutdownReason.Poweroff, h.Domain.ShutdownReason);
    }

    /// <summary>Pushes an iret_context (rax, r11, rcx, flags, rip, cs, rflags, rsp, ss upward) and calls HYPERVISOR_iret.</summary>
    private static void IretTo(Assembler a, Label rip, int cs, AssemblerRegister64 rsp, int rcx, int r11, int rax)
    {
        a.push(0xe02b);                 // ss
        a.push(rsp);                    // rsp
        a.push(0x246);                  // rflags (IF: events unmasked in the frame)
        a.push(cs);
        a.lea(rbx, __[rip]); a.push(rbx);
        a.push(0);                      // flags: not in a syscall, so rcx/r11 come from the frame
        a.mov(rbx, rcx); a.push(rbx);
        a.mov(rbx, r11); a.push(rbx);
        a.mov(rbx, rax); a.push(rbx);
        a.Hypercall(23);
    }

    /// <summary>
    /// HYPERVISOR_iret to a frame whose CS the CPU would refuse (a selector beyond the guest's empty GDT) lands in the
    /// failsafe callback registered with callback_op, with Xen's frame: rcx, r11, ds, es, fs, gs (the selectors loaded
    /// now), then the frame that could not be entered (rip, cs with RPL cleared in kernel mode, rflags, rsp, ss), and
    /// rax restored from the iret context.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void IretWithBadCsLandsInTheFailsafeCallback(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var start = a.CreateLabel(); var fail = a.CreateLabel(); var fs = a.CreateLabel(); var never = a.CreateLabel(); var cb = a.CreateLabel();
            a.jmp(start);
            a.Label(ref cb); a.dw(1); a.dw(0); a.dd(0); a.dq(0);      // callback_register: failsafe, no flags, address patched
            a.Label(ref start);
            a.mov(ax, 0xe02b); a.mov(ds, ax);
            a.lea(rax, __[fs]); a.lea(rbx, __[cb]); a.mov(__qword_ptr[rbx + 8], rax);
            a.xor(edi, edi); a.lea(rsi, __[cb]); a.Hypercall(30);
            a.test(rax, rax); Check(a, fail, 1);
            a.mov(r12, rsp);
            a.and(r12, -16);
            IretTo(a, never, 0x1230, r12, 0x1111, 0x2222, 0x3333);
            a.Label(ref never);
            a.mov(r15d, 2);
            a.jmp(fail);

            a.Label(ref fs);
            a.cmp(rax, 0x3333); Check(a, fail, 3);
            a.cmp(__qword_ptr[rsp], 0x1111); Check(a, fail, 4);
            a.cmp(__qword_ptr[rsp + 8], 0x2222); Check(a, fail, 5);
            a.cmp(__qword_ptr[rsp + 0x10], 0xe02b); Check(a, fail, 6);   // ds
            a.cmp(__qword_ptr[rsp + 0x18], 0); Check(a, fail, 7);        // es
            a.cmp(__qword_ptr[rsp + 0x20], 0); Check(a, fail, 8);        // fs
            a.cmp(__qword_ptr[rsp + 0x28], 0); Check(a, fail, 9);        // gs
            a.lea(rbx, __[never]); a.cmp(__qword_ptr[rsp + 0x30], rbx); Check(a, fail, 10);
            a.cmp(__qword_ptr[rsp + 0x38], 0x1230); Check(a, fail, 11);  // cs, saved upcall mask 0
            a.mov(rbx, __qword_ptr[rsp + 0x40]); a.and(ebx, 0x200); a.cmp(ebx, 0x200); Check(a, fail, 12); // IF = !mask
            a.cmp(__qword_ptr[rsp + 0x48], r12); Check(a, fail, 13);
            a.cmp(__qword_ptr[rsp + 0x50], 0xe02b); Check(a, fail, 14);
            a.lea(rbx, __[rsp + 0x58]); a.cmp(rbx, r12); Check(a, fail, 15); // frame right below the target rsp
            Tail(a, fail);
        });
        AssertPoweroff(h, h.Run(Timeout));
        Assert.Equal(1, h.Platform.State(0).FailsafeCount);
    }

    /// <summary>The same iret with no failsafe callback registered: the domain is crashed, with the reason.</summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void IretWithBadSsAndNoFailsafeCrashesTheDomain(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var target = a.CreateLabel();
            a.mov(r12, rsp);
            a.and(r12, -16);
            a.push(0x1000);                 // ss: null-ish guest selector beyond the (empty) guest GDT
            a.push(r12);
            a.push(0x246);
            a.push(0xe030);
            a.lea(rbx, __[target]); a.push(rbx);
            a.push(0); a.push(0); a.push(0); a.push(0);
            a.Hypercall(23);
            a.Label(ref target);
            a.Shutdown(0);
        });
        bool done = h.Run(Timeout);
        output.WriteLine(h.Log);
        Assert.True(done);
        Assert.Equal(ShutdownReason.Crash, h.Domain.ShutdownReason);
        Assert.Contains("no failsafe callback", h.Domain.CrashDetail);
        Assert.Contains("SS 0x1003", h.Domain.CrashDetail);
    }

    /// <summary>
    /// Context restore: vCPU 1 brought up by VCPUOP_initialise with a DS selector that does not load (beyond the
    /// empty guest GDT) and a good ES starts in its failsafe callback: the frame holds the context's rcx, r11, the
    /// selector values it asked for (ds 0x1233, es 0xe02b, fs, gs 0), then its rip/cs/rflags/rsp/ss; DS is loaded
    /// null and ES as asked.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void InitialiseWithABadSelectorStartsInTheFailsafeCallback(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var start = a.CreateLabel(); var fail = a.CreateLabel(); var fs = a.CreateLabel(); var entry = a.CreateLabel(); var park = a.CreateLabel();
            const long Ctx = unchecked((long)VirtBase + 0x110_0000), Stack = unchecked((long)VirtBase + 0x118_0000);
            const int U = 520;                                               // user_regs
            a.jmp(start);
            a.Label(ref start);
            a.mov(rbx, Ctx);
            a.mov(rax, __qword_ptr[rsi + 88]); a.mov(rcx, unchecked((long)VirtBase)); a.sub(rax, rcx);
            a.mov(__qword_ptr[rbx + 4984 + 3 * 8], rax);                      // ctrlreg[3]: the running L4
            a.mov(__qword_ptr[rbx + 512], 4);                                 // flags: VGCF_in_kernel
            a.lea(rax, __[entry]); a.mov(__qword_ptr[rbx + U + 128], rax);   // rip
            a.mov(__qword_ptr[rbx + U + 136], 0xe033);
            a.mov(__qword_ptr[rbx + U + 144], 0x202);
            a.mov(rax, Stack); a.mov(__qword_ptr[rbx + U + 152], rax); a.mov(__qword_ptr[rbx + 4976], rax); // rsp, kernel_sp
            a.mov(__qword_ptr[rbx + U + 160], 0xe02b); a.mov(__qword_ptr[rbx + 4968], 0xe02b);
            a.mov(__qword_ptr[rbx + U + 88], 0x1111); a.mov(__qword_ptr[rbx + U + 48], 0x2222); // rcx, r11
            a.mov(__qword_ptr[rbx + U + 176], 0x1233);                       // ds: does not load
            a.mov(__qword_ptr[rbx + U + 168], 0xe02b);                       // es: loads
            a.lea(rax, __[fs]); a.mov(__qword_ptr[rbx + 5120], rax);         // failsafe_callback_eip
            a.xor(edi, edi); a.mov(esi, 1); a.mov(rdx, rbx); a.Hypercall(24); // VCPUOP_initialise(1, ctx)
            a.test(rax, rax); Check(a, fail, 1);
            a.mov(edi, 1); a.mov(esi, 1); a.xor(edx, edx); a.Hypercall(24); // VCPUOP_up(1)
            a.test(rax, rax); Check(a, fail, 2);
            a.nop();
            a.Label(ref park);
            a.mov(edi, 1); a.Hypercall(29);                                   // SCHEDOP_block
            a.jmp(park);

            a.Label(ref entry);
            a.mov(r15d, 3);
            a.jmp(fail);

            a.Label(ref fs);                                                 // vCPU 1
            a.mov(rbx, Stack);
            a.cmp(__qword_ptr[rsp], 0x1111); Check(a, fail, 4);
            a.cmp(__qword_ptr[rsp + 8], 0x2222); Check(a, fail, 5);
            a.cmp(__qword_ptr[rsp + 0x10], 0x1233); Check(a, fail, 6);
            a.cmp(__qword_ptr[rsp + 0x18], 0xe02b); Check(a, fail, 7);
            a.cmp(__qword_ptr[rsp + 0x20], 0); Check(a, fail, 8);
            a.cmp(__qword_ptr[rsp + 0x28], 0); Check(a, fail, 9);
            a.lea(rax, __[entry]); a.cmp(__qword_ptr[rsp + 0x30], rax); Check(a, fail, 10);
            a.mov(rax, 0x1_0000_e030); a.cmp(__qword_ptr[rsp + 0x38], rax); Check(a, fail, 11); // cs, RPL cleared; events were masked
            a.cmp(__qword_ptr[rsp + 0x48], rbx); Check(a, fail, 12);
            a.cmp(__qword_ptr[rsp + 0x50], 0xe02b); Check(a, fail, 13);
            if (SelectorsReadBack(accel))
            {
                a.mov(eax, ds); a.cmp(eax, 0); Check(a, fail, 14);
                a.mov(eax, es); a.cmp(eax, 0xe02b); Check(a, fail, 15);
            }
            Tail(a, fail);
        }, vcpus: 2);
        AssertPoweroff(h, h.Run(Timeout));
        Assert.Equal(1, h.Platform.State(1).FailsafeCount);
    }

    /// <summary>
    /// Walks the guest's own tables to the L1 that maps VirtBase: rbx = its VA (page tables are mapped read-only in
    /// the bootstrap mapping at VirtBase + pfn*4096), rbp = start_info.
    /// </summary>
    private static void FindL1(Assembler a)
    {
        a.mov(rbp, rsi);
        a.mov(rbx, __qword_ptr[rbp + 88]);                  // pt_base: VA of the L4
        a.mov(rcx, 0x000f_ffff_ffff_f000);
        a.mov(rdx, unchecked((long)VirtBase));
        a.mov(rax, __qword_ptr[rbx + 511 * 8]); a.and(rax, rcx); a.lea(rbx, __[rax + rdx]);
        a.mov(rax, __qword_ptr[rbx + 510 * 8]); a.and(rax, rcx); a.lea(rbx, __[rax + rdx]);
        a.mov(rax, __qword_ptr[rbx]); a.and(rax, rcx); a.mov(r8, rax); a.lea(rbx, __[rax + rdx]); // r8 = L1 frame address
    }

    /// <summary>
    /// Writable page tables: without VMASST_TYPE_writable_pagetables a store into the guest's (read-only mapped,
    /// pinned) L1 is a #PF for the guest; once enabled, a legal PTE — mov, then
    /// lock cmpxchg, then xchg — is applied with Xen's adjustment (USER added) and the new mapping is seen at once; a PTE naming
    /// a frame the domain does not own, and one mapping a page-table frame writable, are refused with the #PF passed
    /// to the guest (cr2 = the PTE's address, error code present|write) and the entry left as it was.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void WritesToAPinnedL1AreEmulatedOrBounced(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var start = a.CreateLabel(); var fail = a.CreateLabel(); var table = a.CreateLabel(); var pf = a.CreateLabel();
            var r1 = a.CreateLabel(); var r2 = a.CreateLabel();
            a.jmp(start);
            a.Label(ref table); a.db(14, 0); a.dw(0xe033); a.dd(0); a.dq(0); a.dq(0); a.dq(0);
            a.Label(ref start);
            FindL1(a);
            // shared_info at VirtBase (padding frame 0), for vcpu_info.arch.cr2
            a.mov(rdi, unchecked((long)VirtBase)); a.mov(rsi, __qword_ptr[rbp + 40]); a.or(rsi, 0x23); a.mov(edx, 2);
            a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 1);
            a.mov(r12, unchecked((long)VirtBase));
            a.lea(rax, __[pf]); a.lea(rdi, __[table]); a.mov(__qword_ptr[rdi + 8], rax); a.Hypercall(0);
            a.test(rax, rax); Check(a, fail, 2);

            // 0. without VMASST_TYPE_writable_pagetables the store is not emulated: the guest gets the #PF.
            var after0 = a.CreateLabel();
            a.xor(r13, r13); a.lea(r14, __[after0]);
            a.mov(rdi, __qword_ptr[rbx + 5 * 8]);
            a.mov(rax, 0x6023); a.mov(__qword_ptr[rbx + 5 * 8], rax);
            a.Label(ref after0);
            a.cmp(r13, 1); Check(a, fail, 16);
            a.cmp(__qword_ptr[rbx + 5 * 8], rdi); Check(a, fail, 17);
            a.xor(edi, edi); a.mov(esi, 2); a.Hypercall(21);                 // vm_assist(enable, writable_pagetables)
            a.test(rax, rax); Check(a, fail, 18);

            // 1. legal: VirtBase+0x5000 (frame 5) remapped to frame 6 by a plain store into the L1.
            a.mov(rsi, unchecked((long)VirtBase + 0x6000));
            a.mov(rax, 0x5a5a_1234_5678_9abc); a.mov(__qword_ptr[rsi], rax);   // through frame 6's own mapping
            a.mov(rax, 0x6023); a.mov(__qword_ptr[rbx + 5 * 8], rax);
            a.cmp(__qword_ptr[rbx + 5 * 8], 0x6027); Check(a, fail, 3);       // USER added, as Xen's adjust_guest_l1e
            a.mov(rsi, unchecked((long)VirtBase + 0x5000));
            a.mov(rax, 0x5a5a_1234_5678_9abc); a.cmp(__qword_ptr[rsi], rax); Check(a, fail, 4);
            // 2. legal by lock cmpxchg: back to frame 5, and a failing compare leaves it and loads rax
            a.mov(rax, 0x6027); a.mov(rcx, 0x5023);
            a.@lock.cmpxchg(__qword_ptr[rbx + 5 * 8], rcx); Check(a, fail, 5);
            a.cmp(__qword_ptr[rbx + 5 * 8], 0x5027); Check(a, fail, 6);
            a.mov(rax, 0x6027); a.mov(rcx, 0x7023);
            a.@lock.cmpxchg(__qword_ptr[rbx + 5 * 8], rcx);
            a.jne(r1); a.mov(r15d, 7); a.jmp(fail); a.Label(ref r1);
            a.cmp(rax, 0x5027); Check(a, fail, 8);
            // xchg (Linux's ptep_get_and_clear): the old entry comes back in the register
            a.mov(rcx, 0x6023);
            a.xchg(__qword_ptr[rbx + 5 * 8], rcx);
            a.cmp(rcx, 0x5027); Check(a, fail, 19);
            a.cmp(__qword_ptr[rbx + 5 * 8], 0x6027); Check(a, fail, 20);

            // 3. illegal: a frame beyond the domain's RAM
            var after3 = a.CreateLabel();
            a.xor(r13, r13); a.lea(r14, __[after3]);
            a.mov(rdi, __qword_ptr[rbx + 6 * 8]);
            a.mov(rax, 0x7f_ffff_f023);
            a.mov(__qword_ptr[rbx + 6 * 8], rax);
            a.Label(ref after3);
            a.cmp(r13, 1); Check(a, fail, 9);
            a.lea(rax, __[rbx + 6 * 8]); a.cmp(r9, rax); Check(a, fail, 10);  // cr2
            a.mov(rax, r10); a.and(eax, 3); a.cmp(eax, 3); Check(a, fail, 11); // present | write
            a.cmp(__qword_ptr[rbx + 6 * 8], rdi); Check(a, fail, 12);         // unchanged
            // 4. illegal: this L1's own frame, writable
            var after4 = a.CreateLabel();
            a.xor(r13, r13); a.lea(r14, __[after4]);
            a.mov(rdi, __qword_ptr[rbx + 7 * 8]);
            a.mov(rax, r8); a.or(rax, 0x23);
            a.mov(__qword_ptr[rbx + 7 * 8], rax);
            a.Label(ref after4);
            a.cmp(r13, 1); Check(a, fail, 13);
            a.cmp(__qword_ptr[rbx + 7 * 8], rdi); Check(a, fail, 14);
            a.jmp(r2);

            // #PF handler: r13 = 1, r9 = cr2, r10 = error code; resume at r14.
            a.Label(ref pf);
            a.mov(r13d, 1);
            a.mov(r9, __qword_ptr[r12 + 16]);
            a.mov(r10, __qword_ptr[rsp + 16]);
            a.mov(__qword_ptr[rsp + 24], r14);
            a.pop(rcx); a.pop(r11); a.add(rsp, 8);
            a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);

            a.Label(ref r2);
            Tail(a, fail);
        });
        AssertPoweroff(h, h.Run(Timeout));
        // Seven writes into the L1 faulted (one before vm_assist, mov, two cmpxchg, xchg, two refused); three reached the guest.
        Assert.Equal(7, h.Platform.ExceptionCounts[14]);
        Assert.Equal(3, h.Platform.State(0).ExceptionCount);
    }

    /// <summary>
    /// A guest LDT: descriptors written into a page, the page made read-only, MMUEXT_SET_LDT; a data selector through
    /// it loads (the shadow page is mapped on first use), a DPL0 data descriptor has been raised to DPL3 by
    /// validation, a selector beyond the LDT's entries gives #GP(selector); when the guest remaps the LDT's linear page
    /// the shadow follows (Xen's invalidate_shadow_ldt) and the old frame is released; the page cannot be made
    /// writable while it is the LDT, and can once the LDT is cleared.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void GuestLdtLoadsValidatedSelectors(string accel)
    {
        using var h = new PvGuestHarness(accel, a =>
        {
            var start = a.CreateLabel(); var fail = a.CreateLabel(); var table = a.CreateLabel(); var gp = a.CreateLabel(); var op = a.CreateLabel();
            var done = a.CreateLabel();
            const long Ldt = unchecked((long)VirtBase + 0x8000);
            a.jmp(start);
            a.Label(ref table); a.db(13, 0); a.dw(0xe033); a.dd(0); a.dq(0); a.dq(0); a.dq(0);
            a.Label(ref op); a.dd(13); a.dd(0); a.dq(Ldt); a.dq(4);          // mmuext_op: SET_LDT, linear, 4 entries
            a.Label(ref start);
            a.lea(rax, __[gp]); a.lea(rdi, __[table]); a.mov(__qword_ptr[rdi + 8], rax); a.Hypercall(0);
            a.test(rax, rax); Check(a, fail, 1);
            a.mov(rsi, Ldt);
            a.mov(rax, 0x00cf_f300_0000_ffff); a.mov(__qword_ptr[rsi + 8], rax);   // 1: flat data, DPL3
            a.mov(rax, 0x00cf_9300_0000_ffff); a.mov(__qword_ptr[rsi + 24], rax);  // 3: flat data, DPL0
            // read-only, then the LDT
            a.mov(rdi, Ldt); a.mov(esi, 0x8021); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 2);
            a.lea(rdi, __[op]); a.mov(esi, 1); a.xor(edx, edx); a.mov(r10d, 0x7ff0); a.Hypercall(26);
            a.test(rax, rax); Check(a, fail, 3);
            a.mov(ax, 0x0f); a.mov(es, ax);
            if (SelectorsReadBack(accel)) { a.mov(ax, es); a.cmp(ax, 0x0f); Check(a, fail, 4); }
            a.mov(ax, 0x1f); a.mov(fs, ax);                                     // fixed to DPL3 by validation
            a.mov(rsi, Ldt); a.mov(rax, __qword_ptr[rsi + 24]); a.mov(rcx, 0x00cf_f300_0000_ffff); a.cmp(rax, rcx); Check(a, fail, 5);
            var after = a.CreateLabel();
            a.xor(r13, r13); a.lea(r14, __[after]);
            a.mov(ax, 0x27); a.mov(ds, ax);                                     // index 4: beyond 4 entries
            a.Label(ref after);
            a.cmp(r13, 1); Check(a, fail, 6);
            a.cmp(r10, 0x24); Check(a, fail, 7);                                // #GP(selector with TI)
            // the guest remaps its LDT's linear page to (zeroed, read-only) frame 9: the shadow is dropped, the next
            // load reads frame 9 (#GP on its empty entry), and frame 8 may be mapped writable again
            a.mov(rdi, unchecked((long)VirtBase + 0x9000)); a.mov(esi, 0x9021); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 11);
            a.mov(rdi, Ldt); a.mov(esi, 0x9021); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 12);
            var after2 = a.CreateLabel();
            a.xor(r13, r13); a.lea(r14, __[after2]);
            a.mov(ax, 0x0f); a.mov(es, ax);
            a.Label(ref after2);
            a.cmp(r13, 1); Check(a, fail, 13);
            a.cmp(r10, 0x0c); Check(a, fail, 14);
            a.mov(rdi, unchecked((long)VirtBase + 0xa000)); a.mov(esi, 0x8023); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 15);                             // frame 8 writable elsewhere: allowed now
            a.mov(rdi, unchecked((long)VirtBase + 0xa000)); a.mov(esi, 0xa023); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 16);
            a.mov(rdi, Ldt); a.mov(esi, 0x8021); a.mov(edx, 2); a.Hypercall(14); // back to frame 8
            a.test(rax, rax); Check(a, fail, 17);
            a.mov(ax, 0x0f); a.mov(es, ax);                                     // shadow of frame 8 again
            // writable while it is the LDT: refused
            a.mov(rdi, Ldt); a.mov(esi, 0x8023); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); a.jne(done); a.mov(r15d, 8); a.jmp(fail);
            a.Label(ref done);
            // clear the LDT (es/fs keep their loaded descriptors), then it may become writable
            a.lea(rbx, __[op]); a.mov(__qword_ptr[rbx + 16], 0);
            a.lea(rdi, __[op]); a.mov(esi, 1); a.xor(edx, edx); a.mov(r10d, 0x7ff0); a.Hypercall(26);
            a.test(rax, rax); Check(a, fail, 9);
            a.mov(rdi, Ldt); a.mov(esi, 0x8023); a.mov(edx, 2); a.Hypercall(14);
            a.test(rax, rax); Check(a, fail, 10);
            var tail = a.CreateLabel();
            a.jmp(tail);

            // #GP handler: r13 = 1, r10 = error code; resume at r14.
            a.Label(ref gp);
            a.mov(r13d, 1);
            a.mov(r10, __qword_ptr[rsp + 16]);
            a.mov(__qword_ptr[rsp + 24], r14);
            a.pop(rcx); a.pop(r11); a.add(rsp, 8);
            a.push(0); a.push(rcx); a.push(r11); a.push(rax); a.Hypercall(23);

            a.Label(ref tail);
            Tail(a, fail);
        });
        AssertPoweroff(h, h.Run(Timeout));
        Assert.Equal(3, h.Platform.ExceptionCounts[14]);   // the shadow LDT page, mapped on first use and after each remap
        Assert.Equal(2, h.Platform.ExceptionCounts[13]);
    }
}
