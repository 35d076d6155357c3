namespace XenSharp.Hypervisor.Pv.Abi;

/// <summary>
/// Names the C identifier in Xen's public headers that a constant, struct or struct field mirrors.
/// The ABI test compiles a C program against /usr/include/xen from these names and compares every
/// size, offset and value with the C# declaration, so a C# ABI item without this attribute is unchecked.
/// For a struct the name is the C type ("struct start_info"); for a field it is the member designator
/// ("console.domU.mfn"); for a constant it is the macro or enumerator.
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Struct, AllowMultiple = false)]
public sealed class XenNameAttribute(string name) : Attribute
{
    public string Name { get; } = name;

    /// <summary>
    /// A macro that older public headers lack together with this item (e.g. Debian 12 ships Xen 4.17's
    /// headers, which predate the console <c>connection</c> byte). The check only runs where the macro is defined.
    /// On a struct it guards the size check.
    /// </summary>
    public string? IfDefined { get; init; }

    /// <summary>On a struct: its C size includes a flexible tail (e.g. a ring's first entry), so only offsets are compared.</summary>
    public bool SkipSize { get; init; }
}
