using Iced.Intel;
using XenSharp.Hypervisor.Pv;
using XenSharp.Hypervisor.Pv.Cpu;
using XenSharp.Hypervisor.Tests.Pv;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>Runs a tiny PV kernel (Iced-assembled code in a synthetic Xen ELF) through the whole PV stack, on the given accelerator.</summary>
/// <summary>
/// The accelerators every PV guest test runs on: the software CPU always, KVM wherever /dev/kvm answers (skipped with
/// KVM's reason elsewhere). On a PVM host KVM runs the guest kernel natively at CPL3 and enters our stubs at CPL3.
/// </summary>
public sealed class PvAccelerators : TheoryData<string>
{
    public PvAccelerators() { Add("emu"); Add("kvm"); }

    private static readonly Lazy<(bool Usable, string Reason)> Kvm = new(() => XenSharp.Kvm.KvmAccelerator.Probe());

    /// <summary>PVM (a KVM back end without hardware virtualization) serves /dev/kvm here.</summary>
    public static bool IsPvm => XenSharp.Kvm.KvmAccelerator.IsPvm;

    public static XenSharp.Accel.IAccelerator Create(string accel)
    {
        if (accel == "emu") return new XenSharp.Emu.EmuAccelerator();
        Skip.IfNot(Kvm.Value.Usable, $"KVM is not usable here: {Kvm.Value.Reason}");
        return new XenSharp.Kvm.KvmAccelerator();
    }
}

internal sealed class PvGuestHarness : IDisposable
{
    public XenHypervisor Hypervisor { get; }
    public Domain Domain { get; }
    public PvDomainParts Parts { get; }
    private readonly ManualResetEventSlim _shutdown = new();

    /// <summary>Runs a kernel image file (ELF or bzImage).</summary>
    public PvGuestHarness(string accel, byte[] kernel, int vcpus, ulong memMiB, string cmdline)
    {
        Hypervisor = new XenHypervisor(PvAccelerators.Create(accel), new HostMemory(8UL << 30, 0));
        Hypervisor.DomainShutdown += d => _shutdown.Set();
        Domain = Hypervisor.CreateDomain(new DomainCreateSpec("pvtest", DomainType.Pv, memMiB << 20, memMiB << 20, vcpus, vcpus));
        Parts = PvDomainSetup.Compose(Domain, vcpus, kernel, cmdline);
    }

    public PvGuestHarness(string accel, Action<Assembler> code, int vcpus = 1, ulong memMiB = 64, string cmdline = "")
    {
        var elf = TestElf.Linux();
        var a = new Assembler(64);
        code(a);
        var w = new Writer();
        a.Assemble(w, elf.Entry);
        var bytes = w.Bytes.ToArray();
        if (bytes.Length > elf.Text.Length - 0x40) throw new InvalidOperationException("guest code too large");
        Array.Clear(elf.Text);
        bytes.CopyTo(elf.Text, 0x40);
        Hypervisor = new XenHypervisor(PvAccelerators.Create(accel), new HostMemory(8UL << 30, 0));
        Hypervisor.DomainShutdown += d => _shutdown.Set();
        Domain = Hypervisor.CreateDomain(new DomainCreateSpec("pvtest", DomainType.Pv, memMiB << 20, memMiB << 20, vcpus, vcpus));
        Parts = PvDomainSetup.Compose(Domain, vcpus, elf.Build(), cmdline);
    }

    /// <summary>The guest's console ring output (Domain.Console).</summary>
    public string Console => System.Text.Encoding.ASCII.GetString(Domain.Console.History());
    /// <summary>CONSOLEIO_write output lands in the hypervisor log.</summary>
    public string Log => string.Join("\n", Hypervisor.Log.Snapshot());
    public PvPlatform Platform => Parts.Platform;

    /// <summary>Runs the guest until it shuts down; returns false on timeout.</summary>
    public bool Run(TimeSpan timeout)
    {
        Hypervisor.Start(Domain);
        Domain.Unpause();
        return _shutdown.Wait(timeout);
    }

    /// <summary>Runs the guest and expects it to power off without printing FAIL.</summary>
    public void RunToPoweroff(Xunit.Abstractions.ITestOutputHelper output)
    {
        bool done = Run(TimeSpan.FromSeconds(30));
        output.WriteLine(Log);
        Assert.True(done, "guest did not shut down");
        Assert.DoesNotContain("FAIL", Log);
        Assert.Equal(ShutdownReason.Poweroff, Domain.ShutdownReason);
    }

    public void Dispose() => Hypervisor.Dispose();

    private sealed class Writer : CodeWriter
    {
        public readonly List<byte> Bytes = new();
        public override void WriteByte(byte value) => Bytes.Add(value);
    }
}

/// <summary>Guest-side helpers: hypercalls by syscall, as a PV kernel issues them.</summary>
internal static class GuestAsm
{
    public static void Hypercall(this Assembler a, int nr)
    {
        a.mov(AssemblerRegisters.eax, nr);
        a.syscall();
    }

    /// <summary>console_io(CONSOLEIO_write, len, label).</summary>
    public static void Print(this Assembler a, Label text, int len)
    {
        a.xor(AssemblerRegisters.edi, AssemblerRegisters.edi);
        a.mov(AssemblerRegisters.esi, len);
        a.lea(AssemblerRegisters.rdx, AssemblerRegisters.__[text]);
        a.Hypercall(18);
    }

    /// <summary>sched_op(SCHEDOP_shutdown, &amp;reason) with the reason in a scratch slot on the stack.</summary>
    /// <summary>The failure tail: at <paramref name="fail"/>, print "FAIL" and shut down with reason 1 (reboot).</summary>
    public static void FailTail(this Assembler a, Label fail)
    {
        var msg = a.CreateLabel();
        a.Label(ref fail);
        a.Print(msg, 5);
        a.Shutdown(1);
        a.Label(ref msg);
        a.db(System.Text.Encoding.ASCII.GetBytes("FAIL\n"));
    }

    public static void Shutdown(this Assembler a, int reason)
    {
        a.push(reason);
        a.mov(AssemblerRegisters.edi, 2);
        a.mov(AssemblerRegisters.rsi, AssemblerRegisters.rsp);
        a.Hypercall(29);
        a.ud2();
    }

    public static Label Text(this Assembler a, string s)
    {
        var l = a.CreateLabel();
        a.Label(ref l);
        a.db(System.Text.Encoding.ASCII.GetBytes(s));
        return l;
    }
}
