using System.Buffers.Binary;
using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("XenSharp.Dom0.Tests")]

namespace XenSharp.Dom0.Xenstore;

/// <summary>enum xsd_sockmsg_type from io/xs_wire.h.</summary>
public enum XsMessageType : uint
{
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    // 20 was XS_RESTRICT, removed: answered with ENOSYS like any unknown type.
    ResetWatches = 21,
    DirectoryPart = 22,
    GetFeature = 23,
    SetFeature = 24,
    GetQuota = 25,
    SetQuota = 26,
    Invalid = 0xffff,
}

/// <summary>The errno values xenstored may put on the wire (xsd_errors), transmitted by name.</summary>
public enum XsErrno
{
    EINVAL, EACCES, EEXIST, EISDIR, ENOENT, ENOMEM, ENOSPC, EIO, ENOTEMPTY, ENOSYS, EROFS, EBUSY, EAGAIN, EISCONN, E2BIG, EPERM,
}

/// <summary>A request failed with an errno that becomes an XS_ERROR reply.</summary>
public sealed class XenstoreException(XsErrno error, string? detail = null)
    : Exception(detail is null ? error.ToString() : $"{error}: {detail}")
{
    public XsErrno Error { get; } = error;
}

/// <summary>struct xsd_sockmsg: the 16-byte little-endian header in front of every message.</summary>
public readonly record struct XsHeader(XsMessageType Type, uint ReqId, uint TxId, uint Length)
{
    public const int Size = 16;

    public static XsHeader Parse(ReadOnlySpan<byte> b) => new(
        (XsMessageType)BinaryPrimitives.ReadUInt32LittleEndian(b),
        BinaryPrimitives.ReadUInt32LittleEndian(b[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[12..]));

    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)Type);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], ReqId);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], TxId);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], Length);
    }
}

public static class XsWire
{
    /// <summary>XENSTORE_PAYLOAD_MAX: a longer payload from a client kills its connection.</summary>
    public const int PayloadMax = 4096;
    public const int AbsPathMax = 3072;
    public const int RelPathMax = 2048;

    public const uint FeatureReconnection = 1;
    public const uint FeatureError = 2;
    public const uint FeatureWatchDepth = 4;
    public const uint FeatureDomidAny = 8;
    /// <summary>What this xenstored offers (as C xenstored: error field, watch depth, DOMID_ANY; no reconnection).</summary>
    public const uint SupportedFeatures = FeatureError | FeatureWatchDepth | FeatureDomidAny;

    public const uint ErrorNone = 0, ErrorComm = 1, ErrorRingIdx = 2, ErrorProto = 3;

    public const ushort DomidSelf = 0x7FF0;
    public const ushort DomidInvalid = 0x7FF4;
    public const ushort DomidAny = 0x7FF5;

    /// <summary>Header plus payload as one message.</summary>
    public static byte[] Build(XsMessageType type, uint reqId, uint txId, ReadOnlySpan<byte> payload)
    {
        var m = new byte[XsHeader.Size + payload.Length];
        new XsHeader(type, reqId, txId, (uint)payload.Length).WriteTo(m);
        payload.CopyTo(m.AsSpan(XsHeader.Size));
        return m;
    }

    /// <summary>Strings each followed by a NUL, as most payloads are.</summary>
    public static byte[] Strings(params string[] parts)
    {
        int n = 0;
        foreach (var p in parts) n += System.Text.Encoding.UTF8.GetByteCount(p) + 1;
        var b = new byte[n];
        int o = 0;
        foreach (var p in parts)
        {
            o += System.Text.Encoding.UTF8.GetBytes(p, b.AsSpan(o));
            b[o++] = 0;
        }
        return b;
    }
}
