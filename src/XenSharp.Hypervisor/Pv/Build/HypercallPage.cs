using System.Buffers.Binary;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Build;

/// <summary>
/// The hypercall page of a 64-bit PV guest whose kernel runs in ring 3, as Xen writes it: 128 stubs of 32 bytes,
/// stub i = push rcx; push r11; mov eax, i; syscall; pop r11; pop rcx; ret. The iret stub (23) also pushes rax and
/// never returns: the hypervisor consumes the iret frame. Unused bytes are int3.
/// </summary>
public static class HypercallPage
{
    public const int StubSize = 32;

    public static void Write(Span<byte> page)
    {
        if (page.Length != 4096) throw new ArgumentException("a hypercall page is 4096 bytes", nameof(page));
        page.Fill(0xCC);
        for (int i = 0; i < Hypercall.PageStubCount; i++)
        {
            var stub = page.Slice(i * StubSize, StubSize);
            if (i == Hypercall.Iret)
            {
                ReadOnlySpan<byte> head = [0x51, 0x41, 0x53, 0x50, 0xB8]; // push rcx; push r11; push rax; mov eax, imm32
                head.CopyTo(stub);
                BinaryPrimitives.WriteInt32LittleEndian(stub[5..], i);
                stub[9] = 0x0F; stub[10] = 0x05;                          // syscall
                continue;
            }
            ReadOnlySpan<byte> prologue = [0x51, 0x41, 0x53, 0xB8];       // push rcx; push r11; mov eax, imm32
            prologue.CopyTo(stub);
            BinaryPrimitives.WriteInt32LittleEndian(stub[4..], i);
            ReadOnlySpan<byte> tail = [0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3]; // syscall; pop r11; pop rcx; ret
            tail.CopyTo(stub[8..]);
        }
    }
}
