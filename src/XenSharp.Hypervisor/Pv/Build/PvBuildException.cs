namespace XenSharp.Hypervisor.Pv.Build;

/// <summary>
/// A kernel image or build request the PV domain builder refuses: malformed or unsupported image, bad notes,
/// or a domain too small for the layout. The message says what and where; images are untrusted input, so
/// every such problem surfaces as this exception rather than an index or overflow error from deep inside.
/// </summary>
public sealed class PvBuildException : Exception
{
    public PvBuildException(string message) : base(message) { }
    public PvBuildException(string message, Exception inner) : base(message, inner) { }
}
