using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Emu;

/// <summary>A software x86-64 CPU: the accelerator for hosts without a usable /dev/kvm.</summary>
public sealed class EmuAccelerator : IAccelerator
{
    public string Name => "emu";
    public IVirtualMachine CreateVirtualMachine() => new EmuVirtualMachine();
    public void Dispose() { }
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
