namespace XenSharp.Hypervisor;

/// <summary>
/// The Xen version XenSharp reports to guests (XENVER_version) and users (xl info). It names the interface
/// level we implement, with our own extra string so nobody mistakes us for Xen itself.
/// </summary>
public static class XenVersion
{
    public const int Major = 4;
    public const int Minor = 17;
    public const string Extra = ".0-xensharp";
    public const string Capabilities = "xen-3.0-x86_64";
    public static string Full => $"{Major}.{Minor}{Extra}";
}
