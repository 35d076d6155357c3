namespace XenSharp.Accel;

/// <summary>Why <see cref="IVcpu.Run"/> returned.</summary>
public enum ExitReason
{
    /// <summary>Port I/O: <see cref="VcpuExit.Address"/> is the port.</summary>
    Io,
    /// <summary>An access to guest-physical memory with nothing behind it.</summary>
    Mmio,
    /// <summary>The guest executed HLT with interrupts it cannot take.</summary>
    Halt,
    /// <summary>Triple fault or an equivalent unrecoverable CPU state.</summary>
    Shutdown,
    /// <summary><see cref="IVcpu.Kick"/> (or a signal) interrupted the run before or during guest execution.</summary>
    Interrupted,
    /// <summary>The back end could not enter or continue the guest; <see cref="VcpuExit.Detail"/> says why.</summary>
    InternalError,
    /// <summary>The guest asked for a system event (reset, shutdown) through the back end's own mechanism.</summary>
    SystemEvent,
}

/// <summary>
/// One exit from guest execution. For an I/O or MMIO read, the VMM answers with
/// <see cref="IVcpu.CompleteRead"/> before the next <see cref="IVcpu.Run"/>.
/// </summary>
public readonly record struct VcpuExit(ExitReason Reason, ulong Address = 0, int Size = 0, bool IsWrite = false, ulong Data = 0, string? Detail = null)
{
    public override string ToString() => Reason switch
    {
        ExitReason.Io => $"io {(IsWrite ? "out" : "in")} port 0x{Address:x} size {Size}" + (IsWrite ? $" data 0x{Data:x}" : ""),
        ExitReason.Mmio => $"mmio {(IsWrite ? "write" : "read")} 0x{Address:x} size {Size}" + (IsWrite ? $" data 0x{Data:x}" : ""),
        _ => Detail is null ? Reason.ToString() : $"{Reason}: {Detail}",
    };
}
