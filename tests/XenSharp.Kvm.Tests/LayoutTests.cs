using System.Diagnostics;
using System.Runtime.InteropServices;
using XenSharp.Accel;
using XenSharp.Kvm;

namespace XenSharp.Kvm.Tests;

/// <summary>
/// Verifies every struct layout, ioctl number and constant this back end mirrors from &lt;linux/kvm.h&gt; (and glibc's
/// sigaction) against the C compiler: kvm_layout.c is compiled with gcc at test time and its "NAME VALUE" lines are
/// compared with the C# side. Runs on any machine with gcc and the kernel headers, KVM or not.
/// </summary>
public sealed unsafe class LayoutTests
{
    private static readonly Lazy<(Dictionary<string, ulong>? Values, string? SkipReason)> C = new(CompileAndRun);

    private static (Dictionary<string, ulong>?, string?) CompileAndRun()
    {
        string gcc = new[] { "/usr/bin/gcc", "/usr/local/bin/gcc" }.FirstOrDefault(File.Exists) ?? "";
        if (gcc == "") return (null, "gcc is not installed");
        if (!File.Exists("/usr/include/linux/kvm.h")) return (null, "kernel headers (/usr/include/linux/kvm.h) are not installed");
        string src = Path.Combine(AppContext.BaseDirectory, "kvm_layout.c");
        string dir = Directory.CreateTempSubdirectory("xensharp-kvm-layout").FullName;
        try
        {
            string exe = Path.Combine(dir, "kvm_layout");
            var (rc, _, err) = Exec(gcc, "-Wall", "-Werror", "-o", exe, src);
            if (rc != 0) throw new InvalidOperationException($"gcc failed:\n{err}");
            var (rc2, output, err2) = Exec(exe);
            if (rc2 != 0) throw new InvalidOperationException($"kvm_layout failed: {err2}");
            var values = new Dictionary<string, ulong>();
            foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int sp = line.LastIndexOf(' ');
                values.Add(line[..sp], ulong.Parse(line[(sp + 1)..]));
            }
            return (values, null);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int, string, string) Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static long Off(void* s, void* f) => (byte*)f - (byte*)s;

    /// <summary>The C# side: the same names as kvm_layout.c prints, with the values this assembly uses.</summary>
    public static IReadOnlyDictionary<string, ulong> CSharpValues()
    {
        var v = new Dictionary<string, ulong>();
        void Add(string name, long value) => v.Add(name, (ulong)value);

        // struct kvm_run
        KvmRun run = default;
        KvmRun* r = &run;
        const string R = "struct kvm_run";
        Add($"sizeof({R})", sizeof(KvmRun));
        Add($"offsetof({R},request_interrupt_window)", Off(r, &r->RequestInterruptWindow));
        Add($"offsetof({R},immediate_exit)", Off(r, &r->ImmediateExit));
        Add($"offsetof({R},exit_reason)", Off(r, &r->ExitReason));
        Add($"offsetof({R},ready_for_interrupt_injection)", Off(r, &r->ReadyForInterruptInjection));
        Add($"offsetof({R},if_flag)", Off(r, &r->IfFlag));
        Add($"offsetof({R},flags)", Off(r, &r->Flags));
        Add($"offsetof({R},cr8)", Off(r, &r->Cr8));
        Add($"offsetof({R},apic_base)", Off(r, &r->ApicBase));
        Add($"offsetof({R},hw.hardware_exit_reason)", Off(r, &r->Hw.HardwareExitReason));
        Add($"offsetof({R},fail_entry.hardware_entry_failure_reason)", Off(r, &r->FailEntry.HardwareEntryFailureReason));
        Add($"offsetof({R},fail_entry.cpu)", Off(r, &r->FailEntry.Cpu));
        Add($"offsetof({R},io.direction)", Off(r, &r->Io.Direction));
        Add($"offsetof({R},io.size)", Off(r, &r->Io.Size));
        Add($"offsetof({R},io.port)", Off(r, &r->Io.Port));
        Add($"offsetof({R},io.count)", Off(r, &r->Io.Count));
        Add($"offsetof({R},io.data_offset)", Off(r, &r->Io.DataOffset));
        Add($"offsetof({R},mmio.phys_addr)", Off(r, &r->Mmio.PhysAddr));
        Add($"offsetof({R},mmio.data)", Off(r, r->Mmio.Data));
        Add($"offsetof({R},mmio.len)", Off(r, &r->Mmio.Len));
        Add($"offsetof({R},mmio.is_write)", Off(r, &r->Mmio.IsWrite));
        Add($"offsetof({R},internal.suberror)", Off(r, &r->Internal.Suberror));
        Add($"offsetof({R},internal.ndata)", Off(r, &r->Internal.Ndata));
        Add($"offsetof({R},internal.data)", Off(r, r->Internal.Data));
        Add($"offsetof({R},system_event.type)", Off(r, &r->SystemEvent.Type));
        Add($"offsetof({R},system_event.ndata)", Off(r, &r->SystemEvent.Ndata));
        Add($"offsetof({R},system_event.data)", Off(r, r->SystemEvent.Data));
        Add($"offsetof({R},kvm_valid_regs)", Off(r, &r->KvmValidRegs));
        Add($"offsetof({R},kvm_dirty_regs)", Off(r, &r->KvmDirtyRegs));
        Add($"offsetof({R},s.regs.regs)", Off(r, &r->SyncRegs));
        Add($"offsetof({R},s.regs.sregs)", Off(r, &r->SyncSregs));

        // struct kvm_regs = VcpuRegisters
        VcpuRegisters regs = default;
        VcpuRegisters* g = &regs;
        Add("sizeof(struct kvm_regs)", sizeof(VcpuRegisters));
        var gprs = new (string, long)[]
        {
            ("rax", Off(g, &g->Rax)), ("rbx", Off(g, &g->Rbx)), ("rcx", Off(g, &g->Rcx)), ("rdx", Off(g, &g->Rdx)),
            ("rsi", Off(g, &g->Rsi)), ("rdi", Off(g, &g->Rdi)), ("rsp", Off(g, &g->Rsp)), ("rbp", Off(g, &g->Rbp)),
            ("r8", Off(g, &g->R8)), ("r9", Off(g, &g->R9)), ("r10", Off(g, &g->R10)), ("r11", Off(g, &g->R11)),
            ("r12", Off(g, &g->R12)), ("r13", Off(g, &g->R13)), ("r14", Off(g, &g->R14)), ("r15", Off(g, &g->R15)),
            ("rip", Off(g, &g->Rip)), ("rflags", Off(g, &g->Rflags)),
        };
        foreach (var (n, o) in gprs) Add($"offsetof(struct kvm_regs,{n})", o);

        SegmentRegister seg = default;
        SegmentRegister* sg = &seg;
        Add("sizeof(struct kvm_segment)", sizeof(SegmentRegister));
        Add("offsetof(struct kvm_segment,base)", Off(sg, &sg->Base));
        Add("offsetof(struct kvm_segment,limit)", Off(sg, &sg->Limit));
        Add("offsetof(struct kvm_segment,selector)", Off(sg, &sg->Selector));
        Add("offsetof(struct kvm_segment,type)", Off(sg, &sg->Type));
        Add("offsetof(struct kvm_segment,present)", Off(sg, &sg->Present));
        Add("offsetof(struct kvm_segment,dpl)", Off(sg, &sg->Dpl));
        Add("offsetof(struct kvm_segment,db)", Off(sg, &sg->Db));
        Add("offsetof(struct kvm_segment,s)", Off(sg, &sg->S));
        Add("offsetof(struct kvm_segment,l)", Off(sg, &sg->L));
        Add("offsetof(struct kvm_segment,g)", Off(sg, &sg->G));
        Add("offsetof(struct kvm_segment,avl)", Off(sg, &sg->Avl));
        Add("offsetof(struct kvm_segment,unusable)", Off(sg, &sg->Unusable));
        Add("offsetof(struct kvm_segment,padding)", Off(sg, &sg->Padding));

        DescriptorTableRegister dt = default;
        DescriptorTableRegister* d = &dt;
        Add("sizeof(struct kvm_dtable)", sizeof(DescriptorTableRegister));
        Add("offsetof(struct kvm_dtable,base)", Off(d, &d->Base));
        Add("offsetof(struct kvm_dtable,limit)", Off(d, &d->Limit));

        SpecialRegisters sregs = default;
        SpecialRegisters* s = &sregs;
        const string S = "struct kvm_sregs";
        Add($"sizeof({S})", sizeof(SpecialRegisters));
        Add($"offsetof({S},cs)", Off(s, &s->Cs)); Add($"offsetof({S},ds)", Off(s, &s->Ds)); Add($"offsetof({S},es)", Off(s, &s->Es));
        Add($"offsetof({S},fs)", Off(s, &s->Fs)); Add($"offsetof({S},gs)", Off(s, &s->Gs)); Add($"offsetof({S},ss)", Off(s, &s->Ss));
        Add($"offsetof({S},tr)", Off(s, &s->Tr)); Add($"offsetof({S},ldt)", Off(s, &s->Ldt));
        Add($"offsetof({S},gdt)", Off(s, &s->Gdt)); Add($"offsetof({S},idt)", Off(s, &s->Idt));
        Add($"offsetof({S},cr0)", Off(s, &s->Cr0)); Add($"offsetof({S},cr2)", Off(s, &s->Cr2)); Add($"offsetof({S},cr3)", Off(s, &s->Cr3));
        Add($"offsetof({S},cr4)", Off(s, &s->Cr4)); Add($"offsetof({S},cr8)", Off(s, &s->Cr8)); Add($"offsetof({S},efer)", Off(s, &s->Efer));
        Add($"offsetof({S},apic_base)", Off(s, &s->ApicBase)); Add($"offsetof({S},interrupt_bitmap)", Off(s, s->InterruptBitmap));

        KvmUserspaceMemoryRegion mr = default;
        KvmUserspaceMemoryRegion* m = &mr;
        const string M = "struct kvm_userspace_memory_region";
        Add($"sizeof({M})", sizeof(KvmUserspaceMemoryRegion));
        Add($"offsetof({M},slot)", Off(m, &m->Slot)); Add($"offsetof({M},flags)", Off(m, &m->Flags));
        Add($"offsetof({M},guest_phys_addr)", Off(m, &m->GuestPhysAddr)); Add($"offsetof({M},memory_size)", Off(m, &m->MemorySize));
        Add($"offsetof({M},userspace_addr)", Off(m, &m->UserspaceAddr));

        KvmCpuid2Header ch = default;
        Add("sizeof(struct kvm_cpuid2)", sizeof(KvmCpuid2Header));
        Add("offsetof(struct kvm_cpuid2,nent)", Off(&ch, &ch.Nent));
        Add("offsetof(struct kvm_cpuid2,entries)", KvmCpuid2Header.Size);
        KvmCpuidEntry2 ce = default;
        const string CE = "struct kvm_cpuid_entry2";
        Add($"sizeof({CE})", sizeof(KvmCpuidEntry2));
        Add($"offsetof({CE},function)", Off(&ce, &ce.Function)); Add($"offsetof({CE},index)", Off(&ce, &ce.Index));
        Add($"offsetof({CE},flags)", Off(&ce, &ce.Flags)); Add($"offsetof({CE},eax)", Off(&ce, &ce.Eax));
        Add($"offsetof({CE},ebx)", Off(&ce, &ce.Ebx)); Add($"offsetof({CE},ecx)", Off(&ce, &ce.Ecx)); Add($"offsetof({CE},edx)", Off(&ce, &ce.Edx));

        KvmMsrsOne mo = default;
        Add("sizeof(struct kvm_msrs)", sizeof(KvmMsrsHeader));
        Add("offsetof(struct kvm_msrs,nmsrs)", Off(&mo, &mo.Header.Nmsrs));
        Add("offsetof(struct kvm_msrs,entries)", Off(&mo, &mo.Entry));
        Add("sizeof(struct kvm_msr_entry)", sizeof(KvmMsrEntry));
        Add("offsetof(struct kvm_msr_entry,index)", Off(&mo.Entry, &mo.Entry.Index));
        Add("offsetof(struct kvm_msr_entry,reserved)", Off(&mo.Entry, &mo.Entry.Reserved));
        Add("offsetof(struct kvm_msr_entry,data)", Off(&mo.Entry, &mo.Entry.Data));

        KvmInterrupt ki = default;
        Add("sizeof(struct kvm_interrupt)", sizeof(KvmInterrupt));
        Add("offsetof(struct kvm_interrupt,irq)", Off(&ki, &ki.Irq));
        KvmIrqLevel il = default;
        Add("sizeof(struct kvm_irq_level)", sizeof(KvmIrqLevel));
        Add("offsetof(struct kvm_irq_level,irq)", Off(&il, &il.Irq));
        Add("offsetof(struct kvm_irq_level,level)", Off(&il, &il.Level));
        KvmPitConfig pc = default;
        Add("sizeof(struct kvm_pit_config)", sizeof(KvmPitConfig));
        Add("offsetof(struct kvm_pit_config,flags)", Off(&pc, &pc.Flags));

        SigAction sa = default;
        Add("sizeof(struct sigaction)", sizeof(SigAction));
        Add("sizeof(sigset_t)", sizeof(SigSet));
        Add("offsetof(struct sigaction,sa_handler)", Off(&sa, &sa.Handler));
        Add("offsetof(struct sigaction,sa_mask)", Off(&sa, &sa.Mask));
        Add("offsetof(struct sigaction,sa_flags)", Off(&sa, &sa.Flags));
        Add("offsetof(struct sigaction,sa_restorer)", Off(&sa, &sa.Restorer));
        Add("SA_RESTART", KvmSys.SA_RESTART); Add("SA_SIGINFO", KvmSys.SA_SIGINFO); Add("SA_ONSTACK", KvmSys.SA_ONSTACK);
        Add("SIG_BLOCK", KvmSys.SIG_BLOCK); Add("SIG_UNBLOCK", KvmSys.SIG_UNBLOCK); Add("SIG_SETMASK", KvmSys.SIG_SETMASK);

        Add("KVM_API_VERSION", KvmLayout.ApiVersion);
        foreach (var f in typeof(KvmIoctl).GetFields().Where(f => f.Name.StartsWith("KVM_")))
            Add(f.Name, (long)(nuint)f.GetValue(null)!);
        foreach (var f in typeof(KvmCap).GetFields().Where(f => f.IsLiteral))
            Add("KVM_CAP_" + f.Name, (int)f.GetValue(null)!);
        foreach (var f in typeof(KvmExit).GetFields().Where(f => f.IsLiteral))
        {
            string name = f.Name switch
            {
                "IO_IN" or "IO_OUT" => "KVM_EXIT_" + f.Name,
                var n when n.StartsWith("SYSTEM_EVENT_") => "KVM_" + n,
                var n when n.StartsWith("INTERNAL_ERROR_") => "KVM_" + n,
                var n => "KVM_EXIT_" + n,
            };
            Add(name, Convert.ToInt64(f.GetValue(null)));
        }
        Add("KVM_MEM_READONLY", KvmLayout.MEM_READONLY);
        Add("KVM_CPUID_FLAG_SIGNIFCANT_INDEX", KvmLayout.CPUID_FLAG_SIGNIFICANT_INDEX);
        Add("KVM_PIT_SPEAKER_DUMMY", KvmLayout.PIT_SPEAKER_DUMMY);
        Add("KVM_SYNC_X86_REGS", (long)KvmLayout.SYNC_X86_REGS);
        Add("KVM_SYNC_X86_SREGS", (long)KvmLayout.SYNC_X86_SREGS);
        Add("KVM_SYNC_X86_EVENTS", (long)KvmLayout.SYNC_X86_EVENTS);
        return v;
    }

    public static TheoryData<string> Names() => new(CSharpValues().Keys);

    [SkippableTheory]
    [MemberData(nameof(Names))]
    public void Matches_the_C_compiler(string name)
    {
        var (values, skip) = C.Value;
        Skip.If(values is null, skip);
        Assert.True(values!.TryGetValue(name, out ulong expected), $"kvm_layout.c does not print {name}");
        Assert.Equal(expected, CSharpValues()[name]);
    }

    [SkippableFact]
    public void Every_value_the_C_program_prints_is_checked()
    {
        var (values, skip) = C.Value;
        Skip.If(values is null, skip);
        var missing = values!.Keys.Except(CSharpValues().Keys).ToList();
        Assert.True(missing.Count == 0, "not mirrored in C#: " + string.Join(", ", missing));
    }

    [Fact]
    public void Marshal_agrees_with_sizeof_for_the_ioctl_structs()
    {
        Assert.Equal(KvmLayout.RegsSize, Marshal.SizeOf<VcpuRegisters>());
        Assert.Equal(KvmLayout.SregsSize, Marshal.SizeOf<SpecialRegisters>());
        Assert.Equal(KvmUserspaceMemoryRegion.Size, Marshal.SizeOf<KvmUserspaceMemoryRegion>());
        Assert.Equal(KvmCpuidEntry2.Size, Marshal.SizeOf<KvmCpuidEntry2>());
        Assert.Equal(KvmMsrEntry.Size, Marshal.SizeOf<KvmMsrEntry>());
        Assert.Equal(KvmRun.Size, Marshal.SizeOf<KvmRun>());
        Assert.Equal(SigAction.Size, Marshal.SizeOf<SigAction>());
        Assert.Equal(KvmRun.Size, sizeof(KvmRun));
    }
}
