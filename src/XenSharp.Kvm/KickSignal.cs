using System.Runtime.InteropServices;
using XenSharp.Accel;

namespace XenSharp.Kvm;

/// <summary>
/// The real-time signal that <see cref="KvmVcpu.Kick"/> sends to a vCPU thread blocked in KVM_RUN.
/// <para>
/// Managed code must not run in a signal handler, and the signal needs no work done: its only job is to make the
/// thread's pending-signal check in KVM_RUN fire so the ioctl returns EINTR. So the handler is a harmless libc
/// function (<c>getpid</c>, which ignores its argument and touches nothing), installed once per process with
/// sigaction and without SA_RESTART.
/// </para>
/// <para>
/// Choice of signal: glibc keeps signals 32 and 33 for itself (cancellation, setxid), so SIGRTMIN is 34; the .NET
/// runtime takes SIGRTMIN as its activation-injection signal (INJECT_ACTIVATION_SIGNAL in the PAL, used to suspend
/// threads for the GC); SIGRTMIN+1 and +2 are the ones other runtimes and libraries most often claim next. We take
/// SIGRTMIN+3 (signal 37 with glibc) unless something in the process already handles it, in which case the next
/// real-time signal whose disposition is still SIG_DFL is used. A tgkill that lands after the thread left KVM_RUN
/// only runs getpid.
/// </para>
/// </summary>
public static unsafe class KickSignal
{
    private static readonly object Gate = new();
    private static int _signal;
    [ThreadStatic] private static bool _unblockedOnThisThread;

    /// <summary>Offset from SIGRTMIN of the preferred signal.</summary>
    public const int PreferredOffset = 3;

    /// <summary>The signal number in use, installing the handler on first use.</summary>
    public static int Number
    {
        get
        {
            int s = Volatile.Read(ref _signal);
            return s != 0 ? s : Install();
        }
    }

    private static int Install()
    {
        lock (Gate)
        {
            if (_signal != 0) return _signal;
            nint handler = NativeLibrary.GetExport(NativeLibrary.Load("libc.so.6"), "getpid");
            int min = KvmSys.CurrentSigRtMin(), max = KvmSys.CurrentSigRtMax();
            for (int sig = min + PreferredOffset; sig <= max; sig++)
            {
                SigAction old;
                if (KvmSys.Sigaction(sig, null, &old) != 0) continue;
                if (old.Handler != KvmSys.SIG_DFL && old.Handler != handler) continue; // someone else's signal
                SigAction act = default;
                act.Handler = handler;
                act.Flags = 0; // no SA_RESTART: the point is to interrupt the ioctl
                Posix.Check(KvmSys.Sigaction(sig, &act, null), $"sigaction({sig})");
                Volatile.Write(ref _signal, sig);
                return sig;
            }
            throw new InvalidOperationException($"no free real-time signal between SIGRTMIN+{PreferredOffset} ({min + PreferredOffset}) and SIGRTMAX ({max}) for vCPU kicks");
        }
    }

    /// <summary>Makes sure the calling thread does not block the kick signal (once per thread).</summary>
    internal static void EnsureUnblockedOnCurrentThread()
    {
        if (_unblockedOnThisThread) return;
        SigSet set = default;
        set.Add(Number);
        KvmSys.PthreadSigmask(KvmSys.SIG_UNBLOCK, &set, null);
        _unblockedOnThisThread = true;
    }
}
