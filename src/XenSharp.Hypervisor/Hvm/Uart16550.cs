namespace XenSharp.Hypervisor.Hvm;

/// <summary>
/// A 16550A-compatible UART as the HVM console (COM1 at 0x3f8). Transmit is immediate; the receive side
/// reads from the domain console's input queue. Enough of the register set for polled and interrupt-driven
/// drivers (Linux 8250, SeaBIOS, our test guests).
/// </summary>
public sealed class Uart16550 : IPortDevice
{
    private const byte LsrDataReady = 0x01, LsrThrEmpty = 0x20, LsrTransmitterEmpty = 0x40;
    private const byte IerReceiveData = 0x01, IerThrEmpty = 0x02;
    private const byte IirNoInterrupt = 0x01, IirThrEmpty = 0x02, IirReceiveData = 0x04, IirFifoEnabled = 0xc0;
    private const byte LcrDlab = 0x80;
    private const byte McrLoop = 0x10;

    private readonly ushort _base;
    private readonly DomainConsole _console;
    private readonly Action<bool>? _irq;
    private readonly object _lock = new();
    private byte _ier, _lcr, _mcr, _scr, _fcr, _dll = 12, _dlm;
    private bool _thrInterruptPending;

    public Uart16550(ushort basePort, DomainConsole console, Action<bool>? irqLine = null)
    {
        _base = basePort;
        _console = console;
        _irq = irqLine;
        _console.InputAvailable += UpdateInterrupt;
    }

    public ulong Read(ushort port, int size)
    {
        lock (_lock)
        {
            int reg = port - _base;
            bool dlab = (_lcr & LcrDlab) != 0;
            byte v = reg switch
            {
                0 when dlab => _dll,
                0 => _console.TryReadInput(out byte b) ? b : (byte)0,
                1 when dlab => _dlm,
                1 => _ier,
                2 => ReadIir(),
                3 => _lcr,
                4 => _mcr,
                5 => (byte)(LsrThrEmpty | LsrTransmitterEmpty | (_console.PendingInput > 0 ? LsrDataReady : 0)),
                6 => 0xb0, // DCD, DSR, CTS: a terminal is attached.
                7 => _scr,
                _ => 0xff,
            };
            UpdateInterruptLocked();
            return v;
        }
    }

    public void Write(ushort port, int size, ulong value)
    {
        byte v = (byte)value;
        lock (_lock)
        {
            int reg = port - _base;
            bool dlab = (_lcr & LcrDlab) != 0;
            switch (reg)
            {
                case 0 when dlab: _dll = v; break;
                case 0:
                    if ((_mcr & McrLoop) != 0) _console.WriteInput([v]);
                    else _console.WriteOutput([v]);
                    _thrInterruptPending = true;
                    break;
                case 1 when dlab: _dlm = v; break;
                case 1:
                    if ((v & IerThrEmpty) != 0 && (_ier & IerThrEmpty) == 0) _thrInterruptPending = true;
                    _ier = (byte)(v & 0x0f);
                    break;
                case 2: _fcr = v; break;
                case 3: _lcr = v; break;
                case 4: _mcr = (byte)(v & 0x1f); break;
                case 7: _scr = v; break;
            }
            UpdateInterruptLocked();
        }
    }

    private byte ReadIir()
    {
        byte fifo = (_fcr & 1) != 0 ? IirFifoEnabled : (byte)0;
        if ((_ier & IerReceiveData) != 0 && _console.PendingInput > 0) return (byte)(fifo | IirReceiveData);
        if ((_ier & IerThrEmpty) != 0 && _thrInterruptPending)
        {
            _thrInterruptPending = false; // Reading IIR acknowledges the THR-empty interrupt.
            return (byte)(fifo | IirThrEmpty);
        }
        return (byte)(fifo | IirNoInterrupt);
    }

    private void UpdateInterrupt()
    {
        lock (_lock) UpdateInterruptLocked();
    }

    private void UpdateInterruptLocked()
    {
        if (_irq is null) return;
        bool level = ((_ier & IerReceiveData) != 0 && _console.PendingInput > 0) || ((_ier & IerThrEmpty) != 0 && _thrInterruptPending);
        _irq(level);
    }
}
