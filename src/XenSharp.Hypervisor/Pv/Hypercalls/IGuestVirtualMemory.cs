using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// Guest-virtual memory of the vCPU making a hypercall, seen through its CURRENT page tables in guest-kernel
/// mode (hypercall arguments are kernel virtual addresses). The CPU half implements it by walking the
/// guest's page tables; the services half only copies arguments in once, validates them, acts and copies
/// results out. An access may span pages; every page must be present (and writable for writes).
/// Implementations must never touch host memory outside the domain's RAM or its special frames.
/// </summary>
public interface IGuestVirtualMemory
{
    /// <summary>Copies guest bytes at <paramref name="va"/> into <paramref name="destination"/>; false if any byte is not mapped.</summary>
    bool TryRead(ulong va, Span<byte> destination);

    /// <summary>Copies <paramref name="source"/> to guest <paramref name="va"/>; false if any byte is not mapped writable (a partial write may have happened).</summary>
    bool TryWrite(ulong va, ReadOnlySpan<byte> source);
}

/// <summary>A guest pointer that does not point at mapped guest memory: the hypercall fails with -EFAULT.</summary>
public sealed class GuestFaultException(ulong va, int length, bool write)
    : Exception($"guest {(write ? "write" : "read")} of {length} byte(s) at 0x{va:x} faulted")
{
    public ulong VirtualAddress { get; } = va;
    public bool IsWrite { get; } = write;
}

/// <summary>Throwing helpers over <see cref="IGuestVirtualMemory"/>: handlers let <see cref="GuestFaultException"/> become -EFAULT.</summary>
public static class GuestVirtualMemoryExtensions
{
    public static void Read(this IGuestVirtualMemory m, ulong va, Span<byte> destination)
    {
        if (!m.TryRead(va, destination)) throw new GuestFaultException(va, destination.Length, false);
    }

    public static void Write(this IGuestVirtualMemory m, ulong va, ReadOnlySpan<byte> source)
    {
        if (!m.TryWrite(va, source)) throw new GuestFaultException(va, source.Length, true);
    }

    public static T Read<T>(this IGuestVirtualMemory m, ulong va) where T : unmanaged
    {
        T value = default;
        m.Read(va, MemoryMarshal.AsBytes(new Span<T>(ref value)));
        return value;
    }

    public static void Write<T>(this IGuestVirtualMemory m, ulong va, in T value) where T : unmanaged
    {
        T copy = value;
        m.Write(va, MemoryMarshal.AsBytes(new ReadOnlySpan<T>(ref copy)));
    }

    public static uint ReadUInt32(this IGuestVirtualMemory m, ulong va) => m.Read<uint>(va);
    public static ulong ReadUInt64(this IGuestVirtualMemory m, ulong va) => m.Read<ulong>(va);
    public static ushort ReadUInt16(this IGuestVirtualMemory m, ulong va) => m.Read<ushort>(va);

    /// <summary>Size of T in bytes, for bounds arithmetic on guest arrays.</summary>
    public static int SizeOf<T>() where T : unmanaged => Unsafe.SizeOf<T>();
}

/// <summary>
/// A guest-virtual view where VA = base + guest-physical address over the domain's RAM (an identity or
/// offset direct map, as the PV domain builder's initial mapping is). For tests and early bring-up only:
/// the real implementation walks the guest's page tables.
/// </summary>
public sealed class LinearGuestVirtualMemory(GuestMemory memory, ulong virtualBase = 0) : IGuestVirtualMemory
{
    public GuestMemory Memory { get; } = memory;
    public ulong VirtualBase { get; } = virtualBase;

    private bool Translate(ulong va, int length, out ulong gpa)
    {
        gpa = va - VirtualBase;
        return va >= VirtualBase && Memory.Contains(gpa, (ulong)length);
    }

    public bool TryRead(ulong va, Span<byte> destination)
    {
        if (!Translate(va, destination.Length, out var gpa)) return false;
        Memory.Read(gpa, destination);
        return true;
    }

    public bool TryWrite(ulong va, ReadOnlySpan<byte> source)
    {
        if (!Translate(va, source.Length, out var gpa)) return false;
        Memory.Write(gpa, source);
        return true;
    }
}
