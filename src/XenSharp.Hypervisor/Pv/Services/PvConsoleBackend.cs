using System.Runtime.InteropServices;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Pv.Services;

/// <summary>
/// The PV console ring backend (what xenconsoled does), for the ring page at start_info.console.domU.mfn:
/// drains out[] into <see cref="Domain.Console"/>, feeds <see cref="DomainConsole"/> input into in[], and
/// notifies over the console event channel. Every index comes from the guest and is checked: a ring whose
/// producer runs more than the ring size ahead of the consumer is broken and is no longer served.
/// </summary>
public sealed class PvConsoleBackend : IDisposable
{
    private const ulong InOffset = 0, OutOffset = 1024, InCons = 3072, InProd = 3076, OutCons = 3080, OutProd = 3084, ConnectionOffset = 3088;
    private const uint InSize = 1024, OutSize = 2048;

    private readonly PvDomainState _d;
    private readonly object _lock = new();
    private readonly ulong _ring;
    private readonly Dom0Channel _channel;
    private volatile bool _broken;
    private bool _disposed;

    /// <summary>Serves the ring at guest frame <paramref name="ringPfn"/>, binding dom0's end of guest port <paramref name="guestPort"/> (allocated unbound for dom0).</summary>
    public PvConsoleBackend(PvDomainState domainState, ulong ringPfn, uint guestPort)
    {
        if (!domainState.IsPopulatedRam(ringPfn)) throw new ArgumentException($"console ring frame 0x{ringPfn:x} is not guest RAM");
        _d = domainState;
        _ring = ringPfn << 12;
        _channel = domainState.Events.BindInterdomainFromDom0(guestPort, _ => Service());
        _d.Domain.Memory.WriteByte(_ring + ConnectionOffset, ConsoleConnection.Connected);
        _d.Domain.Console.InputAvailable += Service;
        domainState.ConsoleBackend = this;
    }

    public bool Broken => _broken;
    public Dom0Channel Channel => _channel;

    private ref uint Index(ulong offset) => ref MemoryMarshal.Cast<byte, uint>(_d.Domain.Memory.Span(_ring + offset, 4))[0];

    /// <summary>Moves bytes both ways and notifies the guest if anything moved. Called on guest send, on SCHEDOP_yield and on input.</summary>
    public void Service()
    {
        try
        {
            ServiceCore();
        }
        catch (ObjectDisposedException)
        {
            // The domain is being destroyed.
        }
    }

    private void ServiceCore()
    {
        bool notify = false;
        lock (_lock)
        {
            if (_broken || _disposed) return;
            var mem = _d.Domain.Memory;

            uint outProd = Volatile.Read(ref Index(OutProd));
            uint outCons = Volatile.Read(ref Index(OutCons));
            uint pending = outProd - outCons;
            if (pending > OutSize)
            {
                Break($"out_prod {outProd} - out_cons {outCons} > {OutSize}");
                return;
            }
            if (pending > 0)
            {
                Interlocked.MemoryBarrier(); // Read the data after the producer index.
                var buf = new byte[pending];
                for (uint i = 0; i < pending; i++) buf[i] = mem.ReadByte(_ring + OutOffset + ((outCons + i) & (OutSize - 1)));
                Interlocked.MemoryBarrier();
                Volatile.Write(ref Index(OutCons), outProd);
                _d.Domain.Console.WriteOutput(buf);
                notify = true;
            }

            uint inProd = Volatile.Read(ref Index(InProd));
            uint inCons = Volatile.Read(ref Index(InCons));
            if (inProd - inCons > InSize)
            {
                Break($"in_prod {inProd} - in_cons {inCons} > {InSize}");
                return;
            }
            bool wrote = false;
            while (inProd - inCons < InSize && _d.Domain.Console.TryReadInput(out byte b))
            {
                mem.WriteByte(_ring + InOffset + (inProd & (InSize - 1)), b);
                inProd++;
                wrote = true;
            }
            if (wrote)
            {
                Interlocked.MemoryBarrier(); // Data before the producer index.
                Volatile.Write(ref Index(InProd), inProd);
                notify = true;
            }
        }
        if (notify) _channel.Notify();
    }

    private void Break(string why)
    {
        _broken = true;
        _d.LogOnce("console-ring-broken", $"console ring broken ({why}); no longer served");
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _d.Domain.Console.InputAvailable -= Service;
        _channel.Close();
    }
}
