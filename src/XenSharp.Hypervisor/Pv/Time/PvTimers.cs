namespace XenSharp.Hypervisor.Pv;

/// <summary>
/// A domain's vCPU timers (singleshot, periodic, poll timeout), served by ONE thread per domain that sleeps
/// until the earliest deadline. Firing a singleshot or periodic timer raises VIRQ_TIMER on its vCPU; a poll
/// timeout wakes the polling vCPU. Deadlines are Xen system time (ns since the domain started); 0 means none.
/// </summary>
public sealed class PvTimers : IDisposable
{
    internal readonly object Lock = new();
    private readonly PvDomainState _d;
    private Thread? _thread;
    private bool _stop;

    internal PvTimers(PvDomainState d)
    {
        _d = d;
    }

    internal void Start()
    {
        lock (Lock) EnsureThreadLocked();
    }

    private void EnsureThreadLocked()
    {
        if (_thread is not null || _stop) return;
        _thread = new Thread(Run) { IsBackground = true, Name = $"d{_d.DomainId}-timers" };
        _thread.Start();
    }

    /// <summary>Sets (deadline ≠ 0) or stops (0) the singleshot timer of <paramref name="v"/>.</summary>
    public void SetSingleshot(PvVcpuState v, ulong deadlineNs)
    {
        lock (Lock)
        {
            v.SingleshotDeadlineNs = deadlineNs;
            Changed();
        }
    }

    /// <summary>Sets the periodic timer (period ≠ 0, first expiry one period from now) or stops it (0).</summary>
    public void SetPeriodic(PvVcpuState v, ulong periodNs)
    {
        lock (Lock)
        {
            v.PeriodicPeriodNs = periodNs;
            v.PeriodicNextNs = periodNs == 0 ? 0 : _d.Clock.SystemTimeNs() + periodNs;
            Changed();
        }
    }

    internal void SetPollDeadline(PvVcpuState v, ulong deadlineNs)
    {
        lock (Lock)
        {
            v.PollDeadlineNs = deadlineNs;
            Changed();
        }
    }

    private void Changed()
    {
        EnsureThreadLocked();
        Monitor.PulseAll(Lock);
    }

    /// <summary>Fires whatever has expired for <paramref name="v"/> now (also called before each guest entry).</summary>
    public void RunExpired(PvVcpuState v) => RunExpired(v, _d.Clock.SystemTimeNs());

    private void RunExpired(PvVcpuState v, ulong now)
    {
        bool fireTimer = false, pollTimeout = false;
        lock (Lock)
        {
            if (v.SingleshotDeadlineNs != 0 && v.SingleshotDeadlineNs <= now)
            {
                v.SingleshotDeadlineNs = 0;
                fireTimer = true;
            }
            if (v.PeriodicPeriodNs != 0 && v.PeriodicNextNs != 0 && v.PeriodicNextNs <= now)
            {
                ulong next = v.PeriodicNextNs + v.PeriodicPeriodNs;
                if (next <= now) next = now + v.PeriodicPeriodNs; // Missed ticks are not replayed.
                v.PeriodicNextNs = next;
                fireTimer = true;
            }
            if (v.PollDeadlineNs != 0 && v.PollDeadlineNs <= now)
            {
                v.PollDeadlineNs = 0;
                pollTimeout = true;
            }
        }
        if (fireTimer && !v.Down) _d.Events.RaiseVirq(Abi.Virq.Timer, v.Id);
        if (pollTimeout) v.PollTimeout();
    }

    private void Run()
    {
        while (true)
        {
            ulong now = _d.Clock.SystemTimeNs();
            try
            {
                foreach (var v in _d.AllVcpus) RunExpired(v, now);
            }
            catch (Exception e)
            {
                // Never let a timer take the host process down: the domain is going away or something is badly wrong with it.
                lock (Lock) if (_stop) return;
                _d.LogOnce("timer-thread-failure", $"timer delivery failed: {e.GetType().Name}: {e.Message}");
                Thread.Sleep(10);
            }
            lock (Lock)
            {
                if (_stop) return;
                ulong earliest = ulong.MaxValue;
                foreach (var v in _d.AllVcpus)
                {
                    if (v.SingleshotDeadlineNs != 0) earliest = Math.Min(earliest, v.SingleshotDeadlineNs);
                    if (v.PeriodicPeriodNs != 0 && v.PeriodicNextNs != 0) earliest = Math.Min(earliest, v.PeriodicNextNs);
                    if (v.PollDeadlineNs != 0) earliest = Math.Min(earliest, v.PollDeadlineNs);
                }
                now = _d.Clock.SystemTimeNs();
                if (earliest <= now) continue;
                if (earliest == ulong.MaxValue)
                {
                    Monitor.Wait(Lock);
                }
                else
                {
                    // Round up to whole milliseconds, at most a minute at a time.
                    ulong waitNs = Math.Min(earliest - now, 60_000_000_000UL);
                    Monitor.Wait(Lock, TimeSpan.FromMilliseconds(Math.Ceiling(waitNs / 1e6)));
                }
            }
        }
    }

    public void Dispose()
    {
        Thread? t;
        lock (Lock)
        {
            _stop = true;
            Monitor.PulseAll(Lock);
            t = _thread;
        }
        t?.Join(TimeSpan.FromSeconds(5));
    }
}
