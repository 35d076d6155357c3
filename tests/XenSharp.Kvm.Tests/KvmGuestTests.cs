using System.Diagnostics;
using XenSharp.Accel;
using XenSharp.Kvm;
using Xunit.Abstractions;

namespace XenSharp.Kvm.Tests;

/// <summary>Real guests under KVM. Each test skips, naming the reason, where KVM cannot be used.</summary>
public sealed class KvmGuestTests(ITestOutputHelper output)
{
    private static VcpuExit Out(ushort port, ulong data, int size = 1) => new(ExitReason.Io, port, size, true, data);

    [SkippableFact]
    public void Real_mode_out_loop_is_seen_as_io_exits_with_the_data()
    {
        Kvm.Require();
        // mov dx,0x3f8; mov al,'A'; mov cx,5; L: out dx,al; inc al; loop L; hlt
        using var g = TestGuest.RealMode([0xba, 0xf8, 0x03, 0xb0, 0x41, 0xb9, 0x05, 0x00, 0xee, 0xfe, 0xc0, 0xe2, 0xfb, 0xf4]);
        foreach (char c in "ABCDE")
            Assert.Equal(Out(0x3f8, c), g.RunToExit());
        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
    }

    [SkippableFact]
    public void Io_in_is_answered_with_CompleteRead()
    {
        Kvm.Require();
        // in al,0x71; out 0x72,al; in ax,0x73; out 0x74,ax; hlt
        using var g = TestGuest.RealMode([0xe4, 0x71, 0xe6, 0x72, 0xe5, 0x73, 0xe7, 0x74, 0xf4]);
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x71, 1, false), g.RunToExit());
        g.Vcpu.CompleteRead(0x5a);
        Assert.Equal(Out(0x72, 0x5a), g.RunToExit());
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x73, 2, false), g.RunToExit());
        g.Vcpu.CompleteRead(0xbeef);
        Assert.Equal(Out(0x74, 0xbeef, 2), g.RunToExit());
        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
    }

    [SkippableFact]
    public void String_io_is_handed_out_one_element_per_exit()
    {
        Kvm.Require();
        // mov dx,0x3f8; mov si,0x2000; mov cx,3; cld; rep outsb;
        // mov dx,0x60; mov di,0x3000; mov cx,3; rep insb; hlt
        using var g = TestGuest.RealMode([
            0xba, 0xf8, 0x03, 0xbe, 0x00, 0x20, 0xb9, 0x03, 0x00, 0xfc, 0xf3, 0x6e,
            0xba, 0x60, 0x00, 0xbf, 0x00, 0x30, 0xb9, 0x03, 0x00, 0xf3, 0x6c, 0xf4]);
        g.Memory.Write(0x2000, "xyz"u8);
        foreach (char c in "xyz")
            Assert.Equal(Out(0x3f8, c), g.RunToExit());
        for (int i = 1; i <= 3; i++)
        {
            Assert.Equal(new VcpuExit(ExitReason.Io, 0x60, 1, false), g.RunToExit());
            g.Vcpu.CompleteRead((ulong)(0x10 * i));
        }
        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
        Assert.Equal(new byte[] { 0x10, 0x20, 0x30 }, g.Memory.Span(0x3000, 3).ToArray());
    }

    [SkippableFact]
    public void Port_io_exit_round_trip_cost()
    {
        Kvm.Require();
        // As kvmloop.c mode 1: mov ecx,N; L: out 0x80,al; dec ecx; jnz L; hlt  (C measured ~7.5 us per exit on PVM)
        const int n = 20000;
        using var g = TestGuest.RealMode([0x66, 0xb9, .. BitConverter.GetBytes(n), 0xe6, 0x80, 0x66, 0x49, 0x75, 0xfa, 0xf4]);
        var sw = Stopwatch.StartNew();
        int exits = 0;
        VcpuExit e;
        while ((e = g.Vcpu.Run()).Reason == ExitReason.Io)
        {
            Assert.Equal(0x80UL, e.Address);
            exits++;
        }
        sw.Stop();
        Assert.Equal(ExitReason.Halt, e.Reason);
        Assert.Equal(n, exits);
        output.WriteLine($"{exits} port-I/O exits in {sw.Elapsed.TotalMilliseconds:F1} ms: {sw.Elapsed.TotalMicroseconds / exits:F2} us each (sync regs: {g.Vcpu.UsesSyncRegisters})");
    }

    [SkippableFact]
    public void Hlt_exits_as_Halt()
    {
        Kvm.Require();
        using var g = TestGuest.RealMode([0xf4]);
        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
        Assert.Equal(0x1001UL, g.Vcpu.GetRegisters().Rip);
    }

    [SkippableFact]
    public void Long_mode_guest_mmio_write_read_and_narrow_write()
    {
        Kvm.Require();
        byte[] code =
        [
            0x48, 0xa3, .. BitConverter.GetBytes(TestGuest.MmioVirtual),        // mov [0x200000], rax
            0x48, 0xa1, .. BitConverter.GetBytes(TestGuest.MmioVirtual + 8),    // mov rax, [0x200008]
            0x48, 0xa3, .. BitConverter.GetBytes(TestGuest.MmioVirtual + 16),   // mov [0x200010], rax
            0x89, 0x04, 0x25, .. BitConverter.GetBytes((uint)TestGuest.MmioVirtual + 24), // mov [0x200018], eax
            0xeb, 0xfe,                                                         // jmp $
        ];
        using var g = TestGuest.LongMode(code);
        var r = g.Vcpu.GetRegisters();
        r.Rax = 0x1122334455667788;
        g.Vcpu.SetRegisters(r);

        Assert.Equal(new VcpuExit(ExitReason.Mmio, TestGuest.MmioPhysical, 8, true, 0x1122334455667788), g.RunToExit());
        Assert.Equal(new VcpuExit(ExitReason.Mmio, TestGuest.MmioPhysical + 8, 8, false), g.RunToExit());
        g.Vcpu.CompleteRead(0xcafef00ddeadbeef);
        Assert.Equal(new VcpuExit(ExitReason.Mmio, TestGuest.MmioPhysical + 16, 8, true, 0xcafef00ddeadbeef), g.RunToExit());
        Assert.Equal(new VcpuExit(ExitReason.Mmio, TestGuest.MmioPhysical + 24, 4, true, 0xdeadbeef), g.RunToExit());
        Assert.Equal(3, g.Vcpu.GetSpecialRegisters().Cs.Selector & 3);
    }

    [SkippableFact]
    public void A_write_to_a_read_only_slot_exits_as_mmio_and_reads_see_the_memory()
    {
        Kvm.Require();
        using var g = TestGuest.LongMode(
        [
            0x48, 0xa1, .. BitConverter.GetBytes(0x201000UL),  // mov rax, [0x201000]  (read-only slot: plain read)
            0x48, 0xa3, .. BitConverter.GetBytes(0x201000UL),  // mov [0x201000], rax  (read-only slot: MMIO exit)
            0xeb, 0xfe,
        ]);
        Skip.If(g.Accelerator.System.CheckExtension(KvmCap.READONLY_MEM) <= 0, "KVM lacks KVM_CAP_READONLY_MEM");
        using var rom = new GuestMemory(0x1000);
        rom.WriteUInt64(0, 0x0123456789abcdef);
        g.Vm.MapMemory(1, 0x800000, rom, 0, 0x1000, readOnly: true);
        g.Memory.WriteUInt64(TestGuest.Pt + 8, 0x800000 | X86.PtePresent | X86.PteRw | X86.PteUser); // VA 0x201000 -> GPA 0x800000
        Assert.Equal(new VcpuExit(ExitReason.Mmio, 0x800000, 8, true, 0x0123456789abcdef), g.RunToExit());
        Assert.Equal(0x0123456789abcdefUL, rom.ReadUInt64(0));
        g.Vm.UnmapMemory(1);
    }

    [SkippableFact]
    public void Kick_from_another_thread_interrupts_a_guest_in_an_infinite_loop()
    {
        Kvm.Require();
        using var g = TestGuest.LongMode([0xeb, 0xfe]); // jmp $ at CPL3: runs natively until kicked
        VcpuExit? exit = null;
        Exception? error = null;
        var runner = new Thread(() =>
        {
            try { exit = g.Vcpu.Run(); }
            catch (Exception e) { error = e; }
        }) { IsBackground = true };
        runner.Start();
        Thread.Sleep(300);
        Assert.True(runner.IsAlive, $"the guest left its loop by itself: {exit}");
        g.Vcpu.Kick();
        Assert.True(runner.Join(TimeSpan.FromSeconds(10)), "Kick did not interrupt KVM_RUN");
        Assert.Null(error);
        Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
        Assert.Equal(TestGuest.CodeAddress, g.Vcpu.GetRegisters().Rip);

        // The kick was consumed: the guest runs again (and a second kick stops it again).
        var again = new Thread(() => exit = g.Vcpu.Run()) { IsBackground = true };
        exit = null;
        again.Start();
        Thread.Sleep(200);
        Assert.True(again.IsAlive, $"Run returned at once after a consumed kick: {exit}");
        g.Vcpu.Kick();
        Assert.True(again.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
    }

    [SkippableFact]
    public void Kick_before_Run_makes_the_next_Run_return_Interrupted_and_only_that_one()
    {
        Kvm.Require();
        using var g = TestGuest.RealMode([0xf4]);
        g.Vcpu.Kick();
        Assert.Equal(ExitReason.Interrupted, g.Vcpu.Run().Reason);
        Assert.Equal(0x1000UL, g.Vcpu.GetRegisters().Rip);
        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Registers_round_trip_through_sync_regs_or_ioctls(bool sync)
    {
        Kvm.Require();
        // inc ax; hlt
        using var g = TestGuest.RealMode([0x40, 0xf4], syncRegisters: sync);
        if (sync)
            Skip.If(g.Accelerator.System.CheckExtension(KvmCap.SYNC_REGS) == 0, "KVM lacks KVM_CAP_SYNC_REGS");
        Assert.Equal(sync, g.Vcpu.UsesSyncRegisters);

        var set = new VcpuRegisters
        {
            Rax = 0x1234, Rbx = 2, Rcx = 3, Rdx = 4, Rsi = 5, Rdi = 6, Rsp = 0x8000, Rbp = 8,
            R8 = 9, R9 = 10, R10 = 11, R11 = 12, R12 = 13, R13 = 14, R14 = 15, R15 = 16, Rip = 0x1000, Rflags = 2,
        };
        g.Vcpu.SetRegisters(set);
        Assert.Equal(set, g.Vcpu.GetRegisters()); // a pending write reads back before the run

        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
        var after = g.Vcpu.GetRegisters();
        Assert.Equal(set with { Rax = 0x1235, Rip = 0x1002 }, after with { Rflags = 2 });
        Assert.Equal(g.Vcpu.GetRegistersByIoctl(), after);

        var sregs = g.Vcpu.GetSpecialRegisters();
        var byIoctl = g.Vcpu.GetSpecialRegistersByIoctl();
        Assert.Equal(byIoctl.Cr0, sregs.Cr0);
        Assert.Equal(byIoctl.Cs.Selector, sregs.Cs.Selector);
        Assert.Equal(byIoctl.Cs.Base, sregs.Cs.Base);
        Assert.Equal(byIoctl.Efer, sregs.Efer);

        // And again, from the exit: write, run, read.
        g.Vcpu.SetRegisters(after with { Rip = 0x1000, Rax = 7 });
        Assert.Equal(ExitReason.Halt, g.RunToExit().Reason);
        Assert.Equal(8UL, g.Vcpu.GetRegisters().Rax);
        Assert.Equal(8UL, g.Vcpu.GetRegistersByIoctl().Rax);
    }

    [SkippableFact]
    public void Injected_interrupt_reaches_the_idt_handler_at_cpl0()
    {
        Kvm.Require();
        // As kvmpv.c: CPL3 loop "inc rbx; jmp", interrupted from outside, then KVM_INTERRUPT 32 -> IDT gate -> CPL0
        // stub "mov al,0x42; out 0x99,al; iretq" with the frame on the TSS's RSP0 stack.
        using var g = TestGuest.LongMode([0x48, 0xff, 0xc3, 0xeb, 0xfb]);
        const ulong handler = TestGuest.SupervisorPage + 0x20000;
        g.Memory.Write(handler, [0xb0, 0x42, 0xe6, 0x99, 0x48, 0xcf]);
        g.SetInterruptGate(32, handler);

        VcpuExit? exit = null;
        var runner = new Thread(() => exit = g.Vcpu.Run()) { IsBackground = true };
        runner.Start();
        Thread.Sleep(200);
        g.Vcpu.Kick();
        Assert.True(runner.Join(TimeSpan.FromSeconds(10)), "Kick did not interrupt KVM_RUN");
        Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
        Assert.True(g.Vcpu.GetRegisters().Rbx > 0, "the loop did not run");
        if (!g.Vcpu.ReadyForInterruptInjection)
        {
            // As kvmpv.c does: ask KVM to come back as soon as the guest can take an interrupt.
            g.Vcpu.RequestInterruptWindow = true;
            VcpuExit window;
            using (new Timer(_ => g.Vcpu.Kick(), null, 20_000, Timeout.Infinite)) // a watchdog, not a hang
                window = g.Vcpu.Run();
            Assert.Equal(new VcpuExit(ExitReason.Interrupted, Detail: "KVM_EXIT_IRQ_WINDOW_OPEN"), window);
            g.Vcpu.RequestInterruptWindow = false;
        }
        Assert.True(g.Vcpu.ReadyForInterruptInjection);

        g.Vcpu.InjectInterrupt(32);
        Assert.Equal(Out(0x99, 0x42), g.RunToExit());
        Assert.Equal(0x08, g.Vcpu.GetSpecialRegisters().Cs.Selector);
        // The frame: RIP, CS, RFLAGS, RSP, SS of the interrupted CPL3 loop.
        ulong rsp = g.Vcpu.GetRegisters().Rsp;
        Assert.InRange(rsp, TestGuest.InterruptStackTop - 64, TestGuest.InterruptStackTop - 40);
        Assert.InRange(g.Memory.ReadUInt64(rsp), TestGuest.CodeAddress, TestGuest.CodeAddress + 5);
        Assert.Equal(0x23UL, g.Memory.ReadUInt64(rsp + 8));
    }

    [SkippableFact]
    public void In_kernel_irqchip_and_pit()
    {
        Kvm.Require();
        using var acc = new KvmAccelerator();
        using var vm = acc.CreateKvmVm();
        Skip.If(acc.System.CheckExtension(KvmCap.IRQCHIP) == 0, "KVM lacks KVM_CAP_IRQCHIP");
        Assert.True(vm.TryCreateInterruptController());
        Assert.True(vm.HasIrqchip);
        Assert.True(vm.TryCreateInterruptController()); // idempotent
        vm.SetIrqLine(4, true);
        vm.SetIrqLine(4, false);
        using var vcpu = vm.CreateVcpu(0);
        Assert.Throws<InvalidOperationException>(() => vcpu.InjectInterrupt(0x20));

        using var vm2 = acc.CreateKvmVm();
        using var v2 = vm2.CreateVcpu(0);
        Assert.Throws<InvalidOperationException>(() => vm2.TryCreateInterruptController());
        Assert.Throws<InvalidOperationException>(() => vm2.SetIrqLine(4, true));
    }

    [SkippableFact]
    public void Msrs_and_cpuid()
    {
        Kvm.Require();
        using var g = TestGuest.RealMode([0xf4]);
        var cpuid = g.Accelerator.System.GetSupportedCpuid();
        Assert.Contains(cpuid, e => e.Function == 0);
        Assert.Contains(cpuid, e => e.Function == 0x80000001);
        g.Vcpu.SetCpuid(cpuid);
        g.Vcpu.SetMsr(X86.MsrLstar, 0xffff808000013000);
        Assert.Equal(0xffff808000013000UL, g.Vcpu.GetMsr(X86.MsrLstar));
        g.Vcpu.SetMsr(X86.MsrSyscallMask, 0x200);
        Assert.Equal(0x200UL, g.Vcpu.GetMsr(X86.MsrSyscallMask));
    }

    [SkippableFact]
    public void Ioctl_errors_name_the_ioctl_and_errno()
    {
        Kvm.Require();
        using var acc = new KvmAccelerator();
        using var vm = acc.CreateKvmVm();
        using var mem = new GuestMemory(0x10000);
        var e = Assert.Throws<KvmException>(() => vm.MapMemory(40000, 0, mem, 0, 0x10000));
        Assert.Equal("KVM_SET_USER_MEMORY_REGION slot 40000 failed: EINVAL (Invalid argument)", e.Message);
        Assert.Throws<ArgumentException>(() => vm.UnmapMemory(3));
        vm.MapMemory(0, 0, mem, 0, 0x10000);
        var overlap = Assert.Throws<KvmException>(() => vm.MapMemory(1, 0x8000, mem, 0, 0x1000));
        Assert.StartsWith("KVM_SET_USER_MEMORY_REGION slot 1 failed: EEXIST", overlap.Message);
        vm.UnmapMemory(0);
        vm.MapMemory(1, 0x8000, mem, 0, 0x1000); // the range is free again
        using var v = vm.CreateVcpu(0);
        var dup = Assert.Throws<KvmException>(() => vm.CreateVcpu(0));
        Assert.StartsWith("KVM_CREATE_VCPU id 0 failed: EEXIST", dup.Message);
    }

    [SkippableFact]
    public void Disposing_the_vm_disposes_its_vcpus()
    {
        Kvm.Require();
        var g = TestGuest.RealMode([0xf4]);
        var vcpu = g.Vcpu;
        Assert.Single(g.Vm.Vcpus);
        g.Dispose();
        Assert.Throws<ObjectDisposedException>(() => vcpu.Run());
        Assert.Throws<ObjectDisposedException>(() => vcpu.GetRegisters());
        vcpu.Kick(); // harmless after dispose
    }
}

/// <summary>Counts this process's fds: it must run with no other test opening or closing any at the same time.</summary>
[CollectionDefinition(nameof(FdCountingTests), DisableParallelization = true)]
public sealed class FdCountingCollection;

[Collection(nameof(FdCountingTests))]
public sealed class FdCountingTests
{
    [SkippableFact]
    public void No_fd_or_mapping_leaks_over_100_create_run_dispose_cycles()
    {
        Kvm.Require();
        using var acc = new KvmAccelerator();
        void Cycle()
        {
            using var mem = new GuestMemory(0x10000);
            using var vm = acc.CreateKvmVm();
            vm.MapMemory(0, 0, mem, 0, 0x10000);
            var vcpu = vm.CreateVcpu(0);
            mem.Write(0x1000, [0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xf4]); // mov dx,0x3f8; mov al,'A'; out dx,al; hlt
            var s = vcpu.GetSpecialRegisters();
            s.Cs.Base = 0;
            s.Cs.Selector = 0;
            vcpu.SetSpecialRegisters(s);
            vcpu.SetRegisters(new VcpuRegisters { Rip = 0x1000, Rflags = 2 });
            Assert.Equal(ExitReason.Io, vcpu.Run().Reason);
        }
        Cycle(); // warm up: libraries, the kick signal, lazy runtime fds
        int before = Directory.GetFileSystemEntries("/proc/self/fd").Length;
        for (int i = 0; i < 100; i++) Cycle();
        int after = Directory.GetFileSystemEntries("/proc/self/fd").Length;
        Assert.Equal(before, after);
        Assert.DoesNotContain(File.ReadLines("/proc/self/maps"), l => l.Contains("kvm-vcpu"));
    }
}
