using Iced.Intel;
using XenSharp.Accel;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Emu.Tests;

public sealed class CpuTests
{
    private const ulong K = TestMachine.KernelCode, U = TestMachine.UserCode, D = TestMachine.Data;

    [Fact]
    public void Accelerator_has_no_irqchip()
    {
        using var acc = new EmuAccelerator();
        Assert.Equal("emu", acc.Name);
        using var vm = acc.CreateVirtualMachine();
        Assert.False(vm.TryCreateInterruptController());
        Assert.Throws<NotSupportedException>(() => vm.SetIrqLine(4, true));
    }

    [Fact]
    public void Out_and_in_exit_with_completion()
    {
        using var m = new TestMachine();
        m.Assemble(K, a =>
        {
            a.mov(eax, 0x12345678);
            a.@out(0x80, al);
            a.mov(edx, 0x3f8);
            a.@out(dx, eax);
            a.@in(ax, dx);
            a.mov(rbx, rax);
            a.hlt();
        });
        m.Start(K);
        var e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x80, 1, true, 0x78), e);
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x3f8, 4, true, 0x12345678), e);
        e = m.Run();
        Assert.Equal(ExitReason.Io, e.Reason);
        Assert.False(e.IsWrite);
        Assert.Equal(2, e.Size);
        m.Cpu.CompleteRead(0xbeef);
        e = m.Run();
        Assert.Equal(ExitReason.Halt, e.Reason);
        Assert.Equal(0x1234beefUL, m.Regs.Rbx);
    }

    [Fact]
    public void Rep_ins_and_outs_exit_once_per_element()
    {
        using var m = new TestMachine();
        m.Memory.Write(D, [1, 2, 3]);
        m.Assemble(K, a =>
        {
            a.mov(edx, 0x511);
            a.mov(rsi, D);
            a.mov(ecx, 3);
            a.rep.outsb();
            a.mov(rdi, D + 0x100);
            a.mov(ecx, 2);
            a.rep.insw();
            a.hlt();
        });
        m.Start(K);
        for (int k = 1; k <= 3; k++) Assert.Equal(new VcpuExit(ExitReason.Io, 0x511, 1, true, (ulong)k), m.Run());
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(new VcpuExit(ExitReason.Io, 0x511, 2, false), m.Run());
            m.Cpu.CompleteRead(0xa0a0UL + (ulong)k);
        }
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(0xa0a0U, m.Memory.ReadUInt16(D + 0x100));
        Assert.Equal(0xa0a1U, m.Memory.ReadUInt16(D + 0x102));
        Assert.Equal((D + 3, D + 0x104, 0UL), (m.Regs.Rsi, m.Regs.Rdi, m.Regs.Rcx));
    }

    [Fact]
    public void Hlt_exits_with_rip_after_it()
    {
        using var m = new TestMachine();
        var code = m.Assemble(K, a => { a.nop(); a.hlt(); a.mov(eax, 7); a.hlt(); });
        m.Start(K);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(K + 2, m.Rip);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(7UL, m.Regs.Rax);
    }

    [Fact]
    public void Mmio_read_and_write_complete_exactly_once()
    {
        using var m = new TestMachine();
        const ulong mm = TestMachine.Mmio + 0x100;
        m.Assemble(K, a =>
        {
            a.mov(rsi, mm);
            a.mov(eax, __dword_ptr[rsi]);             // read exit
            a.mov(__dword_ptr[rsi + 8], 0x55aa);       // write exit
            a.add(__qword_ptr[rsi + 16], 3);           // read exit then write exit
            a.mov(rdi, D);
            a.mov(ecx, 2);
            a.rep.movsb();                              // two MMIO byte reads
            a.hlt();
        });
        m.Start(K);
        var e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, mm, 4, false), e);
        m.Cpu.CompleteRead(0xcafebabe);
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, mm + 8, 4, true, 0x55aa), e);
        Assert.Equal(0xcafebabeUL, m.Regs.Rax);
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, mm + 16, 8, false), e);
        m.Cpu.CompleteRead(39);
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, mm + 16, 8, true, 42), e);
        // rep movsb from MMIO: one exit per element.
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, mm, 1, false), e);
        m.Cpu.CompleteRead(0x11);
        e = m.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, mm + 1, 1, false), e);
        m.Cpu.CompleteRead(0x22);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(0x2211, m.Memory.ReadUInt16(D));
    }

    [Fact]
    public void Write_to_read_only_slot_is_mmio()
    {
        using var rom = new GuestMemory(0x1000);
        rom.WriteUInt32(0, 0xdeadbeef);
        // 8 MiB of RAM; 0xe00000 is inside the identity-mapped 16 MiB but above RAM.
        using var m2 = new TestMachine(8 << 20);
        m2.Vm.MapMemory(1, 0xe00000, rom, 0, 0x1000, readOnly: true);
        m2.Assemble(K, a =>
        {
            a.mov(rsi, 0xe00000);
            a.mov(eax, __dword_ptr[rsi]);
            a.mov(__dword_ptr[rsi], ebx);
            a.hlt();
        });
        m2.Start(K);
        m2.Cpu.SetRegisters(m2.Regs with { Rbx = 0x77 });
        var e = m2.Run();
        Assert.Equal(new VcpuExit(ExitReason.Mmio, 0xe00000, 4, true, 0x77), e);
        Assert.Equal(0xdeadbeefUL, m2.Regs.Rax);
        Assert.Equal(ExitReason.Halt, m2.Run().Reason);
        Assert.Equal(0xdeadbeefU, rom.ReadUInt32(0));
    }

    [Fact]
    public void Unmapped_slot_becomes_mmio_for_a_running_vcpu()
    {
        using var extra = new GuestMemory(0x1000);
        extra.WriteUInt32(0, 0x600d);
        using var m = new TestMachine(8 << 20);
        m.Vm.MapMemory(1, 0xe00000, extra, 0, 0x1000);
        m.Assemble(K, a =>
        {
            a.mov(rsi, 0xe00000);
            a.mov(eax, __dword_ptr[rsi]);
            a.@out(0x10, al);
            a.mov(ebx, __dword_ptr[rsi]);
            a.hlt();
        });
        m.Start(K);
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x10, 1, true, 0x0d), m.Run());
        m.Vm.UnmapMemory(1);
        Assert.Equal(new VcpuExit(ExitReason.Mmio, 0xe00000, 4, false), m.Run());
        m.Cpu.CompleteRead(0xbad);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(0xbadUL, m.Regs.Rbx);
    }

    [Fact]
    public void Page_faults_have_error_codes_and_cr2()
    {
        using var m = new TestMachine();
        // Page 0x7f000 supervisor-only, 0x7e000 read-only, 0x7d000 NX.
        const ulong rsvd = X86.PtePresent | X86.PteRw | X86.PteUser;
        m.Memory.WriteUInt64(TestMachine.Pt + 0x7f * 8, 0x7f000 | X86.PtePresent | X86.PteRw);
        m.Memory.WriteUInt64(TestMachine.Pt + 0x7e * 8, 0x7e000 | X86.PtePresent | X86.PteUser);
        m.Memory.WriteUInt64(TestMachine.Pt + 0x7d * 8, 0x7d000 | rsvd | X86.PteNx);
        m.Memory.WriteUInt64(TestMachine.Pt + 0x7c * 8, 0x7c000 | rsvd | (1UL << 51) | X86.PteNx);
        m.Memory.Write(0x7d000, [0xc3]);

        void Case(int cpl, Action<Assembler> code, uint err, ulong cr2)
        {
            m.Assemble(cpl == 0 ? K : U, code);
            m.Start(cpl == 0 ? K : U, cpl);
            m.ExpectVector(14);
            Assert.Equal(err, m.Memory.ReadUInt64(m.Regs.Rsp));
            Assert.Equal(cr2, m.Cpu.GetSpecialRegisters().Cr2);
            Assert.Equal(cpl == 0 ? K : U, m.Memory.ReadUInt64(m.Regs.Rsp + 8)); // faulting RIP
        }

        Case(0, a => { a.mov(rax, __qword_ptr[8]); }, 0, 8);                          // not present, read
        Case(0, a => { a.mov(__qword_ptr[16], rax); }, 2, 16);                         // not present, write
        Case(3, a => { a.mov(rax, __qword_ptr[0x7f010]); }, 5, 0x7f010);              // user reads supervisor page
        Case(3, a => { a.mov(__qword_ptr[0x7e008], rax); }, 7, 0x7e008);              // user writes read-only page
        Case(0, a => { a.mov(__qword_ptr[0x7e008], rax); }, 3, 0x7e008);              // supervisor write with CR0.WP
    }

    [Fact]
    public void Nx_fetch_and_reserved_bits()
    {
        using var m = new TestMachine();
        m.Memory.WriteUInt64(TestMachine.Pt + 0x7d * 8, 0x7d000 | X86.PtePresent | X86.PteRw | X86.PteUser | X86.PteNx);
        m.Assemble(K, a => { a.mov(rax, 0x7d000); a.jmp(rax); });
        m.Start(K);
        m.ExpectVector(14);
        Assert.Equal(0x11UL, m.Memory.ReadUInt64(m.Regs.Rsp));
        Assert.Equal(0x7d000UL, m.Memory.ReadUInt64(m.Regs.Rsp + 8));

        // NX bit with EFER.NXE clear is reserved.
        var s = m.LongModeSregs(0);
        m.Start(K);
        s.Efer &= ~X86.EferNx;
        m.Cpu.SetSpecialRegisters(s);
        m.Assemble(K, a => { a.mov(rax, __qword_ptr[0x7d008]); });
        m.ExpectVector(14);
        Assert.Equal(9UL, m.Memory.ReadUInt64(m.Regs.Rsp));
    }

    [Fact]
    public void Accessed_and_dirty_bits_and_invlpg()
    {
        using var m = new TestMachine();
        ulong pte = TestMachine.Pt + 0x50 * 8;
        m.Assemble(K, a =>
        {
            a.mov(rax, __qword_ptr[0x50000]);
            a.@out(0x10, al);
            a.mov(__qword_ptr[0x50000], rax);
            a.@out(0x11, al);
            // Remap page 0x50000 to frame 0x51000 and flush.
            a.mov(rbx, 0x51000 | 7);
            a.mov(__qword_ptr[pte], rbx);
            a.mov(rcx, __qword_ptr[0x50000]); // stale TLB: still old frame
            a.invlpg(__byte_ptr[0x50000]);
            a.mov(rdx, __qword_ptr[0x50000]); // new frame
            a.hlt();
        });
        m.Memory.WriteUInt64(0x50000, 0xaaaa);
        m.Memory.WriteUInt64(0x51000, 0xbbbb);
        m.Start(K);
        Assert.Equal(ExitReason.Io, m.Run().Reason);
        ulong e = m.Memory.ReadUInt64(pte);
        Assert.NotEqual(0UL, e & X86.PteAccessed);
        Assert.Equal(0UL, e & X86.PteDirty);
        Assert.NotEqual(0UL, m.Memory.ReadUInt64(TestMachine.Pml4) & X86.PteAccessed);
        Assert.Equal(ExitReason.Io, m.Run().Reason);
        Assert.NotEqual(0UL, m.Memory.ReadUInt64(pte) & X86.PteDirty);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(0xaaaaUL, m.Regs.Rcx);
        Assert.Equal(0xbbbbUL, m.Regs.Rdx);
    }

    [Fact]
    public void Int_from_user_switches_to_rsp0_and_iretq_returns()
    {
        using var m = new TestMachine();
        const ulong handler = 0x30000;
        m.SetGate(0x80, handler, dpl: 3);
        m.Assemble(handler, a =>
        {
            a.mov(rbx, __qword_ptr[rsp + 8]);  // CS
            a.mov(r12, __qword_ptr[rsp + 32]); // SS
            a.mov(r13, __qword_ptr[rsp + 24]); // user RSP
            a.mov(r14, rsp);
            a.add(__qword_ptr[rsp + 24], -8);   // change the user's RSP on the way back
            a.iretq();
        });
        m.Assemble(U, a =>
        {
            a.mov(eax, 1);
            a.@int(0x80);
            a.mov(r15, rsp);
            a.@int(0x81); // gate DPL 0: #GP(0x81*8+2)
        });
        m.Start(U, 3);
        m.ExpectVector(13);
        var r = m.Regs;
        Assert.Equal((ulong)TestMachine.UserCs, r.Rbx);
        Assert.Equal((ulong)TestMachine.UserDs, r.R12);
        Assert.Equal(TestMachine.UserStack, r.R13);
        Assert.Equal(TestMachine.KernelStack - 40, r.R14);
        Assert.Equal(TestMachine.UserStack - 8, r.R15);
        Assert.Equal(0x81UL * 8 + 2, m.Memory.ReadUInt64(r.Rsp));
        Assert.Equal(U + 5 + 2 + 3, m.Memory.ReadUInt64(r.Rsp + 8)); // RIP of int 0x81
        Assert.Equal(0, m.Cpu.GetSpecialRegisters().Cs.Dpl);
    }

    [Fact]
    public void Ist_stack_and_trap_gate_keeps_if()
    {
        using var m = new TestMachine();
        m.SetGate(3, TestMachine.HandlerBase + 3 * 16, ist: 1, trap: true, dpl: 3);
        m.Assemble(K, a => { a.sti(); a.int3(); });
        m.Start(K);
        m.ExpectVector(3);
        var r = m.Regs;
        Assert.Equal(TestMachine.IstStack - 40, r.Rsp);
        Assert.NotEqual(0UL, r.Rflags & X86.RflagsIf);
        Assert.Equal(K + 2, m.Memory.ReadUInt64(r.Rsp)); // int3 is a trap: RIP after it
    }

    [Fact]
    public void Syscall_and_sysretq()
    {
        using var m = new TestMachine();
        const ulong entry = 0x31000;
        m.Assemble(entry, a =>
        {
            a.mov(r12, rcx);
            a.mov(r13, r11);
            a.mov(r14, __qword_ptr[0]); // would fault if not CPL0? page 0 not present: skip. Replaced below.
        });
        m.Assemble(entry, a =>
        {
            a.mov(r12, rcx);
            a.mov(r13, r11);
            a.pushfq();
            a.pop(r14);
            a.add(eax, 100);
            a.sysretq();
        });
        m.Assemble(U, a =>
        {
            a.mov(eax, 1);
            a.syscall();
            a.mov(ebx, eax);
            a.hlt(); // #GP at CPL3
        });
        m.Start(U, 3, rflags: 2 | X86.RflagsIf);
        m.Cpu.SetMsr(X86.MsrLstar, entry);
        m.Cpu.SetMsr(X86.MsrSyscallMask, X86.RflagsIf);
        m.ExpectVector(13);
        var r = m.Regs;
        Assert.Equal(U + 5 + 2, r.R12);
        Assert.NotEqual(0UL, r.R13 & X86.RflagsIf);
        Assert.Equal(0UL, r.R14 & X86.RflagsIf);
        Assert.Equal(101UL, r.Rbx);
        Assert.Equal((ulong)TestMachine.UserCs, m.Memory.ReadUInt64(r.Rsp + 16));
    }

    [Fact]
    public void Privileged_instructions_fault_at_cpl3()
    {
        using var m = new TestMachine();
        Action<Assembler>[] cases =
        [
            a => a.cli(), a => a.hlt(), a => a.mov(rax, cr3), a => a.wrmsr(), a => a.rdmsr(), a => a.invlpg(__byte_ptr[rax]),
            a => a.swapgs(), a => a.@out(0x80, al), a => a.lgdt(__[rax]), a => a.wbinvd(),
        ];
        foreach (var c in cases)
        {
            m.Assemble(U, c);
            m.Start(U, 3);
            m.ExpectVector(13);
            Assert.Equal(0UL, m.Memory.ReadUInt64(m.Regs.Rsp));
        }
        // With IOPL 3, OUT at CPL3 is an exit.
        m.Assemble(U, a => a.@out(0x80, al));
        m.Start(U, 3, rflags: 2 | X86.RflagsIopl);
        Assert.Equal(ExitReason.Io, m.Run().Reason);
    }

    [Fact]
    public void The_tss_io_bitmap_opens_single_ports_to_cpl3()
    {
        using var m = new TestMachine();
        // I/O bitmap at TSS offset 0x68 covering ports 0..0x8f: only 0x80 open (a 2-byte access there spans 0x81, shut);
        // the limit ends with the terminator byte, so ports past the bitmap are shut as well.
        m.Memory.WriteUInt16(TestMachine.Tss + 0x66, 0x68);
        var bitmap = Enumerable.Repeat((byte)0xff, 0x13).ToArray();
        bitmap[0x10] = 0xfe;
        m.Memory.Write(TestMachine.Tss + 0x68, bitmap);
        foreach (var (code, open) in new (Action<Assembler>, bool)[]
        {
            (a => a.@out(0x80, al), true),
            (a => a.@in(al, 0x80), true),
            (a => a.@out(0x81, al), false),
            (a => a.@out(0x80, ax), false),
            (a => { a.mov(edx, 0x3f8); a.@out(dx, al); }, false), // beyond the bitmap
            (a => { a.mov(edx, 0x80); a.mov(ecx, 1); a.rep.outsb(); }, true),
        })
        {
            m.Assemble(U, code);
            m.Start(U, 3);
            var s = m.Cpu.GetSpecialRegisters();
            s.Tr.Limit = 0x68 + 0x12;
            m.Cpu.SetSpecialRegisters(s);
            if (open) Assert.Equal(ExitReason.Io, m.Run().Reason);
            else m.ExpectVector(13);
        }
    }

    [Fact]
    public void Unknown_msr_faults_and_known_msrs_work()
    {
        using var m = new TestMachine();
        m.Assemble(K, a =>
        {
            a.mov(ecx, X86.MsrKernelGsBase);
            a.mov(eax, 0x1000);
            a.mov(edx, 0);
            a.wrmsr();
            a.swapgs();
            a.mov(rbx, __qword_ptr.gs[0x10]); // reads 0x1010
            a.mov(ecx, X86.MsrGsBase);
            a.rdmsr();
            a.mov(rsi, rax);
            a.rdtsc();
            a.mov(r8d, eax);
            a.rdtsc();
            a.mov(ecx, 0x12345);
            a.rdmsr();
        });
        m.Memory.WriteUInt64(0x1010, 0x5151);
        m.Start(K);
        m.ExpectVector(13);
        var r = m.Regs;
        Assert.Equal(0x5151UL, r.Rbx);
        Assert.Equal(0x1000UL, r.Rsi);
    }

    [Fact]
    public void Ud2_and_unimplemented_instruction_raise_ud_and_are_recorded()
    {
        using var m = new TestMachine();
        m.Assemble(K, a => a.ud2());
        m.Start(K);
        m.ExpectVector(6);
        Assert.Empty(m.Cpu.UnimplementedMnemonics);
        m.Assemble(K, a => a.haddps(xmm0, xmm1)); // SSE3: not implemented
        m.Start(K);
        m.ExpectVector(6);
        Assert.Equal([Mnemonic.Haddps], m.Cpu.UnimplementedMnemonics);
    }

    [Fact]
    public void Triple_fault_is_shutdown()
    {
        using var m = new TestMachine();
        m.Assemble(K, a => a.ud2());
        m.Start(K);
        var s = m.Cpu.GetSpecialRegisters();
        s.Idt.Limit = 0;
        m.Cpu.SetSpecialRegisters(s);
        Assert.Equal(ExitReason.Shutdown, m.Run().Reason);
        Assert.Equal(ExitReason.Shutdown, m.Run().Reason);
    }

    [Fact]
    public void Double_fault_from_page_fault_on_missing_handler()
    {
        using var m = new TestMachine();
        m.SetGate(14, 0, present: false); // #PF gate not present -> #NP during #PF -> #DF
        m.Assemble(K, a => a.mov(rax, __qword_ptr[8]));
        m.Start(K);
        m.ExpectVector(8);
        Assert.Equal(0UL, m.Memory.ReadUInt64(m.Regs.Rsp));
    }

    [Fact]
    public void Divide_error()
    {
        using var m = new TestMachine();
        m.Assemble(K, a => { a.xor(ecx, ecx); a.div(rcx); });
        m.Start(K);
        m.ExpectVector(0);
        m.Assemble(K, a => { a.mov(edx, 1); a.mov(eax, 0); a.mov(ecx, 1); a.div(ecx); });
        m.Start(K);
        m.ExpectVector(0);
    }

    [Fact]
    public void Injected_interrupt_waits_for_if_and_sti_shadow()
    {
        using var m = new TestMachine();
        m.Assemble(K, a =>
        {
            a.mov(eax, 1);
            a.@out(0x10, al); // VMM injects here, IF=0
            a.mov(ebx, 2);
            a.sti();
            a.mov(ecx, 3);    // shadow: runs before the interrupt
            a.mov(edx, 4);
            a.hlt();
        });
        m.Start(K);
        Assert.Equal(ExitReason.Io, m.Run().Reason);
        m.Cpu.InjectInterrupt(0x40);
        m.ExpectVector(0x40);
        var r = m.Regs;
        Assert.Equal(2UL, r.Rbx);
        Assert.Equal(3UL, r.Rcx);
        Assert.Equal(0UL, r.Rdx);
        Assert.Equal(0UL, r.Rflags & X86.RflagsIf); // interrupt gate clears IF
    }

    [Fact]
    public void Hlt_with_pending_interrupt_delivers_it()
    {
        using var m = new TestMachine();
        m.Assemble(K, a => { a.sti(); a.nop(); a.hlt(); a.hlt(); });
        m.Start(K);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        m.Cpu.InjectInterrupt(0x30);
        m.ExpectVector(0x30);
        Assert.Equal(K + 3, m.Memory.ReadUInt64(m.Regs.Rsp)); // return after the first HLT
    }

    [Fact]
    public void Kick_interrupts_an_infinite_loop()
    {
        using var m = new TestMachine();
        m.Assemble(K, a => { var l = a.CreateLabel(); a.Label(ref l); a.inc(rax); a.jmp(l); });
        m.Start(K);
        var t = new Thread(() => { Thread.Sleep(100); m.Cpu.Kick(); });
        t.Start();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(ExitReason.Interrupted, m.Run().Reason);
        t.Join();
        Assert.True(sw.ElapsedMilliseconds < 5000);
        Assert.True(m.Regs.Rax > 1000);
        m.Cpu.Kick();
        Assert.Equal(ExitReason.Interrupted, m.Run().Reason); // a kick before Run
    }

    [Fact]
    public void Lock_cmpxchg_and_xadd_from_two_vcpus_count_exactly()
    {
        using var m = new TestMachine();
        const int n = 200_000;
        const ulong counter = D, counter2 = D + 64;
        m.Assemble(K, a =>
        {
            var loop = a.CreateLabel();
            var retry = a.CreateLabel();
            a.mov(ecx, n);
            a.Label(ref loop);
            a.mov(rax, __qword_ptr[counter]);
            a.Label(ref retry);
            a.lea(rdx, __[rax + 1]);
            a.@lock.cmpxchg(__qword_ptr[counter], rdx);
            a.jne(retry);
            a.mov(ebx, 1);
            a.@lock.xadd(__dword_ptr[counter2], ebx);
            a.@lock.inc(__dword_ptr[counter2 + 8]);
            a.dec(ecx);
            a.jnz(loop);
            a.hlt();
        });
        var cpu2 = (EmuVcpu)m.Vm.CreateVcpu(1);
        m.Start(K);
        cpu2.SetSpecialRegisters(m.LongModeSregs(0));
        cpu2.SetRegisters(new VcpuRegisters { Rip = K, Rsp = TestMachine.KernelStack - 0x1000, Rflags = 2 });
        VcpuExit e1 = default, e2 = default;
        var t1 = new Thread(() => { do e1 = m.Cpu.Run(); while (e1.Reason == ExitReason.Interrupted); });
        var t2 = new Thread(() => { do e2 = cpu2.Run(); while (e2.Reason == ExitReason.Interrupted); });
        t1.Start(); t2.Start(); t1.Join(); t2.Join();
        Assert.Equal(ExitReason.Halt, e1.Reason);
        Assert.Equal(ExitReason.Halt, e2.Reason);
        Assert.Equal(2UL * n, m.Memory.ReadUInt64(counter));
        Assert.Equal(2U * n, m.Memory.ReadUInt32(counter2));
        Assert.Equal(2U * n, m.Memory.ReadUInt32(counter2 + 8));
        cpu2.Dispose();
    }

    [Fact]
    public void Self_modifying_code_and_host_writes_are_seen()
    {
        using var m = new TestMachine();
        const ulong f = 0x32000;
        m.Assemble(f, a => { a.mov(eax, 1); a.ret(); });
        m.Assemble(K, a =>
        {
            a.mov(rbx, f);
            a.call(rbx);
            a.mov(r8, rax);
            a.mov(__byte_ptr[f + 1], 2); // patch the immediate
            a.call(rbx);
            a.mov(r9, rax);
            a.hlt();
            a.call(rbx);
            a.mov(r10, rax);
            a.hlt();
        });
        m.Start(K);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(1UL, m.Regs.R8);
        Assert.Equal(2UL, m.Regs.R9);
        m.Memory.WriteByte(f + 1, 3); // host write between runs
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal(3UL, m.Regs.R10);
    }

    [Fact]
    public void Segment_loads_check_descriptors()
    {
        using var m = new TestMachine();
        m.Assemble(K, a =>
        {
            a.mov(eax, 0x18 | 3);
            a.mov(ds, eax);        // DPL3 data at CPL0: fine
            a.mov(eax, 0x10);
            a.mov(ss, eax);
            a.mov(eax, 0x08);
            a.mov(es, eax);        // execute-only? our code segment is readable: allowed
            a.mov(eax, 0x100);
            a.mov(fs, eax);        // beyond GDT limit: #GP(0x100)
        });
        m.Start(K);
        m.ExpectVector(13);
        Assert.Equal(0x100UL, m.Memory.ReadUInt64(m.Regs.Rsp));
        m.Assemble(U, a => { a.mov(eax, 0x10); a.mov(ds, eax); }); // DPL0 data from CPL3
        m.Start(U, 3);
        m.ExpectVector(13);
        Assert.Equal(0x10UL, m.Memory.ReadUInt64(m.Regs.Rsp));
    }

    [Fact]
    public void Lgdt_ltr_and_far_return()
    {
        using var m = new TestMachine();
        m.Memory.WriteUInt16(D, 0x37);
        m.Memory.WriteUInt64(D + 2, TestMachine.Gdt);
        m.Assemble(K, a =>
        {
            var after = a.CreateLabel();
            a.lgdt(__[D]);
            a.mov(eax, TestMachine.TssSel);
            a.ltr(ax);
            a.push(TestMachine.KernelCs);
            a.lea(rax, __[after]);
            a.push(rax);
            a.AddInstruction(Instruction.Create(Code.Retfq));
            a.Label(ref after);
            a.str(ebx);
            a.hlt();
        });
        m.Start(K);
        var s = m.Cpu.GetSpecialRegisters();
        s.Tr = default;
        m.Cpu.SetSpecialRegisters(s);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        Assert.Equal((ulong)TestMachine.TssSel, m.Regs.Rbx);
        Assert.Equal(TestMachine.Tss, m.Cpu.GetSpecialRegisters().Tr.Base);
        Assert.Equal(0xbUL, (m.Memory.ReadUInt64(TestMachine.Gdt + 0x28) >> 40) & 0xf); // busy
    }

    [Fact]
    public void String_ops_and_cpuid()
    {
        using var m = new TestMachine();
        for (int i = 0; i < 10000; i++) m.Memory.WriteByte(D + (ulong)i, (byte)i);
        m.Assemble(K, a =>
        {
            a.mov(rsi, D);
            a.mov(rdi, D + 0x10000);
            a.mov(ecx, 10000);
            a.rep.movsb();
            a.mov(rdi, D + 0x20000);
            a.mov(eax, 0x41424344);
            a.mov(ecx, 3);
            a.rep.stosd();
            a.mov(rsi, D);
            a.mov(rdi, D + 0x10000);
            a.mov(ecx, 10000);
            a.repe.cmpsb();
            a.mov(r8, rcx);
            a.mov(rdi, D + 0x20000);
            a.mov(al, 0x43);
            a.mov(ecx, 100);
            a.repne.scasb();
            a.mov(r9, rdi);
            a.std();
            a.mov(rsi, D + 3);
            a.lodsb();
            a.cld();
            a.mov(r10, rsi);
            a.mov(eax, 7);
            a.xor(ecx, ecx);
            a.cpuid();
            a.hlt();
        });
        m.Cpu.SetCpuid([new CpuidEntry(7, 0, 1, 2, 3, 4, true)]);
        m.Start(K);
        Assert.Equal(ExitReason.Halt, m.Run().Reason);
        var r = m.Regs;
        Assert.Equal(0UL, r.R8);
        Assert.Equal(D + 0x20000 + 2, r.R9);
        Assert.Equal(D + 2, r.R10);
        Assert.Equal((1UL, 2UL, 3UL, 4UL), (r.Rax, r.Rbx, r.Rcx, r.Rdx));
        for (int i = 0; i < 10000; i++) Assert.Equal((byte)i, m.Memory.ReadByte(D + 0x10000 + (ulong)i));
        Assert.Equal(0x41424344U, m.Memory.ReadUInt32(D + 0x20008));
    }

    [Fact]
    public void Pushf_popf_respect_iopl_and_if_at_cpl3()
    {
        using var m = new TestMachine();
        m.Assemble(U, a =>
        {
            a.pushfq();
            a.pop(rax);
            a.mov(rbx, rax);
            a.or(rax, (int)(X86.RflagsIopl | X86.RflagsIf | X86.RflagsCf));
            a.push(rax);
            a.popfq();
            a.pushfq();
            a.pop(rcx);
            a.@int(3);
        });
        m.SetGate(3, TestMachine.HandlerBase + 3 * 16, dpl: 3);
        m.Start(U, 3);
        m.ExpectVector(3);
        var r = m.Regs;
        Assert.Equal(0UL, r.Rcx & (X86.RflagsIopl | X86.RflagsIf));
        Assert.Equal(1UL, r.Rcx & 1);
    }
}
