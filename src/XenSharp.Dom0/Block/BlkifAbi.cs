using System.Runtime.InteropServices;

namespace XenSharp.Dom0.Block;

/// <summary>Constants of xen/include/public/io/blkif.h (checked against the header by the tests).</summary>
public static class Blkif
{
    public const byte OpRead = 0;
    public const byte OpWrite = 1;
    public const byte OpWriteBarrier = 2;
    public const byte OpFlushDiskcache = 3;
    public const byte OpReserved1 = 4;
    public const byte OpDiscard = 5;
    public const byte OpIndirect = 6;

    public const short RspEopnotsupp = -2;
    public const short RspError = -1;
    public const short RspOkay = 0;

    public const int MaxSegmentsPerRequest = 11;
    public const int SectorSize = 512;
    public const int SectorsPerPage = 8;
    public const byte DiscardSecure = 1;

    public const uint VdiskCdrom = 1;
    public const uint VdiskRemovable = 2;
    public const uint VdiskReadonly = 4;

    public const int MaxIndirectPagesPerRequest = 8;
    /// <summary>BLKIF_SEGS_PER_INDIRECT_FRAME for 4 KiB pages.</summary>
    public const int SegsPerIndirectFrame = 4096 / 8;

    /// <summary>sizeof(union blkif_sring_entry): the request is the larger member.</summary>
    public const int EntrySize = 112;
}

/// <summary>struct blkif_request_segment.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct BlkifSegment
{
    [FieldOffset(0)] public uint Gref;
    [FieldOffset(4)] public byte FirstSect;
    [FieldOffset(5)] public byte LastSect;
}

[System.Runtime.CompilerServices.InlineArray(Blkif.MaxSegmentsPerRequest)]
public struct BlkifSegments
{
    private BlkifSegment _e;
}

/// <summary>struct blkif_request (x86_64 layout): 112 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 112)]
public struct BlkifRequest
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte NrSegments;
    [FieldOffset(2)] public ushort Handle;
    [FieldOffset(8)] public ulong Id;
    [FieldOffset(16)] public ulong SectorNumber;
    [FieldOffset(24)] public BlkifSegments Seg;
}

/// <summary>struct blkif_request_discard: shares operation/id/sector_number offsets with blkif_request.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct BlkifRequestDiscard
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte Flag;
    [FieldOffset(2)] public ushort Handle;
    [FieldOffset(8)] public ulong Id;
    [FieldOffset(16)] public ulong SectorNumber;
    [FieldOffset(24)] public ulong NrSectors;
}

/// <summary>struct blkif_response: 16 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct BlkifResponse
{
    [FieldOffset(0)] public ulong Id;
    [FieldOffset(8)] public byte Operation;
    [FieldOffset(10)] public short Status;
}

[System.Runtime.CompilerServices.InlineArray(Blkif.MaxIndirectPagesPerRequest)]
public struct BlkifIndirectGrefs
{
    private uint _e;
}

/// <summary>struct blkif_request_indirect (x86_64): 64 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct BlkifRequestIndirect
{
    [FieldOffset(0)] public byte Operation;
    [FieldOffset(1)] public byte IndirectOp;
    [FieldOffset(2)] public ushort NrSegments;
    [FieldOffset(8)] public ulong Id;
    [FieldOffset(16)] public ulong SectorNumber;
    [FieldOffset(24)] public ushort Handle;
    [FieldOffset(28)] public BlkifIndirectGrefs IndirectGrefs;
}
