using Iced.Intel;
using XenSharp.Accel;

namespace XenSharp.Emu.Tests;

/// <summary>
/// A small long-mode guest for tests: 16 MiB of RAM at 0, identity-mapped (first 2 MiB with 4 KiB pages, the rest with
/// 2 MiB pages, and 1 GiB at 0x40000000 with one 1 GiB page that has no RAM behind it = MMIO), a GDT with kernel and
/// user selectors and a TSS, an IDT whose every vector reports itself on port 0xF0 and then halts.
/// </summary>
internal sealed class TestMachine : IDisposable
{
    public const ulong Pml4 = 0x1000, Pdpt = 0x2000, Pd = 0x3000, Pt = 0x4000, Gdt = 0x5000, Idt = 0x6000, Tss = 0x7000;
    public const ulong HandlerBase = 0x8000, KernelCode = 0x10000, UserCode = 0x20000, Data = 0x100000;
    public const ulong KernelStack = 0x80000, UserStack = 0x90000, IstStack = 0xa0000, Mmio = 0x40000000;
    public const ushort KernelCs = 0x08, KernelDs = 0x10, UserDs = 0x1b, UserCs = 0x23, TssSel = 0x28;
    public const ushort ReportPort = 0xf0;

    public EmuAccelerator Accel { get; } = new();
    public IVirtualMachine Vm { get; }
    public GuestMemory Memory { get; }
    public EmuVcpu Cpu { get; }

    public TestMachine(ulong ramSize = 16 << 20)
    {
        Memory = new GuestMemory(ramSize);
        Vm = Accel.CreateVirtualMachine();
        Vm.MapMemory(0, 0, Memory, 0, ramSize);
        Cpu = (EmuVcpu)Vm.CreateVcpu(0);
        BuildTables();
    }

    private void BuildTables()
    {
        const ulong rwu = X86.PtePresent | X86.PteRw | X86.PteUser;
        Memory.WriteUInt64(Pml4, Pdpt | rwu);
        Memory.WriteUInt64(Pdpt, Pd | rwu);
        Memory.WriteUInt64(Pdpt + 8, Mmio | rwu | X86.PtePse); // 1 GiB page with no RAM
        Memory.WriteUInt64(Pd, Pt | rwu);
        for (ulong i = 1; i < 8; i++) Memory.WriteUInt64(Pd + i * 8, (i << 21) | rwu | X86.PtePse);
        for (ulong i = 0; i < 512; i++) Memory.WriteUInt64(Pt + i * 8, (i << 12) | rwu);
        Memory.WriteUInt64(Pt, 0); // page 0 not present: null pointer faults

        ulong[] gdt =
        [
            0,
            0x00af9b000000ffffUL, // 0x08 kernel code64
            0x00cf93000000ffffUL, // 0x10 kernel data
            0x00cff3000000ffffUL, // 0x18 user data DPL3
            0x00affb000000ffffUL, // 0x20 user code64 DPL3
        ];
        for (int i = 0; i < gdt.Length; i++) Memory.WriteUInt64(Gdt + (ulong)i * 8, gdt[i]);
        // 0x28: 64-bit available TSS, 16 bytes.
        ulong tssLimit = 0x67;
        ulong lo = tssLimit | ((Tss & 0xffffff) << 16) | (0x89UL << 40) | (((Tss >> 24) & 0xff) << 56);
        Memory.WriteUInt64(Gdt + 0x28, lo);
        Memory.WriteUInt64(Gdt + 0x30, Tss >> 32);
        Memory.WriteUInt64(Tss + 4, KernelStack);        // RSP0
        Memory.WriteUInt64(Tss + 0x24, IstStack);        // IST1
        Memory.WriteUInt16(Tss + 0x66, 0x68);            // I/O map base past the limit: no I/O bitmap

        for (int v = 0; v < 256; v++)
        {
            ulong h = HandlerBase + (ulong)v * 16;
            // mov eax, v ; out 0xf0, eax ; hlt ; jmp $-1
            byte[] stub = [0xb8, (byte)v, 0, 0, 0, 0xe7, (byte)ReportPort, 0xf4, 0xeb, 0xfd];
            Memory.Write(h, stub);
            SetGate(v, h, dpl: 0);
        }
    }

    public void SetGate(int vector, ulong handler, int dpl = 0, int ist = 0, bool trap = false, bool present = true)
    {
        ulong lo = (handler & 0xffff) | ((ulong)KernelCs << 16) | ((ulong)ist << 32) | ((trap ? 0xfUL : 0xeUL) << 40)
            | ((ulong)dpl << 45) | (present ? 1UL << 47 : 0) | ((handler >> 16 & 0xffff) << 48);
        Memory.WriteUInt64(Idt + (ulong)vector * 16, lo);
        Memory.WriteUInt64(Idt + (ulong)vector * 16 + 8, handler >> 32);
    }

    public byte[] Assemble(ulong address, Action<Assembler> build)
    {
        var a = new Assembler(64);
        build(a);
        using var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), address);
        var bytes = ms.ToArray();
        Memory.Write(address, bytes);
        return bytes;
    }

    public SpecialRegisters LongModeSregs(int cpl)
    {
        var s = new SpecialRegisters
        {
            Cs = cpl == 0 ? SegmentRegister.Code64(KernelCs, 0) : SegmentRegister.Code64(UserCs, 3),
            Ss = cpl == 0 ? SegmentRegister.Data(KernelDs, 0) : SegmentRegister.Data(UserDs, 3),
            Gdt = new DescriptorTableRegister { Base = Gdt, Limit = 0x37 },
            Idt = new DescriptorTableRegister { Base = Idt, Limit = 0xfff },
            Tr = new SegmentRegister { Selector = TssSel, Base = Tss, Limit = 0x67, Type = 0xb, Present = 1 },
            Cr0 = X86.Cr0Pe | X86.Cr0Mp | X86.Cr0Et | X86.Cr0Ne | X86.Cr0Wp | X86.Cr0Pg,
            Cr3 = Pml4,
            Cr4 = X86.Cr4Pae,
            Efer = X86.EferLme | X86.EferLma | X86.EferNx | X86.EferSce,
        };
        s.Ds = s.Es = s.Fs = s.Gs = s.Ss;
        return s;
    }

    /// <summary>Points the vCPU at <paramref name="rip"/> at the given privilege level, with a fresh stack.</summary>
    public void Start(ulong rip, int cpl = 0, ulong rflags = 2)
    {
        Cpu.SetSpecialRegisters(LongModeSregs(cpl));
        Cpu.SetRegisters(new VcpuRegisters { Rip = rip, Rsp = cpl == 0 ? KernelStack : UserStack, Rflags = rflags });
        Cpu.SetMsr(X86.MsrStar, ((ulong)0x10 << 48) | ((ulong)KernelCs << 32));
    }

    public ulong Rip => Cpu.GetRegisters().Rip;
    public VcpuRegisters Regs => Cpu.GetRegisters();

    public VcpuExit Run() => Cpu.Run();

    /// <summary>Runs until the next exit and expects a report of exception <paramref name="vector"/> from the IDT stubs.</summary>
    public void ExpectVector(int vector)
    {
        var e = Run();
        Assert.Equal(ExitReason.Io, e.Reason);
        Assert.Equal((ulong)ReportPort, e.Address);
        Assert.Equal((ulong)vector, e.Data);
    }

    public void Dispose()
    {
        Cpu.Dispose();
        Vm.Dispose();
        Memory.Dispose();
        Accel.Dispose();
    }
}
