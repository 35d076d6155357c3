using System.Buffers.Binary;
using XenSharp.Accel;
using XenSharp.Hypervisor.Hvm;

namespace XenSharp.Hypervisor.Tests.Core;

public sealed class HvmBuilderTests
{
    private static string GuestPath => Path.Combine(RepoRoot.Path, "guests", "build", "hvm-hello.elf");

    [SkippableFact]
    public void LoadsTheTestGuestElfAtItsPhysicalAddress()
    {
        Skip.IfNot(File.Exists(GuestPath), $"{GuestPath} is not built (run make -C guests)");
        using var mem = new GuestMemory(16 << 20);
        var image = HvmBuilder.LoadElf(mem, File.ReadAllBytes(GuestPath));
        Assert.Equal(BootMode.Long, image.Mode);
        Assert.Equal(0x100000UL, image.Entry);
        Assert.Equal(0x100000UL, image.LowestAddress);
        Assert.Equal(0x48, mem.ReadByte(0x100000)); // REX.W of the first instruction
    }

    [Fact]
    public void LongModeSetupWritesIdentityTablesAndRegisters()
    {
        using var mem = new GuestMemory(16 << 20);
        var cpu = new ScriptedVcpu(0);
        var image = HvmBuilder.LoadFlat(mem, [0xf4], 0x200000, BootMode.Long);
        HvmBuilder.SetupBootCpu(mem, cpu, image);
        var s = cpu.GetSpecialRegisters();
        Assert.Equal(HvmLayout.BootPml4, s.Cr3);
        Assert.NotEqual(0UL, s.Efer & X86.EferLma);
        Assert.Equal(1, s.Cs.L);
        Assert.Equal(0x200000UL, cpu.GetRegisters().Rip);
        // 0x200000 is mapped by PD[1] of the first PDPT entry as a 2 MiB page onto itself.
        ulong pdpte = mem.ReadUInt64(HvmLayout.BootPdpt);
        ulong pde = mem.ReadUInt64((pdpte & X86.PteAddressMask) + 8);
        Assert.Equal(0x200000UL | X86.PtePresent | X86.PteRw | X86.PtePse, pde);
    }

    [Theory]
    [InlineData("short", "not an ELF image")]
    [InlineData("class", "neither 32- nor 64-bit")]
    [InlineData("phdrs", "program headers lie outside")]
    [InlineData("segment", "file data outside the image")]
    [InlineData("low", "does not fit in guest RAM above")]
    [InlineData("none", "no loadable segment")]
    public void MalformedElfIsRefusedWithAReason(string defect, string expected)
    {
        var elf = MinimalElf(0x100000, [0xf4]);
        switch (defect)
        {
            case "short": elf = elf[..20]; break;
            case "class": elf[4] = 7; break;
            case "phdrs": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(32), 0xfffffff0); break;
            case "segment": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(64 + 32), 0x10000000); break;
            case "low": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(64 + 24), 0x1000); break;
            case "none": BinaryPrimitives.WriteUInt32LittleEndian(elf.AsSpan(64), 4); break;
        }
        using var mem = new GuestMemory(4 << 20);
        var e = Assert.Throws<ImageFormatException>(() => HvmBuilder.LoadElf(mem, elf));
        Assert.Contains(expected, e.Message);
    }

    /// <summary>An ELF64 with one PT_LOAD segment holding <paramref name="code"/> at <paramref name="paddr"/>.</summary>
    internal static byte[] MinimalElf(ulong paddr, byte[] code)
    {
        var b = new byte[64 + 56 + code.Length];
        b[0] = 0x7f; b[1] = (byte)'E'; b[2] = (byte)'L'; b[3] = (byte)'F';
        b[4] = 2; b[5] = 1; b[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(16), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), 62);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(32), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(54), 56);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(56), 1);
        var ph = b.AsSpan(64);
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 1);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], 120);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)code.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], (ulong)code.Length + 16);
        code.CopyTo(b, 120);
        return b;
    }
}

internal static class RepoRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "XenSharp.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root from " + AppContext.BaseDirectory);
    }
}
