using System.Buffers.Binary;
using XenSharp.Accel;

namespace XenSharp.Hypervisor.Hvm;

public enum BootMode { Real, Protected, Long }

/// <summary>A loaded HVM image: where execution starts and in which CPU mode.</summary>
public sealed record HvmImage(ulong Entry, BootMode Mode, ulong LowestAddress, ulong HighestAddress);

/// <summary>
/// Builds a minimal HVM domain: loads an ELF or flat image into guest RAM, puts the boot CPU in the mode
/// the image needs (with identity page tables for long mode), and attaches the HVM platform devices.
/// </summary>
public static class HvmBuilder
{
    /// <summary>Loads an ELF (64-bit → long mode, 32-bit → protected mode) by its physical load addresses.</summary>
    public static HvmImage LoadElf(GuestMemory memory, ReadOnlySpan<byte> image)
    {
        if (image.Length < 52 || !IsElf(image))
            throw new ImageFormatException("not an ELF image (bad magic)");
        bool is64 = image[4] == 2;
        if (image[4] is not (1 or 2)) throw new ImageFormatException($"ELF class {image[4]} is neither 32- nor 64-bit");
        if (image[5] != 1) throw new ImageFormatException("ELF image is not little-endian");
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(image[18..]);
        if (machine != (is64 ? 62 : 3)) throw new ImageFormatException($"ELF machine {machine} is not x86");

        ulong entry = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(image[24..]) : BinaryPrimitives.ReadUInt32LittleEndian(image[24..]);
        ulong phoff = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(image[32..]) : BinaryPrimitives.ReadUInt32LittleEndian(image[28..]);
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[(is64 ? 54 : 42)..]);
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[(is64 ? 56 : 44)..]);
        if (phentsize < (is64 ? 56 : 32) || phoff > (ulong)image.Length || (ulong)phnum * (ulong)phentsize > (ulong)image.Length - phoff)
            throw new ImageFormatException("ELF program headers lie outside the image");

        ulong low = ulong.MaxValue, high = 0;
        for (int i = 0; i < phnum; i++)
        {
            var ph = image.Slice((int)phoff + i * phentsize, phentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != 1) continue; // PT_LOAD only
            ulong offset, paddr, filesz, memsz;
            if (is64)
            {
                offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
                paddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[24..]);
                filesz = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
                memsz = BinaryPrimitives.ReadUInt64LittleEndian(ph[40..]);
            }
            else
            {
                offset = BinaryPrimitives.ReadUInt32LittleEndian(ph[4..]);
                paddr = BinaryPrimitives.ReadUInt32LittleEndian(ph[12..]);
                filesz = BinaryPrimitives.ReadUInt32LittleEndian(ph[16..]);
                memsz = BinaryPrimitives.ReadUInt32LittleEndian(ph[20..]);
            }
            if (filesz > memsz || offset > (ulong)image.Length || filesz > (ulong)image.Length - offset)
                throw new ImageFormatException($"ELF segment {i} has file data outside the image");
            if (paddr < HvmLayout.LowestImageAddress || !memory.Contains(paddr, memsz))
                throw new ImageFormatException($"ELF segment {i} at 0x{paddr:x}+0x{memsz:x} does not fit in guest RAM above 0x{HvmLayout.LowestImageAddress:x} (guest has {memory.Size >> 20} MiB)");
            memory.Write(paddr, image.Slice((int)offset, (int)filesz));
            memory.Span(paddr + filesz, (int)(memsz - filesz)).Clear();
            low = Math.Min(low, paddr);
            high = Math.Max(high, paddr + memsz);
        }
        if (high == 0) throw new ImageFormatException("ELF image has no loadable segment");
        return new HvmImage(entry, is64 ? BootMode.Long : BootMode.Protected, low, high);
    }

    private static ReadOnlySpan<byte> ElfMagic => [0x7f, (byte)'E', (byte)'L', (byte)'F'];

    public static bool IsElf(ReadOnlySpan<byte> image) => image.Length >= 4 && image[..4].SequenceEqual(ElfMagic);

    /// <summary>Copies a flat binary to <paramref name="address"/>; it starts at its first byte.</summary>
    public static HvmImage LoadFlat(GuestMemory memory, ReadOnlySpan<byte> image, ulong address, BootMode mode)
    {
        if (image.IsEmpty) throw new ImageFormatException("image is empty");
        if (address < HvmLayout.LowestImageAddress && mode != BootMode.Real)
            throw new ImageFormatException($"load address 0x{address:x} is below 0x{HvmLayout.LowestImageAddress:x}, where the boot tables live");
        if (!memory.Contains(address, (ulong)image.Length))
            throw new ImageFormatException($"image of {image.Length} bytes at 0x{address:x} does not fit in {memory.Size >> 20} MiB of guest RAM");
        memory.Write(address, image);
        return new HvmImage(address, mode, address, address + (ulong)image.Length);
    }

    /// <summary>Sets the boot vCPU's registers for the image's mode; for long mode, writes the GDT and identity page tables.</summary>
    public static void SetupBootCpu(GuestMemory memory, IVcpu cpu, HvmImage image)
    {
        var sregs = cpu.GetSpecialRegisters();
        var regs = new VcpuRegisters { Rip = image.Entry, Rflags = X86.RflagsReserved1 };
        switch (image.Mode)
        {
            case BootMode.Real:
            {
                // CS:IP = (entry >> 4):(entry & 0xf) so that any entry below 1 MiB is reachable.
                var cs = RealSegment((ushort)(image.Entry >> 4));
                sregs.Cs = cs;
                sregs.Ds = sregs.Es = sregs.Fs = sregs.Gs = sregs.Ss = RealSegment(0);
                regs.Rip = image.Entry & 0xf;
                regs.Rsp = 0x7000;
                sregs.Cr0 = X86.Cr0Et;
                break;
            }
            case BootMode.Protected:
            case BootMode.Long:
            {
                WriteGdt(memory);
                sregs.Gdt = new DescriptorTableRegister { Base = HvmLayout.BootGdt, Limit = 4 * 8 - 1 };
                sregs.Idt = new DescriptorTableRegister { Base = 0, Limit = 0 };
                var data = SegmentRegister.Data(HvmLayout.DataSelector, 0);
                sregs.Ds = sregs.Es = sregs.Fs = sregs.Gs = sregs.Ss = data;
                sregs.Tr = new SegmentRegister { Type = 0xb, Present = 1, Limit = 0x67 };
                sregs.Ldt = new SegmentRegister { Type = 0x2, Present = 1, Limit = 0xffff, Unusable = 1 };
                regs.Rsp = HvmLayout.BootStackTop;
                if (image.Mode == BootMode.Long)
                {
                    WriteIdentityPageTables(memory);
                    sregs.Cs = SegmentRegister.Code64(HvmLayout.Code64Selector, 0);
                    sregs.Cr3 = HvmLayout.BootPml4;
                    sregs.Cr4 = X86.Cr4Pae | X86.Cr4Osfxsr | X86.Cr4Osxmmexcpt;
                    sregs.Cr0 = X86.Cr0Pe | X86.Cr0Mp | X86.Cr0Et | X86.Cr0Ne | X86.Cr0Wp | X86.Cr0Pg;
                    sregs.Efer = X86.EferLme | X86.EferLma | X86.EferSce;
                }
                else
                {
                    sregs.Cs = new SegmentRegister { Selector = HvmLayout.Code32Selector, Limit = 0xffffffff, Type = 0xb, Present = 1, S = 1, Db = 1, G = 1 };
                    sregs.Cr0 = X86.Cr0Pe | X86.Cr0Et | X86.Cr0Ne;
                }
                break;
            }
        }
        cpu.SetSpecialRegisters(sregs);
        cpu.SetRegisters(regs);
    }

    private static SegmentRegister RealSegment(ushort selector) => new()
    {
        Selector = selector, Base = (ulong)selector << 4, Limit = 0xffff, Type = 0x3, Present = 1, S = 1,
    };

    private static void WriteGdt(GuestMemory memory)
    {
        memory.WriteUInt64(HvmLayout.BootGdt + 0x00, 0);
        memory.WriteUInt64(HvmLayout.BootGdt + HvmLayout.Code64Selector, 0x00af9b000000ffff);
        memory.WriteUInt64(HvmLayout.BootGdt + HvmLayout.DataSelector, 0x00cf93000000ffff);
        memory.WriteUInt64(HvmLayout.BootGdt + HvmLayout.Code32Selector, 0x00cf9b000000ffff);
    }

    private static void WriteIdentityPageTables(GuestMemory memory)
    {
        const ulong table = X86.PtePresent | X86.PteRw;
        memory.Span(HvmLayout.BootPml4, 4096).Clear();
        memory.Span(HvmLayout.BootPdpt, 4096).Clear();
        memory.WriteUInt64(HvmLayout.BootPml4, HvmLayout.BootPdpt | table);
        for (ulong i = 0; i < 4; i++)
        {
            ulong pd = HvmLayout.BootPageDirectories + i * 4096;
            memory.WriteUInt64(HvmLayout.BootPdpt + i * 8, pd | table);
            for (ulong j = 0; j < 512; j++)
                memory.WriteUInt64(pd + j * 8, ((i << 30) | (j << 21)) | table | X86.PtePse);
        }
    }
}

public sealed class ImageFormatException(string message) : Exception(message);
