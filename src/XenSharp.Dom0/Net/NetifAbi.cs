using System.Runtime.InteropServices;

namespace XenSharp.Dom0.Net;

/// <summary>Constants of xen/include/public/io/netif.h (checked against the header by the tests).</summary>
public static class Netif
{
    public const ushort TxfCsumBlank = 1;
    public const ushort TxfDataValidated = 2;
    public const ushort TxfMoreData = 4;
    public const ushort TxfExtraInfo = 8;

    public const ushort RxfDataValidated = 1;
    public const ushort RxfCsumBlank = 2;
    public const ushort RxfMoreData = 4;
    public const ushort RxfExtraInfo = 8;

    public const byte ExtraTypeNone = 0;
    public const byte ExtraTypeGso = 1;
    public const byte ExtraTypeMcastAdd = 2;
    public const byte ExtraTypeMcastDel = 3;
    public const byte ExtraTypeHash = 4;
    public const byte ExtraFlagMore = 1;

    public const short RspDropped = -2;
    public const short RspError = -1;
    public const short RspOkay = 0;
    public const short RspNull = 1;

    /// <summary>XEN_NETIF_MAX_TX_SIZE.</summary>
    public const int MaxTxSize = 0xFFFF;
    /// <summary>XEN_NETIF_NR_SLOTS_MIN: slots a packet may use that every backend must accept.</summary>
    public const int NrSlotsMin = 18;

    public const int TxEntrySize = 12;
    public const int RxEntrySize = 8;
}

/// <summary>struct netif_tx_request: 12 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
public struct NetifTxRequest
{
    [FieldOffset(0)] public uint Gref;
    [FieldOffset(4)] public ushort Offset;
    [FieldOffset(6)] public ushort Flags;
    [FieldOffset(8)] public ushort Id;
    [FieldOffset(10)] public ushort Size;
}

/// <summary>struct netif_extra_info: 8 bytes (type, flags, then a 6-byte union).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct NetifExtraInfo
{
    [FieldOffset(0)] public byte Type;
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public ushort GsoSize;
    [FieldOffset(4)] public byte GsoType;
    [FieldOffset(6)] public ushort GsoFeatures;
}

/// <summary>struct netif_tx_response: 4 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 4)]
public struct NetifTxResponse
{
    [FieldOffset(0)] public ushort Id;
    [FieldOffset(2)] public short Status;
}

/// <summary>struct netif_rx_request: 8 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct NetifRxRequest
{
    [FieldOffset(0)] public ushort Id;
    [FieldOffset(4)] public uint Gref;
}

/// <summary>struct netif_rx_response: 8 bytes; status is the byte count when non-negative.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct NetifRxResponse
{
    [FieldOffset(0)] public ushort Id;
    [FieldOffset(2)] public ushort Offset;
    [FieldOffset(4)] public ushort Flags;
    [FieldOffset(6)] public short Status;
}
