using XenSharp.Accel;

namespace XenSharp.Hypervisor.Pv;

/// <summary>A hypervisor-owned page the guest may map by machine frame number (shared_info, grant frames...).</summary>
public sealed record SpecialFrame(ulong Mfn, GuestMemory Memory, ulong Offset, bool Writable, string Name)
{
    public Span<byte> Page => Memory.Span(Offset, 4096);
}

/// <summary>
/// MFN → hypervisor page, for the frames above guest RAM that the guest maps with mmu_update /
/// update_va_mapping (the CPU half looks an MFN up here when it is not RAM). MFNs are handed out upwards from
/// <see cref="FirstMfn"/>, which lies above every frame the domain's RAM can ever occupy. Thread-safe.
/// </summary>
public sealed class SpecialFrames
{
    private readonly object _lock = new();
    private readonly Dictionary<ulong, SpecialFrame> _frames = new();
    private ulong _next;

    public SpecialFrames(ulong firstMfn)
    {
        FirstMfn = firstMfn;
        _next = firstMfn;
    }

    public ulong FirstMfn { get; }

    /// <summary>One past the highest MFN handed out so far (RAM and special frames are all below it).</summary>
    public ulong EndMfn { get { lock (_lock) return _next; } }

    /// <summary>Registers <paramref name="count"/> consecutive pages of <paramref name="memory"/> from <paramref name="offset"/>; returns the first MFN.</summary>
    public ulong Allocate(GuestMemory memory, ulong offset, int count, bool writable, string name)
    {
        if (count <= 0 || (offset & 0xfff) != 0 || !memory.Contains(offset, (ulong)count * 4096))
            throw new ArgumentException($"special frames '{name}': {count} page(s) at 0x{offset:x} do not fit their memory");
        lock (_lock)
        {
            ulong first = _next;
            for (int i = 0; i < count; i++)
                _frames[first + (ulong)i] = new SpecialFrame(first + (ulong)i, memory, offset + (ulong)i * 4096, writable, count == 1 ? name : $"{name}[{i}]");
            _next += (ulong)count;
            return first;
        }
    }

    public bool TryGet(ulong mfn, out SpecialFrame frame)
    {
        lock (_lock) return _frames.TryGetValue(mfn, out frame!);
    }

    public IReadOnlyList<SpecialFrame> All
    {
        get { lock (_lock) return _frames.Values.OrderBy(f => f.Mfn).ToArray(); }
    }
}
