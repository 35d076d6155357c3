using System.Diagnostics;

namespace XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// Channel 2 of an i8254 PIT and the speaker/gate port 0x61, which Xen emulates for every PV domain (ports 0x42, 0x43
/// and 0x61 go to its pv_pit_handler). Linux calibrates the CPU against channel 2 at boot; with no counter behind the
/// ports (all ones) its quick calibration spins 50,000 times per step waiting for the count to move, each spin an exit.
/// Channels 0 and 1 have no port here (a PV domain's timer is Xen's), so only control words for channel 2 act.
/// </summary>
public sealed class PvPit
{
    public const double Hz = 1_193_182;
    private const int RwLatch = 0, RwLsb = 1, RwMsb = 2, RwWord = 3;

    private readonly Func<long> _clock;
    private readonly double _ticksPerClock;

    private int _mode, _rw = RwWord;
    private int _reload = 0x10000;     // the count written; 0 means 65536
    private long _loadedAt;            // clock value when counting (re)started
    private long _frozenTicks;         // ticks counted before the gate went low (modes 0 and 4 pause)
    private bool _counting, _gate, _speakerData, _nullCount = true, _outBeforeLoad = true;
    private bool _writeMsbNext, _readMsbNext;
    private byte _lsbWritten;
    private int? _latchedCount;
    private bool _latchedMsbNext;
    private byte? _latchedStatus;
    private readonly Lock _lock = new();

    /// <param name="clock">A monotonic clock in Stopwatch ticks (tests pass their own).</param>
    public PvPit(Func<long>? clock = null)
    {
        _clock = clock ?? Stopwatch.GetTimestamp;
        _ticksPerClock = Hz / Stopwatch.Frequency;
    }

    public static bool Handles(int port) => port is 0x42 or 0x43 or 0x61;

    public byte Read(int port)
    {
        lock (_lock)
        {
            long now = _clock();
            return port switch
            {
                0x42 => ReadCounter(now),
                0x61 => (byte)((_gate ? 1 : 0) | (_speakerData ? 2 : 0) | (RefreshToggle(now) ? 0x10 : 0) | (Out(now) ? 0x20 : 0)),
                _ => 0, // 0x43 is write-only; Xen answers 0
            };
        }
    }

    public void Write(int port, byte value)
    {
        lock (_lock)
        {
            long now = _clock();
            switch (port)
            {
                case 0x42: WriteCounter(value, now); break;
                case 0x43: Control(value, now); break;
                case 0x61: SetGate((value & 1) != 0, now); _speakerData = (value & 2) != 0; break;
            }
        }
    }

    private void Control(byte cw, long now)
    {
        int channel = cw >> 6;
        if (channel == 3)
        {
            // Read-back: bit 3 selects channel 2; bit 5 clear latches the count, bit 4 clear latches the status.
            if ((cw & 0x08) == 0) return;
            if ((cw & 0x10) == 0 && _latchedStatus is null) _latchedStatus = Status(now);
            if ((cw & 0x20) == 0) LatchCount(now);
            return;
        }
        if (channel != 2) return;
        int rw = (cw >> 4) & 3;
        if (rw == RwLatch) { LatchCount(now); return; }
        _rw = rw;
        _mode = (cw >> 1) & 7;
        if (_mode > 5) _mode -= 4; // 6 and 7 are 2 and 3
        _writeMsbNext = _readMsbNext = false;
        _latchedCount = null;
        _latchedStatus = null;
        _counting = false;
        _nullCount = true;
        _outBeforeLoad = _mode != 0; // mode 0 drives OUT low as soon as it is set
    }

    private void WriteCounter(byte value, long now)
    {
        int count;
        switch (_rw)
        {
            case RwLsb: count = value; break;
            case RwMsb: count = value << 8; break;
            default:
                if (!_writeMsbNext) { _lsbWritten = value; _writeMsbNext = true; if (_mode == 0) _counting = false; return; }
                _writeMsbNext = false;
                count = _lsbWritten | (value << 8);
                break;
        }
        _reload = count == 0 ? 0x10000 : count;
        _nullCount = false;
        // Modes 1 and 5 wait for a rising edge of the gate; the others start at once (counting pauses while the gate is low).
        if (_mode is 1 or 5) return;
        Start(now);
    }

    private void Start(long now)
    {
        _counting = true;
        _loadedAt = now;
        _frozenTicks = 0;
    }

    private void SetGate(bool gate, long now)
    {
        if (gate == _gate) return;
        if (!gate && _counting) _frozenTicks = Elapsed(now); // modes 0/4 pause; 2/3 restart on the next rising edge
        _gate = gate;
        if (!gate || !_counting && _nullCount) return;
        if (_mode is 1 or 2 or 3 or 5) Start(now);          // retrigger
        else { _loadedAt = now; }                           // resume from _frozenTicks
    }

    /// <summary>PIT ticks counted since the count was loaded, stopped while the gate is low.</summary>
    private long Elapsed(long now)
    {
        if (!_counting) return 0;
        if (!_gate) return _frozenTicks;
        return _frozenTicks + (long)((now - _loadedAt) * _ticksPerClock);
    }

    private int Count(long now)
    {
        if (!_counting) return _reload & 0xffff;
        long t = Elapsed(now);
        return _mode switch
        {
            2 => (int)(_reload - t % _reload),
            3 => (int)((_reload - (2 * t) % _reload) & ~1L),
            _ => (int)((_reload - t) & 0xffff), // 0, 1, 4, 5: down through zero, wrapping
        } & 0xffff;
    }

    private bool Out(long now)
    {
        if (!_counting) return _outBeforeLoad;
        long t = Elapsed(now);
        return _mode switch
        {
            0 or 1 => t >= _reload,
            2 => t % _reload != _reload - 1,
            3 => t % _reload < (_reload + 1) / 2,
            _ => t != _reload, // 4, 5: a one-tick pulse at terminal count
        };
    }

    private byte Status(long now) =>
        (byte)((Out(now) ? 0x80 : 0) | (_nullCount ? 0x40 : 0) | (_rw << 4) | (_mode << 1));

    private void LatchCount(long now)
    {
        if (_latchedCount is not null) return; // a second latch before the first is read is ignored
        _latchedCount = Count(now);
        _latchedMsbNext = _rw == RwMsb;
    }

    private byte ReadCounter(long now)
    {
        if (_latchedStatus is { } status) { _latchedStatus = null; return status; }
        if (_latchedCount is { } latched)
        {
            byte b = _latchedMsbNext ? (byte)(latched >> 8) : (byte)latched;
            if (_rw == RwWord && !_latchedMsbNext) _latchedMsbNext = true;
            else _latchedCount = null;
            return b;
        }
        int count = Count(now);
        bool msb = _rw == RwMsb || (_rw == RwWord && _readMsbNext);
        if (_rw == RwWord) _readMsbNext = !_readMsbNext;
        return msb ? (byte)(count >> 8) : (byte)count;
    }

    /// <summary>Port 0x61 bit 4 toggles with the DRAM refresh cycle, about every 15 µs; some delay loops watch it.</summary>
    private bool RefreshToggle(long now) => ((long)(now * (1e6 / Stopwatch.Frequency) / 15.085) & 1) != 0;
}
