namespace XenSharp.Hypervisor.Hvm;

/// <summary>
/// How a minimal HVM guest without ACPI powers off, reboots and learns of a power-button press.
/// <list type="bullet">
/// <item>Port 0x604, 16-bit write with SLP_EN (bit 13): power off. This is where QEMU's PC machines put the ACPI PM1a
/// control register, so guests written for them work unchanged.</item>
/// <item>Port 0x64 (i8042 command), write 0xFE: pulse the reset line: reboot.</item>
/// <item>Port 0x606, read: XenSharp's power-button latch: 0 nothing, 1 power-off requested, 2 reboot requested.
/// The read clears it. It is how <c>xl shutdown</c> reaches a guest with no PV drivers and no ACPI.</item>
/// </list>
/// </summary>
public sealed class PowerControl : IPortDevice
{
    public const ushort Pm1aControlPort = 0x604;
    public const ushort PowerButtonPort = 0x606;
    public const ushort I8042DataPort = 0x60;
    public const ushort I8042CommandPort = 0x64;
    private const ulong SlpEn = 1 << 13;

    private readonly Action<ShutdownReason> _shutdown;
    private int _button;

    public PowerControl(Action<ShutdownReason> shutdown) => _shutdown = shutdown;

    /// <summary>Raised when the button is pressed, so a halted vCPU wakes to see it.</summary>
    public event Action? ButtonPressed;

    public bool IsButtonLatched => Volatile.Read(ref _button) != 0;

    /// <summary>Presses the virtual power button: the guest sees it at its next poll.</summary>
    public void PressButton(ShutdownReason reason)
    {
        Volatile.Write(ref _button, reason == ShutdownReason.Reboot ? 2 : 1);
        ButtonPressed?.Invoke();
    }

    public ulong Read(ushort port, int size) => port switch
    {
        PowerButtonPort => (ulong)Interlocked.Exchange(ref _button, 0),
        I8042CommandPort => 0, // Status: output and input buffers empty.
        I8042DataPort => 0,
        _ => 0,
    };

    public void Write(ushort port, int size, ulong value)
    {
        switch (port)
        {
            case Pm1aControlPort when (value & SlpEn) != 0:
                _shutdown(ShutdownReason.Poweroff);
                break;
            case I8042CommandPort when (value & 0xff) == 0xfe:
                _shutdown(ShutdownReason.Reboot);
                break;
        }
    }
}
