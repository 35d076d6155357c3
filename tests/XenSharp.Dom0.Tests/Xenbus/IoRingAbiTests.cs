using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using XenSharp.Dom0.Block;
using XenSharp.Dom0.Net;
using XenSharp.Dom0.Xenbus;

namespace XenSharp.Dom0.Tests.Xenbus;

/// <summary>
/// Compiles a C program against Xen's public headers (libxen-dev: xen/io/blkif.h, netif.h, ring.h, xenbus.h) that
/// prints sizes, offsets, ring sizes and constants, and compares them with the C# declarations.
/// </summary>
public sealed class IoRingAbiTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static int Off<T>(string field) => (int)Marshal.OffsetOf<T>(field);

    private static List<(string C, long Cs)> Items() =>
    [
        ("sizeof(struct blkif_request)", Unsafe.SizeOf<BlkifRequest>()),
        ("offsetof(struct blkif_request, operation)", Off<BlkifRequest>(nameof(BlkifRequest.Operation))),
        ("offsetof(struct blkif_request, nr_segments)", Off<BlkifRequest>(nameof(BlkifRequest.NrSegments))),
        ("offsetof(struct blkif_request, handle)", Off<BlkifRequest>(nameof(BlkifRequest.Handle))),
        ("offsetof(struct blkif_request, id)", Off<BlkifRequest>(nameof(BlkifRequest.Id))),
        ("offsetof(struct blkif_request, sector_number)", Off<BlkifRequest>(nameof(BlkifRequest.SectorNumber))),
        ("offsetof(struct blkif_request, seg)", Off<BlkifRequest>(nameof(BlkifRequest.Seg))),
        ("sizeof(struct blkif_request_segment)", Unsafe.SizeOf<BlkifSegment>()),
        ("offsetof(struct blkif_request_segment, gref)", Off<BlkifSegment>(nameof(BlkifSegment.Gref))),
        ("offsetof(struct blkif_request_segment, first_sect)", Off<BlkifSegment>(nameof(BlkifSegment.FirstSect))),
        ("offsetof(struct blkif_request_segment, last_sect)", Off<BlkifSegment>(nameof(BlkifSegment.LastSect))),
        ("sizeof(struct blkif_request_discard)", Unsafe.SizeOf<BlkifRequestDiscard>()),
        ("offsetof(struct blkif_request_discard, flag)", Off<BlkifRequestDiscard>(nameof(BlkifRequestDiscard.Flag))),
        ("offsetof(struct blkif_request_discard, id)", Off<BlkifRequestDiscard>(nameof(BlkifRequestDiscard.Id))),
        ("offsetof(struct blkif_request_discard, sector_number)", Off<BlkifRequestDiscard>(nameof(BlkifRequestDiscard.SectorNumber))),
        ("offsetof(struct blkif_request_discard, nr_sectors)", Off<BlkifRequestDiscard>(nameof(BlkifRequestDiscard.NrSectors))),
        ("sizeof(struct blkif_response)", Unsafe.SizeOf<BlkifResponse>()),
        ("offsetof(struct blkif_response, id)", Off<BlkifResponse>(nameof(BlkifResponse.Id))),
        ("offsetof(struct blkif_response, operation)", Off<BlkifResponse>(nameof(BlkifResponse.Operation))),
        ("offsetof(struct blkif_response, status)", Off<BlkifResponse>(nameof(BlkifResponse.Status))),
        ("sizeof(union blkif_sring_entry)", Blkif.EntrySize),
        ("sizeof(struct blkif_request_indirect)", Unsafe.SizeOf<BlkifRequestIndirect>()),
        ("offsetof(struct blkif_request_indirect, indirect_op)", Off<BlkifRequestIndirect>(nameof(BlkifRequestIndirect.IndirectOp))),
        ("offsetof(struct blkif_request_indirect, nr_segments)", Off<BlkifRequestIndirect>(nameof(BlkifRequestIndirect.NrSegments))),
        ("offsetof(struct blkif_request_indirect, id)", Off<BlkifRequestIndirect>(nameof(BlkifRequestIndirect.Id))),
        ("offsetof(struct blkif_request_indirect, sector_number)", Off<BlkifRequestIndirect>(nameof(BlkifRequestIndirect.SectorNumber))),
        ("offsetof(struct blkif_request_indirect, handle)", Off<BlkifRequestIndirect>(nameof(BlkifRequestIndirect.Handle))),
        ("offsetof(struct blkif_request_indirect, indirect_grefs)", Off<BlkifRequestIndirect>(nameof(BlkifRequestIndirect.IndirectGrefs))),
        ("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", Blkif.MaxIndirectPagesPerRequest),
        ("offsetof(struct blkif_sring, ring)", BackRing.HeaderSize),
        ("offsetof(struct blkif_sring, req_prod)", 0),
        ("offsetof(struct blkif_sring, req_event)", 4),
        ("offsetof(struct blkif_sring, rsp_prod)", 8),
        ("offsetof(struct blkif_sring, rsp_event)", 12),
        ("__CONST_RING_SIZE(blkif, 4096)", BackRing.RingSizeFor(Blkif.EntrySize)),
        ("BLKIF_OP_READ", Blkif.OpRead), ("BLKIF_OP_WRITE", Blkif.OpWrite), ("BLKIF_OP_WRITE_BARRIER", Blkif.OpWriteBarrier),
        ("BLKIF_OP_FLUSH_DISKCACHE", Blkif.OpFlushDiskcache), ("BLKIF_OP_RESERVED_1", Blkif.OpReserved1),
        ("BLKIF_OP_DISCARD", Blkif.OpDiscard), ("BLKIF_OP_INDIRECT", Blkif.OpIndirect),
        ("BLKIF_RSP_EOPNOTSUPP", Blkif.RspEopnotsupp), ("BLKIF_RSP_ERROR", Blkif.RspError), ("BLKIF_RSP_OKAY", Blkif.RspOkay),
        ("BLKIF_MAX_SEGMENTS_PER_REQUEST", Blkif.MaxSegmentsPerRequest), ("BLKIF_DISCARD_SECURE", Blkif.DiscardSecure),
        ("VDISK_CDROM", Blkif.VdiskCdrom), ("VDISK_REMOVABLE", Blkif.VdiskRemovable), ("VDISK_READONLY", Blkif.VdiskReadonly),

        ("sizeof(struct netif_tx_request)", Unsafe.SizeOf<NetifTxRequest>()),
        ("offsetof(struct netif_tx_request, gref)", Off<NetifTxRequest>(nameof(NetifTxRequest.Gref))),
        ("offsetof(struct netif_tx_request, offset)", Off<NetifTxRequest>(nameof(NetifTxRequest.Offset))),
        ("offsetof(struct netif_tx_request, flags)", Off<NetifTxRequest>(nameof(NetifTxRequest.Flags))),
        ("offsetof(struct netif_tx_request, id)", Off<NetifTxRequest>(nameof(NetifTxRequest.Id))),
        ("offsetof(struct netif_tx_request, size)", Off<NetifTxRequest>(nameof(NetifTxRequest.Size))),
        ("sizeof(struct netif_tx_response)", Unsafe.SizeOf<NetifTxResponse>()),
        ("offsetof(struct netif_tx_response, id)", Off<NetifTxResponse>(nameof(NetifTxResponse.Id))),
        ("offsetof(struct netif_tx_response, status)", Off<NetifTxResponse>(nameof(NetifTxResponse.Status))),
        ("sizeof(struct netif_extra_info)", Unsafe.SizeOf<NetifExtraInfo>()),
        ("offsetof(struct netif_extra_info, type)", Off<NetifExtraInfo>(nameof(NetifExtraInfo.Type))),
        ("offsetof(struct netif_extra_info, flags)", Off<NetifExtraInfo>(nameof(NetifExtraInfo.Flags))),
        ("offsetof(struct netif_extra_info, u.gso.size)", Off<NetifExtraInfo>(nameof(NetifExtraInfo.GsoSize))),
        ("offsetof(struct netif_extra_info, u.gso.type)", Off<NetifExtraInfo>(nameof(NetifExtraInfo.GsoType))),
        ("offsetof(struct netif_extra_info, u.gso.features)", Off<NetifExtraInfo>(nameof(NetifExtraInfo.GsoFeatures))),
        ("sizeof(struct netif_rx_request)", Unsafe.SizeOf<NetifRxRequest>()),
        ("offsetof(struct netif_rx_request, id)", Off<NetifRxRequest>(nameof(NetifRxRequest.Id))),
        ("offsetof(struct netif_rx_request, gref)", Off<NetifRxRequest>(nameof(NetifRxRequest.Gref))),
        ("sizeof(struct netif_rx_response)", Unsafe.SizeOf<NetifRxResponse>()),
        ("offsetof(struct netif_rx_response, id)", Off<NetifRxResponse>(nameof(NetifRxResponse.Id))),
        ("offsetof(struct netif_rx_response, offset)", Off<NetifRxResponse>(nameof(NetifRxResponse.Offset))),
        ("offsetof(struct netif_rx_response, flags)", Off<NetifRxResponse>(nameof(NetifRxResponse.Flags))),
        ("offsetof(struct netif_rx_response, status)", Off<NetifRxResponse>(nameof(NetifRxResponse.Status))),
        ("sizeof(union netif_tx_sring_entry)", Netif.TxEntrySize),
        ("sizeof(union netif_rx_sring_entry)", Netif.RxEntrySize),
        ("__CONST_RING_SIZE(netif_tx, 4096)", BackRing.RingSizeFor(Netif.TxEntrySize)),
        ("__CONST_RING_SIZE(netif_rx, 4096)", BackRing.RingSizeFor(Netif.RxEntrySize)),
        ("NETTXF_csum_blank", Netif.TxfCsumBlank), ("NETTXF_data_validated", Netif.TxfDataValidated),
        ("NETTXF_more_data", Netif.TxfMoreData), ("NETTXF_extra_info", Netif.TxfExtraInfo),
        ("NETRXF_data_validated", Netif.RxfDataValidated), ("NETRXF_csum_blank", Netif.RxfCsumBlank),
        ("NETRXF_more_data", Netif.RxfMoreData), ("NETRXF_extra_info", Netif.RxfExtraInfo),
        ("XEN_NETIF_EXTRA_TYPE_NONE", Netif.ExtraTypeNone), ("XEN_NETIF_EXTRA_TYPE_GSO", Netif.ExtraTypeGso),
        ("XEN_NETIF_EXTRA_TYPE_MCAST_ADD", Netif.ExtraTypeMcastAdd), ("XEN_NETIF_EXTRA_TYPE_MCAST_DEL", Netif.ExtraTypeMcastDel),
        ("XEN_NETIF_EXTRA_TYPE_HASH", Netif.ExtraTypeHash), ("XEN_NETIF_EXTRA_FLAG_MORE", Netif.ExtraFlagMore),
        ("NETIF_RSP_DROPPED", Netif.RspDropped), ("NETIF_RSP_ERROR", Netif.RspError), ("NETIF_RSP_OKAY", Netif.RspOkay),
        ("NETIF_RSP_NULL", Netif.RspNull), ("XEN_NETIF_MAX_TX_SIZE", Netif.MaxTxSize), ("XEN_NETIF_NR_SLOTS_MIN", Netif.NrSlotsMin),

        ("XenbusStateUnknown", (int)XenbusState.Unknown), ("XenbusStateInitialising", (int)XenbusState.Initialising),
        ("XenbusStateInitWait", (int)XenbusState.InitWait), ("XenbusStateInitialised", (int)XenbusState.Initialised),
        ("XenbusStateConnected", (int)XenbusState.Connected), ("XenbusStateClosing", (int)XenbusState.Closing),
        ("XenbusStateClosed", (int)XenbusState.Closed), ("XenbusStateReconfiguring", (int)XenbusState.Reconfiguring),
        ("XenbusStateReconfigured", (int)XenbusState.Reconfigured),
    ];

    private static string? FindOnPath(string exe) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);

    private static (int Exit, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }

    [SkippableFact]
    public void BlkifNetifRingAndXenbusDeclarationsMatchTheXenHeaders()
    {
        Skip.IfNot(File.Exists("/usr/include/xen/io/blkif.h"), "Xen public headers missing: install libxen-dev");
        string? gcc = FindOnPath("gcc");
        Skip.If(gcc is null, "gcc not found on PATH");
        var items = Items();
        var src = new System.Text.StringBuilder();
        src.AppendLine("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <xen/xen.h>\n#include <xen/grant_table.h>");
        src.AppendLine("#include <xen/io/ring.h>\n#include <xen/io/blkif.h>\n#include <xen/io/netif.h>\n#include <xen/io/xenbus.h>\nint main(void) {");
        for (int i = 0; i < items.Count; i++) src.AppendLine($"  printf(\"%d %lld\\n\", {i}, (long long)({items[i].C}));");
        src.AppendLine("  return 0;\n}");
        string dir = Directory.CreateTempSubdirectory("xensharp-ioabi-").FullName;
        try
        {
            string c = Path.Combine(dir, "abi.c"), exe = Path.Combine(dir, "abi");
            File.WriteAllText(c, src.ToString());
            var cc = Run(gcc!, "-std=gnu11", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", exe, c);
            Assert.True(cc.Exit == 0, "gcc failed:\n" + cc.Err);
            var run = Run(exe);
            Assert.Equal(0, run.Exit);
            var errors = new List<string>();
            int n = 0;
            foreach (var line in run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var p = line.Split(' ');
                int i = int.Parse(p[0]);
                long v = long.Parse(p[1]);
                n++;
                if (v != items[i].Cs) errors.Add($"{items[i].C}: header {v}, C# {items[i].Cs}");
            }
            Assert.Equal(items.Count, n);
            Assert.True(errors.Count == 0, string.Join("\n", errors));
            output.WriteLine($"compared {n} items with the headers");
        }
        finally { Directory.Delete(dir, true); }
    }
}
