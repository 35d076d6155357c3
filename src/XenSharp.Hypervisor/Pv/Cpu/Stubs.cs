using Iced.Intel;
using XenSharp.Accel;
using static Iced.Intel.AssemblerRegisters;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>Layout of the per-vCPU command page that C# fills and the resume stub consumes.</summary>
public static class CommandPage
{
    public const int Armed = 0x00, Count = 0x08;
    public const int SaveRax = 0x10, SaveRcx = 0x18, SaveRdx = 0x20, SaveRsi = 0x28, SaveRdi = 0x30;
    /// <summary>The iretq frame: rip, cs, rflags, rsp, ss.</summary>
    public const int Frame = 0x40;
    public const int Entries = 0x80, EntrySize = 24;
    public const int Capacity = (4096 - Entries) / EntrySize;

    public const ulong OpStore = 0, OpInvlpg = 1, OpLoadCr3 = 2, OpWrmsr = 3, OpFlushAll = 4, OpMore = 5, OpLldt = 6;
}

/// <summary>
/// The code of the hypervisor area, generated with Iced. Each stub records what happened and rings a doorbell: the
/// syscall entries an I/O port (the port says which entry), the exception entries an MMIO write (the address says which
/// vector, the data carries CR2). C# decides the rest and comes back by registers alone, or through the resume stub,
/// which runs the command list (page-table stores, flushes, CR3 loads, MSR writes), reloads five registers from the
/// command page and iretq's into the guest.
/// </summary>
public sealed class Stubs
{
    public byte[] Code { get; }
    public ulong Base { get; }
    public ulong SyscallEntry { get; private set; }
    public ulong Syscall32Entry { get; private set; }
    public ulong SysenterEntry { get; private set; }
    public ulong Resume { get; private set; }
    /// <summary>A <c>ud2</c> that the #UD entry turns into the resume stub: how a CPL3-entered stub reaches ring 0.</summary>
    public ulong EnterRing0 { get; private set; }
    public ulong[] ExceptionEntry { get; } = new ulong[256];

    public Stubs(ulong baseVa)
    {
        Base = baseVa;
        Code = Generate(baseVa);
        if (Code.Length > PvLayout.StubPages * 4096) throw new InvalidOperationException("stubs overflow their pages");
    }

    private static MemoryOperand Db(ulong offset) => new(Register.RIP, unchecked((long)(PvLayout.DoorbellVa + offset)));

    private static void RingImm(Assembler a, ulong offset, int value) => a.AddInstruction(Instruction.Create(Iced.Intel.Code.Mov_rm64_imm32, Db(offset), value));
    private static void RingRax(Assembler a, ulong offset) => a.AddInstruction(Instruction.Create(Iced.Intel.Code.Mov_rm64_r64, Db(offset), Register.RAX));

    private byte[] Generate(ulong baseVa)
    {
        var a = new Assembler(64);
        var syscall = a.CreateLabel(); var syscall32 = a.CreateLabel(); var sysenter = a.CreateLabel();
        var resume = a.CreateLabel(); var enter0 = a.CreateLabel();
        var loop = a.CreateLabel(); var next = a.CreateLabel(); var done = a.CreateLabel(); var refused = a.CreateLabel();
        var n1 = a.CreateLabel(); var n2 = a.CreateLabel(); var n3 = a.CreateLabel(); var n4 = a.CreateLabel(); var n5 = a.CreateLabel(); var n6 = a.CreateLabel();
        var exc = new Label[256];
        for (int v = 0; v < 256; v++) exc[v] = a.CreateLabel();

        // syscall from the guest: CPL0 on VT-x/AMD-V and the emulator, CPL3 on PVM; C# reads which from the CPU state.
        a.Label(ref syscall);
        a.@out(PvLayout.DoorbellPortSyscall, al);
        a.ud2();
        a.Label(ref syscall32);
        a.@out(PvLayout.DoorbellPortSyscall32, al);
        a.ud2();
        a.Label(ref sysenter);
        a.@out(PvLayout.DoorbellPortSysenter, al);
        a.ud2();
        // From CPL3 (PVM) to the resume stub at ring 0: a #UD here, recognised by the #UD entry below. A software
        // interrupt would do on VT-x/AMD-V, but PVM turns INT n at CPL3 into #UD; an exception reaches the IDT on both.
        a.Label(ref enter0);
        a.ud2();

        // Resume: find this vCPU's command page from the ring-0 stack pointer (never from a guest register).
        a.Label(ref resume);
        a.push(rdi); // kept for a refused entry: C# then sees the guest's registers unchanged
        a.mov(rdi, rsp);
        a.and(rdi, -(int)PvLayout.VcpuStride);
        a.add(rdi, (int)PvLayout.CommandPage);
        a.cmp(__qword_ptr[rdi + CommandPage.Armed], 1);
        a.jne(refused);
        a.mov(__qword_ptr[rdi + CommandPage.Armed], 0);
        a.mov(rcx, __qword_ptr[rdi + CommandPage.Count]);
        a.lea(rsi, __[rdi + CommandPage.Entries]);
        a.Label(ref loop);
        a.test(rcx, rcx);
        a.jz(done);
        a.mov(rax, __qword_ptr[rsi]);
        a.cmp(rax, (int)CommandPage.OpStore);
        a.jne(n1);
        a.mov(rdx, __qword_ptr[rsi + 8]);
        a.mov(rax, __qword_ptr[rsi + 16]);
        a.mov(__qword_ptr[rdx], rax);
        a.jmp(next);
        a.Label(ref n1);
        a.cmp(rax, (int)CommandPage.OpInvlpg);
        a.jne(n2);
        a.mov(rdx, __qword_ptr[rsi + 8]);
        a.invlpg(__[rdx]);
        a.jmp(next);
        a.Label(ref n2);
        a.cmp(rax, (int)CommandPage.OpLoadCr3);
        a.jne(n3);
        a.mov(rdx, __qword_ptr[rsi + 8]);
        a.mov(cr3, rdx);
        a.jmp(next);
        a.Label(ref n3);
        a.cmp(rax, (int)CommandPage.OpWrmsr);
        a.jne(n4);
        a.push(rcx); // the loop count, on the ring-0 stack: every other register is the guest's and must survive
        a.mov(ecx, __dword_ptr[rsi + 8]);
        a.mov(eax, __dword_ptr[rsi + 16]);
        a.mov(edx, __dword_ptr[rsi + 20]);
        a.wrmsr();
        a.pop(rcx);
        a.jmp(next);
        a.Label(ref n4);
        a.cmp(rax, (int)CommandPage.OpFlushAll);
        a.jne(n5);
        a.mov(rax, cr3);
        a.mov(cr3, rax);
        a.jmp(next);
        a.Label(ref n5);
        a.cmp(rax, (int)CommandPage.OpMore);
        a.jne(n6);
        RingImm(a, PvLayout.DbApplyDone, 0); // the list continues: C# refills the page and re-enters the resume stub
        a.ud2();
        a.Label(ref n6);
        a.cmp(rax, (int)CommandPage.OpLldt);
        a.jne(next);
        a.mov(eax, __dword_ptr[rsi + 8]);
        a.lldt(ax);
        a.jmp(next);
        a.Label(ref next);
        a.add(rsi, CommandPage.EntrySize);
        a.dec(rcx);
        a.jmp(loop);
        a.Label(ref done);
        a.mov(rax, __qword_ptr[rdi + CommandPage.SaveRax]);
        a.mov(rcx, __qword_ptr[rdi + CommandPage.SaveRcx]);
        a.mov(rdx, __qword_ptr[rdi + CommandPage.SaveRdx]);
        a.mov(rsi, __qword_ptr[rdi + CommandPage.SaveRsi]);
        a.lea(rsp, __[rdi + CommandPage.Frame]);
        a.mov(rdi, __qword_ptr[rdi + CommandPage.SaveRdi]);
        a.iretq();
        a.Label(ref refused);
        a.pop(rdi);
        RingImm(a, PvLayout.DbResumeRefused, 0);
        a.ud2();

        // Exception and interrupt entries (ring 0 through the IDT): frame on the TSS stack, then [rsp] = rax, [rsp+8] = error code.
        for (int v = 0; v < 256; v++)
        {
            a.Label(ref exc[v]);
            if (v == X86.VectorUd)
            {
                // The ud2 at enter0 asks for the resume stub; any other #UD is the guest's. Only rax is touched, and
                // restored, before the resume stub takes over (it finds its page from RSP and discards this frame).
                var own = a.CreateLabel();
                a.push(rax);
                a.lea(rax, __[enter0]);
                a.cmp(__qword_ptr[rsp + 8], rax);
                a.pop(rax);
                a.jne(own);
                a.jmp(resume);
                a.Label(ref own);
            }
            if (!X86.HasErrorCode(v)) a.push(0);
            a.push(rax);
            a.mov(rax, cr2);
            RingRax(a, (ulong)v * 8);
            a.ud2();
        }

        var w = new CodeWriterImpl();
        var result = a.Assemble(w, baseVa, BlockEncoderOptions.ReturnNewInstructionOffsets);
        SyscallEntry = result.GetLabelRIP(syscall);
        Syscall32Entry = result.GetLabelRIP(syscall32);
        SysenterEntry = result.GetLabelRIP(sysenter);
        Resume = result.GetLabelRIP(resume);
        EnterRing0 = result.GetLabelRIP(enter0);
        for (int v = 0; v < 256; v++) ExceptionEntry[v] = result.GetLabelRIP(exc[v]);
        return w.ToArray();
    }

    /// <summary>
    /// Whether an exit on <paramref name="port"/> at <paramref name="rip"/> is that syscall stub's `out`: RIP is at the
    /// instruction (VT-x/AMD-V, the software CPU) or just past it (KVM's instruction emulator, which PVM uses at CPL3,
    /// completes the instruction before the exit). The same port written from anywhere else is the guest's own I/O.
    /// </summary>
    public bool IsSyscallDoorbell(ulong rip, int port)
    {
        ulong entry = port switch
        {
            PvLayout.DoorbellPortSyscall => SyscallEntry,
            PvLayout.DoorbellPortSyscall32 => Syscall32Entry,
            PvLayout.DoorbellPortSysenter => SysenterEntry,
            _ => 0,
        };
        return entry != 0 && (rip == entry || rip == entry + OutImm8Length);
    }

    private const ulong OutImm8Length = 2; // E6 ib

    public bool Contains(ulong rip) => rip >= Base && rip < Base + (ulong)Code.Length;

    private sealed class CodeWriterImpl : CodeWriter
    {
        private readonly List<byte> _bytes = new();
        public override void WriteByte(byte value) => _bytes.Add(value);
        public byte[] ToArray() => _bytes.ToArray();
    }
}
