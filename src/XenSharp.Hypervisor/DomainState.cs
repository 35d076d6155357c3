namespace XenSharp.Hypervisor;

public enum DomainType { Pv, Pvh, Hvm }

/// <summary>Why a domain stopped running, with Xen's numbering (SHUTDOWN_* in public/sched.h).</summary>
public enum ShutdownReason
{
    Poweroff = 0,
    Reboot = 1,
    Suspend = 2,
    Crash = 3,
    Watchdog = 4,
    SoftReset = 5,
}

/// <summary>What a vCPU is doing, in the terms of Xen's runstate (public/vcpu.h: RUNSTATE_*).</summary>
public enum VcpuRunState
{
    Running = 0,
    Runnable = 1,
    Blocked = 2,
    Offline = 3,
}
