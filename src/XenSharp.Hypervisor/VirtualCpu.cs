using System.Diagnostics;
using XenSharp.Accel;

namespace XenSharp.Hypervisor;

/// <summary>
/// One vCPU of a domain: a dedicated host thread that runs the accelerator's vCPU and hands exits to the
/// domain's platform. A vCPU thread never awaits; it sleeps only on its own gates (pause, block).
/// </summary>
public sealed class VirtualCpu : IDisposable
{
    private readonly Domain _domain;
    private readonly object _gate = new();
    private Thread? _thread;
    private volatile bool _stop;
    private volatile bool _pauseRequested;
    private bool _parkedForPause;
    private bool _wakePending;
    private volatile int _tid;
    private long _exits;

    public int Id { get; }
    public IVcpu Cpu { get; }
    public Domain Domain => _domain;
    public VcpuRunState RunState { get; private set; } = VcpuRunState.Offline;
    public bool Online { get; internal set; }

    /// <summary>Whether the vCPU runs when the domain starts; others wait to be brought up (VCPUOP_up, INIT/SIPI).</summary>
    public bool StartsOnline { get; set; } = true;

    /// <summary>Whether the vCPU's thread was ever started (it came online at boot or by VCPUOP_up).</summary>
    public bool Started => _thread is not null;

    /// <summary>Host CPUs this vCPU may run on (xl.cfg cpus=, xl vcpu-pin); null = any.</summary>
    public IReadOnlyCollection<int>? HardAffinity { get; internal set; }
    public long ExitCount => Interlocked.Read(ref _exits);

    /// <summary>This vCPU's exits by reason.</summary>
    public ExitCounters Exits { get; } = new();

    /// <summary>Host thread id of the vCPU thread, for affinity and CPU-time accounting (0 before it starts).</summary>
    public int HostThreadId => _tid;

    internal VirtualCpu(Domain domain, int id, IVcpu cpu)
    {
        _domain = domain;
        Id = id;
        Cpu = cpu;
    }

    internal void Start()
    {
        _thread = new Thread(RunLoop) { IsBackground = true, Name = $"d{_domain.Id}v{Id}" };
        _thread.Start();
    }

    /// <summary>Asks the thread to park at its next exit; returns when it is parked or has stopped.</summary>
    internal bool RequestPause(TimeSpan timeout)
    {
        lock (_gate)
        {
            _pauseRequested = true;
            Monitor.PulseAll(_gate);
        }
        Cpu.Kick();
        var sw = Stopwatch.StartNew();
        lock (_gate)
        {
            while (!_parkedForPause && _thread is { IsAlive: true } && !_stop)
            {
                var left = timeout - sw.Elapsed;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(_gate, left);
                if (!_parkedForPause) Cpu.Kick();
            }
        }
        return true;
    }

    /// <summary>Marks the vCPU paused before its thread exists, so that it parks on its first loop.</summary>
    internal void RequestPauseNoWait()
    {
        lock (_gate) _pauseRequested = true;
    }

    internal void ReleasePause()
    {
        lock (_gate)
        {
            _pauseRequested = false;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Ends a block (or the next one): an event or interrupt arrived. Thread-safe.</summary>
    public void Wake()
    {
        lock (_gate)
        {
            _wakePending = true;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Interrupts guest execution so that <see cref="IDomainPlatform.BeforeEntry"/> runs soon. Thread-safe.</summary>
    public void Kick()
    {
        Wake();
        Cpu.Kick();
    }

    internal void Stop()
    {
        _stop = true;
        lock (_gate) Monitor.PulseAll(_gate);
        Cpu.Kick();
    }

    internal bool Join(TimeSpan timeout) => _thread is null || _thread.Join(timeout);

    /// <summary>CPU time this vCPU's thread has consumed, from the host scheduler's own accounting.</summary>
    public TimeSpan CpuTime
    {
        get
        {
            int tid = _tid;
            if (tid == 0) return _finalCpuTime;
            try
            {
                var text = File.ReadAllText($"/proc/self/task/{tid}/schedstat");
                int sp = text.IndexOf(' ');
                return TimeSpan.FromTicks(long.Parse(text.AsSpan(0, sp > 0 ? sp : text.Length)) / 100);
            }
            catch (IOException) { return _finalCpuTime; }
            catch (UnauthorizedAccessException) { return _finalCpuTime; }
        }
    }

    private TimeSpan _finalCpuTime;

    private void RunLoop()
    {
        _tid = Posix.gettid();
        Online = true;
        try
        {
            _domain.Hypervisor.Scheduler.OnVcpuThreadStarted(this);
            while (!_stop)
            {
                if (!WaitWhilePausedOrBlocked()) break;
                RunState = VcpuRunState.Running;
                _domain.Platform.BeforeEntry(this);
                var exit = Cpu.Run();
                Interlocked.Increment(ref _exits);
                Exits.Count(exit.Reason);
                if (exit.Reason == ExitReason.Interrupted) continue;
                var action = Dispatch(exit);
                if (action == ExitAction.Stop) break;
                if (action == ExitAction.Block)
                {
                    lock (_gate)
                    {
                        if (!_wakePending && !_domain.Platform.HasPendingWork(this)) RunState = VcpuRunState.Blocked;
                    }
                }
            }
        }
        catch (Exception e) when (e is not ThreadInterruptedException)
        {
            // A fault in emulation must take down this domain only, never the daemon.
            _domain.Crash($"vcpu{Id}: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            _finalCpuTime = CpuTime;
            _tid = 0;
            RunState = VcpuRunState.Offline;
            Online = false;
            lock (_gate) { _parkedForPause = false; Monitor.PulseAll(_gate); }
        }
    }

    private ExitAction Dispatch(in VcpuExit exit)
    {
        switch (exit.Reason)
        {
            case ExitReason.Shutdown:
                _domain.Crash($"vcpu{Id}: triple fault");
                return ExitAction.Stop;
            case ExitReason.InternalError:
                _domain.Crash($"vcpu{Id}: accelerator error: {exit.Detail}");
                return ExitAction.Stop;
            default:
                return _domain.Platform.HandleExit(this, exit);
        }
    }

    /// <summary>Parks while paused or blocked. Returns false when the vCPU must stop.</summary>
    private bool WaitWhilePausedOrBlocked()
    {
        lock (_gate)
        {
            while (true)
            {
                if (_stop) return false;
                if (_pauseRequested)
                {
                    _parkedForPause = true;
                    RunState = VcpuRunState.Runnable;
                    Monitor.PulseAll(_gate);
                    Monitor.Wait(_gate);
                    continue;
                }
                _parkedForPause = false;
                if (RunState == VcpuRunState.Blocked)
                {
                    if (_wakePending || _domain.Platform.HasPendingWork(this))
                    {
                        RunState = VcpuRunState.Runnable;
                    }
                    else
                    {
                        Monitor.Wait(_gate);
                        continue;
                    }
                }
                _wakePending = false;
                return true;
            }
        }
    }

    public void Dispose() => Cpu.Dispose();
}
