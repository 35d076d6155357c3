namespace XenSharp.Emu;

/// <summary>An architectural exception raised by the instruction being executed; caught by the run loop and delivered through the IDT.</summary>
internal sealed class GuestFault(int vector, uint errorCode, bool hasErrorCode) : Exception
{
    public int Vector { get; } = vector;
    public uint ErrorCode { get; } = errorCode;
    public bool HasErrorCode { get; } = hasErrorCode;

    public static GuestFault Gp(uint err = 0) => new(13, err, true);
    public static GuestFault Ud() => new(6, 0, false);
    public static GuestFault De() => new(0, 0, false);
    public static GuestFault Np(uint err) => new(11, err, true);
    public static GuestFault Ss(uint err) => new(12, err, true);
    public static GuestFault Pf(uint err) => new(14, err, true);
}

/// <summary>Unwinds an instruction that needs a value from the VMM (MMIO read); the instruction is replayed on the next Run.</summary>
internal sealed class MmioReadExit : Exception
{
    public static readonly MmioReadExit Instance = new();
}
