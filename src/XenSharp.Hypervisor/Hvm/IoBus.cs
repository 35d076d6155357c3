namespace XenSharp.Hypervisor.Hvm;

/// <summary>A device on the port-I/O bus, answering for a range of ports.</summary>
public interface IPortDevice
{
    ulong Read(ushort port, int size);
    void Write(ushort port, int size, ulong value);
}

/// <summary>Port-I/O dispatch for an HVM domain. Ports no device claims read as all-ones and ignore writes, as on a PC.</summary>
public sealed class IoBus
{
    private readonly List<(ushort First, ushort Last, IPortDevice Device)> _ranges = new();

    public void Register(ushort first, ushort count, IPortDevice device)
    {
        ushort last = checked((ushort)(first + count - 1));
        if (_ranges.Any(r => first <= r.Last && r.First <= last))
            throw new InvalidOperationException($"ports 0x{first:x}-0x{last:x} overlap a registered device");
        _ranges.Add((first, last, device));
    }

    public IPortDevice? Find(ushort port)
    {
        foreach (var r in _ranges)
            if (port >= r.First && port <= r.Last) return r.Device;
        return null;
    }

    public ulong Read(ushort port, int size) => Find(port)?.Read(port, size) ?? (size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1);

    /// <summary>Returns false when no device claims the port.</summary>
    public bool Write(ushort port, int size, ulong value)
    {
        var d = Find(port);
        d?.Write(port, size, value);
        return d is not null;
    }
}
