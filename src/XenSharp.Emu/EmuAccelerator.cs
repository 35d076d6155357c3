using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>A software x86-64 CPU: the accelerator for hosts without a usable /dev/kvm.</summary>
public sealed class EmuAccelerator : IAccelerator
{
    public string Name => "emu";
    public IVirtualMachine CreateVirtualMachine() => new EmuVirtualMachine();
    public void Dispose() { }

    // What this CPU executes. Leaf 1 EDX: FPU (x87 state; its arithmetic raises #UD), PSE, TSC, MSR, PAE, CX8, APIC
    // (the VMM's device), PGE, CMOV, PAT, CLFSH, MMX, FXSR, SSE, SSE2, HTT (topology). No x87 arithmetic.
    private const uint Leaf1Edx = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 9)
        | (1u << 13) | (1u << 15) | (1u << 16) | (1u << 19) | (1u << 23) | (1u << 24) | (1u << 25) | (1u << 26) | (1u << 28);
    // Leaf 1 ECX: CX16, MOVBE, POPCNT. No SSE3/SSSE3/SSE4.x, AES, PCLMUL, XSAVE/AVX, RDRAND, x2APIC, PCID.
    private const uint Leaf1Ecx = (1u << 13) | (1u << 22) | (1u << 23);
    // Leaf 7.0 EBX: BMI1, BMI2, ERMS, ADX, CLFLUSHOPT (see Bmi.cs, Strings.cs, Sse.cs).
    private const uint Leaf7Ebx = (1u << 3) | (1u << 8) | (1u << 9) | (1u << 19) | (1u << 23);
    // 0x80000001 ECX: LAHF/SAHF, LZCNT, PREFETCHW. EDX: AMD's copies of the leaf 1 bits above (0-17, 23, 24), SYSCALL, NX,
    // 1 GiB pages, RDTSCP, long mode.
    private const uint ExtEcx = (1u << 0) | (1u << 5) | (1u << 8);
    private const uint ExtEdx = (Leaf1Edx & 0x0183ffffu) | (1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29);

    /// <summary>
    /// Feature leaves are masked to what this CPU implements; descriptive leaves (vendor, cache, topology, brand, address
    /// sizes, invariant TSC) pass; any other leaf (power, PMU, XSAVE, trace...) reads as zero, since nothing behind it exists.
    /// </summary>
    public CpuidEntry FilterCpuid(CpuidEntry e)
    {
        if (e.Function is >= 0x40000000 and < 0x50000000) return e;
        CpuidEntry? supported = e.Function switch
        {
            1 => new CpuidEntry(1, 0, 0, 0, Leaf1Ecx, Leaf1Edx),
            7 => new CpuidEntry(7, e.Index, 0, e.Index == 0 ? Leaf7Ebx : 0, 0, 0),
            0x80000001 => new CpuidEntry(0x80000001, 0, 0, 0, ExtEcx, ExtEdx),
            0x80000007 => new CpuidEntry(0x80000007, 0, 0, 0, 0, 1u << 8), // invariant TSC: RDTSC reads the host's TSC
            0x80000008 => new CpuidEntry(0x80000008, 0, 0, 0, 0, 0),
            _ => null,
        };
        if (supported is not null) return CpuidFeatures.Intersect(e, supported);
        bool descriptive = e.Function is 0 or 2 or 4 or 0xb or 0x16 or 0x1f or 0x80000000 or 0x80000002 or 0x80000003
            or 0x80000004 or 0x80000005 or 0x80000006;
        return descriptive ? e : e with { Eax = 0, Ebx = 0, Ecx = 0, Edx = 0 };
    }
}

/// <summary>One guest-physical range backed by host memory.</summary>
internal sealed unsafe class MemorySlot
{
    public required int Id { get; init; }
    public required ulong Gpa { get; init; }
    public required ulong Length { get; init; }
    public required byte* Host { get; init; }
    public required bool ReadOnly { get; init; }
    /// <summary>Per-frame code generation words: odd = decoded code may be cached for the frame; a guest write bumps it.</summary>
    public required int* Gen { get; init; }
}

public sealed unsafe class EmuVirtualMachine : IVirtualMachine
{
    private readonly object _lock = new();
    private volatile MemorySlot[] _slots = [];
    private readonly List<nint> _genBlocks = [];
    private readonly List<EmuVcpu> _vcpus = [];
    private int _mapVersion;
    private bool _disposed;

    /// <summary>Serialises CMPXCHG16B: .NET has no 128-bit compare-exchange.</summary>
    internal readonly object Cas16Lock = new();

    internal int MapVersion => Volatile.Read(ref _mapVersion);

    public void MapMemory(int slot, ulong guestPhysical, GuestMemory memory, ulong offset, ulong length, bool readOnly = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((guestPhysical & 0xfff) != 0 || (offset & 0xfff) != 0 || (length & 0xfff) != 0 || length == 0)
            throw new ArgumentException($"slot {slot}: gpa 0x{guestPhysical:x}, offset 0x{offset:x} and length 0x{length:x} must be non-zero multiples of 4096");
        if (!memory.Contains(offset, length))
            throw new ArgumentException($"slot {slot}: [0x{offset:x}, +0x{length:x}) lies outside the guest memory of {memory.Size} bytes");
        lock (_lock)
        {
            var rest = _slots.Where(s => s.Id != slot).ToArray();
            foreach (var s in rest)
                if (guestPhysical < s.Gpa + s.Length && s.Gpa < guestPhysical + length)
                    throw new ArgumentException($"slot {slot} at 0x{guestPhysical:x} overlaps slot {s.Id} at 0x{s.Gpa:x}");
            nint gen = (nint)NativeMemory.AllocZeroed((nuint)(length >> 12), sizeof(int));
            _genBlocks.Add(gen); // freed only at Dispose: a running vCPU may still hold pointers into it
            var ns = new MemorySlot
            {
                Id = slot, Gpa = guestPhysical, Length = length, Host = (byte*)memory.HostAddress + offset,
                ReadOnly = readOnly, Gen = (int*)gen,
            };
            _slots = [.. rest, ns];
            Interlocked.Increment(ref _mapVersion);
        }
    }

    public void UnmapMemory(int slot)
    {
        lock (_lock)
        {
            _slots = _slots.Where(s => s.Id != slot).ToArray();
            Interlocked.Increment(ref _mapVersion);
        }
    }

    internal MemorySlot? FindSlot(ulong gpa)
    {
        var slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            var s = slots[i];
            if (gpa - s.Gpa < s.Length) return s;
        }
        return null;
    }

    /// <summary>Host pointer for guest-physical RAM, or null when nothing is mapped there.</summary>
    internal byte* PhysPtr(ulong gpa, int size)
    {
        var s = FindSlot(gpa);
        if (s is null || gpa - s.Gpa + (ulong)size > s.Length) return null;
        return s.Host + (gpa - s.Gpa);
    }

    public IVcpu CreateVcpu(int id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var v = new EmuVcpu(this, id);
        lock (_lock) _vcpus.Add(v);
        return v;
    }

    /// <summary>Drops every vCPU's decoded-instruction cache: call after the host wrote guest code while vCPUs run.</summary>
    public void InvalidateCodeCache()
    {
        lock (_lock)
            foreach (var v in _vcpus) v.InvalidateCodeCache();
    }

    public bool TryCreateInterruptController() => false;

    public void SetIrqLine(int irq, bool level) =>
        throw new NotSupportedException("the emu accelerator has no in-kernel interrupt controller; inject with IVcpu.InjectInterrupt");

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _slots = [];
            foreach (var g in _genBlocks) NativeMemory.Free((void*)g);
            _genBlocks.Clear();
        }
    }
}
