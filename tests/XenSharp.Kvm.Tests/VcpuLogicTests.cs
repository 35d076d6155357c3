using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Kvm;

namespace XenSharp.Kvm.Tests;

/// <summary>
/// The vCPU logic above the ioctls, on machines with or without KVM: a fake kvm_run page and a stand-in for
/// KVM_RUN that behaves as the kernel does (immediate_exit, kvm_dirty_regs, store of kvm_valid_regs, EINTR on a
/// signal). The kick tests send the real signal to a thread blocked in a real read(2), so the sigaction setup
/// (handler, no SA_RESTART, unblocked mask, tid bookkeeping) is exercised for real.
/// </summary>
public sealed unsafe partial class VcpuLogicTests : IDisposable
{
    private const int PageSize = 4096, Pages = 3;
    private readonly KvmRun* _page = (KvmRun*)NativeMemory.AlignedAlloc(PageSize * Pages, PageSize);

    public VcpuLogicTests() => NativeMemory.Clear(_page, PageSize * Pages);

    public void Dispose() => NativeMemory.AlignedFree(_page);

    private KvmVcpu Vcpu(Func<int> run, ulong sync = KvmLayout.SYNC_X86_REGS | KvmLayout.SYNC_X86_SREGS) =>
        new(_page, PageSize * Pages, sync, run);

    /// <summary>A KVM_RUN that exits with whatever <paramref name="exit"/> writes into kvm_run.</summary>
    private Func<int> Exits(params Action<IntPtr>[] exits)
    {
        int i = 0;
        return () =>
        {
            if (_page->ImmediateExit != 0) return Fail(Posix.EINTR);
            exits[i++]((IntPtr)_page);
            return 0;
        };
    }

    private static int Fail(int errno)
    {
        Marshal.SetLastPInvokeError(errno);
        return -1;
    }

    private static void Io(IntPtr p, byte dir, ushort port, byte size, uint count, params byte[] data)
    {
        var run = (KvmRun*)p;
        run->ExitReason = KvmExit.IO;
        run->Io = new KvmRunIo { Direction = dir, Port = port, Size = size, Count = count, DataOffset = PageSize };
        data.CopyTo(new Span<byte>((byte*)p + PageSize, data.Length));
    }

    [Fact]
    public void String_out_with_count_3_becomes_three_exits_and_one_KVM_RUN()
    {
        int runs = 0;
        var exits = Exits(p => Io(p, KvmExit.IO_OUT, 0x3f8, 2, 3, 0x41, 0x00, 0x42, 0x00, 0x43, 0x44), p => ((KvmRun*)p)->ExitReason = KvmExit.HLT);
        using var v = Vcpu(() => { runs++; return exits(); });
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x3f8, 2, true, 0x41), v.Run());
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x3f8, 2, true, 0x42), v.Run());
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x3f8, 2, true, 0x4443), v.Run());
        Assert.Equal(1, runs);
        Assert.Throws<InvalidOperationException>(() => v.CompleteRead(1));
        Assert.Equal(ExitReason.Halt, v.Run().Reason);
        Assert.Equal(2, runs);
    }

    [Fact]
    public void String_in_elements_are_completed_in_place_before_KVM_RUN_resumes()
    {
        byte[]? seenByKernel = null;
        var exits = Exits(p => Io(p, KvmExit.IO_IN, 0x60, 4, 2), p =>
        {
            seenByKernel = new Span<byte>((byte*)p + PageSize, 8).ToArray();
            ((KvmRun*)p)->ExitReason = KvmExit.HLT;
        });
        using var v = Vcpu(exits);
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x60, 4, false), v.Run());
        v.CompleteRead(0x11223344);
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x60, 4, false), v.Run());
        v.CompleteRead(0xffffffff_55667788); // only Size bytes are written
        Assert.Equal(ExitReason.Halt, v.Run().Reason);
        Assert.Equal(new byte[] { 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55 }, seenByKernel);
    }

    [Fact]
    public void Mmio_read_and_write_are_decoded_and_completed_in_kvm_run()
    {
        var exits = Exits(
            p => { var r = (KvmRun*)p; r->ExitReason = KvmExit.MMIO; r->Mmio.PhysAddr = 0xfee00030; r->Mmio.Len = 4; r->Mmio.IsWrite = 0; },
            p =>
            {
                var r = (KvmRun*)p;
                Assert.Equal(0xcafef00dUL, *(ulong*)r->Mmio.Data); // the completed read, as KVM will copy it
                r->ExitReason = KvmExit.MMIO; r->Mmio.PhysAddr = 0x10000000; r->Mmio.Len = 2; r->Mmio.IsWrite = 1;
                *(ulong*)r->Mmio.Data = 0x1111_2222_3333_abcd;
            });
        using var v = Vcpu(exits);
        Assert.Equal(new VcpuExit(ExitReason.Mmio, 0xfee00030, 4, false), v.Run());
        v.CompleteRead(0xcafef00d);
        Assert.Equal(new VcpuExit(ExitReason.Mmio, 0x10000000, 2, true, 0xabcd), v.Run());
    }

    [Fact]
    public void Other_exits_carry_their_detail()
    {
        var exits = Exits(
            p => ((KvmRun*)p)->ExitReason = KvmExit.SHUTDOWN,
            p => { var r = (KvmRun*)p; r->ExitReason = KvmExit.FAIL_ENTRY; r->FailEntry.HardwareEntryFailureReason = 0x80000021; r->FailEntry.Cpu = 1; },
            p => { var r = (KvmRun*)p; r->ExitReason = KvmExit.INTERNAL_ERROR; r->Internal.Suberror = 1; r->Internal.Ndata = 2; r->Internal.Data[0] = 0xa; r->Internal.Data[1] = 0xb; },
            p => { var r = (KvmRun*)p; r->ExitReason = KvmExit.SYSTEM_EVENT; r->SystemEvent.Type = KvmExit.SYSTEM_EVENT_RESET; },
            p => ((KvmRun*)p)->ExitReason = KvmExit.X86_RDMSR,
            p => Io(p, KvmExit.IO_OUT, 0x80, 3, 1));
        using var v = Vcpu(exits);
        Assert.Equal(ExitReason.Shutdown, v.Run().Reason);
        Assert.Equal("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x80000021 on host cpu 1", v.Run().Detail);
        var internalError = v.Run();
        Assert.Equal(ExitReason.InternalError, internalError.Reason);
        Assert.Equal(1UL, internalError.Data);
        Assert.Equal("KVM_EXIT_INTERNAL_ERROR suberror 1 (instruction emulation failed), data 0xa 0xb", internalError.Detail);
        Assert.Equal(new VcpuExit(ExitReason.SystemEvent, Data: 2, Detail: "reset"), v.Run());
        Assert.Equal("unhandled KVM_EXIT_X86_RDMSR (29)", v.Run().Detail);
        Assert.StartsWith("KVM_EXIT_IO with unusable geometry", v.Run().Detail);
    }

    [Fact]
    public void KVM_RUN_errors_other_than_EINTR_name_the_ioctl()
    {
        using var v = Vcpu(() => Fail(Posix.EAGAIN));
        var e = Assert.Throws<KvmException>(() => v.Run());
        Assert.Equal("KVM_RUN vcpu 0 failed: EAGAIN (Resource temporarily unavailable)", e.Message);
    }

    [Fact]
    public void Kick_before_Run_is_seen_through_immediate_exit_and_consumed()
    {
        using var v = Vcpu(Exits(p => ((KvmRun*)p)->ExitReason = KvmExit.HLT));
        v.Kick();
        Assert.Equal(1, _page->ImmediateExit);
        Assert.Equal(ExitReason.Interrupted, v.Run().Reason);
        Assert.Equal(0, _page->ImmediateExit);
        Assert.Equal(ExitReason.Halt, v.Run().Reason);
    }

    [Fact]
    public void A_kick_during_string_io_lands_after_the_last_element()
    {
        using var v = Vcpu(Exits(p => Io(p, KvmExit.IO_OUT, 0x80, 1, 2, 1, 2)));
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x80, 1, true, 1), v.Run());
        v.Kick();
        Assert.Equal(new VcpuExit(ExitReason.Io, 0x80, 1, true, 2), v.Run()); // still owed to the guest
        Assert.Equal(ExitReason.Interrupted, v.Run().Reason);            // KVM completes the I/O, then sees immediate_exit
    }

    [Fact]
    public void Interrupt_window_fields_and_exit()
    {
        using var v = Vcpu(Exits(p => { var r = (KvmRun*)p; r->ExitReason = KvmExit.IRQ_WINDOW_OPEN; r->ReadyForInterruptInjection = 1; }));
        Assert.False(v.ReadyForInterruptInjection);
        v.RequestInterruptWindow = true;
        Assert.Equal(1, _page->RequestInterruptWindow);
        Assert.Equal(new VcpuExit(ExitReason.Interrupted, Detail: "KVM_EXIT_IRQ_WINDOW_OPEN"), v.Run());
        Assert.True(v.ReadyForInterruptInjection);
        v.RequestInterruptWindow = false;
        Assert.Equal(0, _page->RequestInterruptWindow);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pipe(int* fds);

    /// <summary>A KVM_RUN that blocks in read(2) on a pipe nobody writes: only a signal (without SA_RESTART) gets it out.</summary>
    private static (Func<int> Run, Action Close) BlockingRun()
    {
        int* fds = stackalloc int[2];
        Assert.Equal(0, pipe(fds));
        int r = fds[0], w = fds[1];
        return (() =>
        {
            byte b;
            return (int)read(r, &b, 1);
        }, () => { Posix.close(r); Posix.close(w); });
    }

    [Fact]
    public void Kick_from_another_thread_interrupts_a_blocked_KVM_RUN_with_the_signal()
    {
        var (run, close) = BlockingRun();
        try
        {
            using var v = Vcpu(run);
            VcpuExit? exit = null;
            var t = new Thread(() => exit = v.Run()) { IsBackground = true };
            t.Start();
            Thread.Sleep(200);
            Assert.True(t.IsAlive);
            v.Kick();
            Assert.True(t.Join(TimeSpan.FromSeconds(10)), "the kick signal did not interrupt the blocked call");
            Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
            Assert.Equal(0, _page->ImmediateExit); // consumed

            // Again, on a new thread (the signal must be unblocked there too, and the tid remembered afresh).
            exit = null;
            var t2 = new Thread(() => exit = v.Run()) { IsBackground = true };
            t2.Start();
            Thread.Sleep(200);
            Assert.True(t2.IsAlive);
            v.Kick();
            Assert.True(t2.Join(TimeSpan.FromSeconds(10)));
            Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
        }
        finally
        {
            close();
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ppoll(void* fds, nuint nfds, void* timeout, SigSet* mask);

    /// <summary>
    /// Like the kernel's KVM_RUN: with the kick signal held off, look at immediate_exit, then wait with the signal
    /// let in atomically (ppoll), so a signal sent at any point after the check is still seen as pending.
    /// </summary>
    private int KernelLikeBlockingRun(int readFd)
    {
        SigSet block = default, old;
        block.Add(KickSignal.Number);
        KvmSys.PthreadSigmask(KvmSys.SIG_BLOCK, &block, &old);
        try
        {
            if (Volatile.Read(ref _page->ImmediateExit) != 0) return Fail(Posix.EINTR);
            long* pfd = stackalloc long[1];
            *(int*)pfd = readFd;
            ((short*)pfd)[2] = 1; // POLLIN
            SigSet during = old;
            int sig = KickSignal.Number - 1;
            during.Bits[sig / 64] &= ~(1UL << (sig % 64));
            return ppoll(pfd, 1, null, &during);
        }
        finally
        {
            KvmSys.PthreadSigmask(KvmSys.SIG_SETMASK, &old, null);
        }
    }

    [Fact]
    public void Many_kicks_racing_with_runs_never_lose_one()
    {
        // Each round: Run enters the blocking call (or sees immediate_exit); Kick lands before, during or after the
        // entry. Every round must end with Interrupted: a lost kick would leave Run blocked.
        int* fds = stackalloc int[2];
        Assert.Equal(0, pipe(fds));
        int readFd = fds[0], writeFd = fds[1];
        try
        {
            using var v = Vcpu(() => KernelLikeBlockingRun(readFd));
            for (int i = 0; i < 200; i++)
            {
                VcpuExit? exit = null;
                var t = new Thread(() => exit = v.Run()) { IsBackground = true };
                t.Start();
                if (i % 3 == 1) Thread.SpinWait(i * 50);
                if (i % 3 == 2) Thread.Sleep(1);
                v.Kick();
                Assert.True(t.Join(TimeSpan.FromSeconds(10)), $"round {i}: kick lost");
                Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
            }
        }
        finally
        {
            Posix.close(readFd);
            Posix.close(writeFd);
        }
    }

    [Fact]
    public void Dispose_during_Run_kicks_the_vcpu_out_first()
    {
        var (run, close) = BlockingRun();
        try
        {
            var v = Vcpu(run);
            VcpuExit? exit = null;
            var t = new Thread(() => exit = v.Run()) { IsBackground = true };
            t.Start();
            Thread.Sleep(200);
            v.Dispose();
            Assert.True(t.Join(TimeSpan.FromSeconds(10)));
            Assert.Equal(ExitReason.Interrupted, exit!.Value.Reason);
            Assert.Throws<ObjectDisposedException>(() => v.Run());
        }
        finally
        {
            close();
        }
    }

    /// <summary>What the kernel does with kvm_dirty_regs / kvm_valid_regs around a KVM_RUN (arch/x86/kvm/x86.c).</summary>
    private sealed class FakeKernel(VcpuLogicTests t)
    {
        public VcpuRegisters Regs;
        public SpecialRegisters Sregs;
        public int Runs;

        public int Run(bool consumeDirty = true, int fail = 0)
        {
            var r = t._page;
            Runs++;
            if (consumeDirty && (r->KvmDirtyRegs & KvmLayout.SYNC_X86_REGS) != 0)
            {
                Regs = r->SyncRegs;
                r->KvmDirtyRegs &= ~KvmLayout.SYNC_X86_REGS;
            }
            if (consumeDirty && fail == 0)
            {
                Regs.Rip += 1; // the guest ran
                r->ExitReason = KvmExit.HLT;
            }
            // store_regs on the way out
            if ((r->KvmValidRegs & KvmLayout.SYNC_X86_REGS) != 0) r->SyncRegs = Regs;
            if ((r->KvmValidRegs & KvmLayout.SYNC_X86_SREGS) != 0) r->SyncSregs = Sregs;
            return fail == 0 ? 0 : Fail(fail);
        }
    }

    [Fact]
    public void Sync_regs_cost_no_ioctl_and_follow_the_kernel_protocol()
    {
        var kernel = new FakeKernel(this) { Sregs = { Cr0 = 0x11, Cs = { Selector = 0x23 } } };
        bool consume = true;
        int fail = 0;
        using var v = Vcpu(() => kernel.Run(consume, fail));
        Assert.Equal(KvmLayout.SYNC_X86_REGS | KvmLayout.SYNC_X86_SREGS, _page->KvmValidRegs);

        // A write before the first run goes to the sync area, marked dirty, and reads back.
        v.SetRegisters(new VcpuRegisters { Rax = 7, Rip = 0x1000, Rflags = 2 });
        Assert.Equal(KvmLayout.SYNC_X86_REGS, _page->KvmDirtyRegs);
        Assert.Equal(7UL, v.GetRegisters().Rax);

        Assert.Equal(ExitReason.Halt, v.Run().Reason);
        Assert.Equal(0UL, _page->KvmDirtyRegs);
        Assert.Equal(0x1001UL, v.GetRegisters().Rip); // from the area the kernel stored: no ioctl (the fd is invalid here)
        Assert.Equal(0x23, v.GetSpecialRegisters().Cs.Selector);
        Assert.Equal(0x11UL, v.GetSpecialRegisters().Cr0);

        // KVM returned (EINTR) before taking our dirty registers but still stored its own on the way out:
        // the pending write must survive for the next KVM_RUN.
        v.SetRegisters(v.GetRegisters() with { Rbx = 0x55 });
        consume = false;
        fail = Posix.EINTR;
        Assert.Equal(ExitReason.Interrupted, v.Run().Reason);
        Assert.Equal(KvmLayout.SYNC_X86_REGS, _page->KvmDirtyRegs);
        Assert.Equal(0x55UL, v.GetRegisters().Rbx);
        consume = true;
        fail = 0;
        Assert.Equal(ExitReason.Halt, v.Run().Reason);
        Assert.Equal(0x55UL, kernel.Regs.Rbx);
        Assert.Equal(0x1002UL, v.GetRegisters().Rip);
    }
}
