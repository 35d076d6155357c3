using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Xunit.Abstractions;
using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Build;

namespace XenSharp.Hypervisor.Tests.Pv;

/// <summary>
/// Debian's stock cloud kernel (what scripts/guest-images.sh fetches into .cache/guest-images) through intake,
/// note parsing and a 512 MiB build, checked against the placement rules of the PV ABI notes (A.3, A.5).
/// </summary>
public sealed class DebianKernelTests(ITestOutputHelper output)
{
    private const ulong MiB = 1 << 20;

    private static string? FindKernel()
    {
        string? env = Environment.GetEnvironmentVariable("XENSHARP_GUEST_IMAGES");
        if (env != null) return File.Exists(Path.Combine(env, "vmlinuz-cloud")) ? Path.Combine(env, "vmlinuz-cloud") : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "XenSharp.slnx"))) continue;
            string k = Path.Combine(dir.FullName, ".cache", "guest-images", "vmlinuz-cloud");
            return File.Exists(k) ? k : null;
        }
        return null;
    }

    [SkippableFact]
    public void StockCloudKernelBuildsA512MiBDomain()
    {
        string? path = FindKernel();
        Skip.If(path == null, "Debian cloud kernel not cached: run scripts/guest-images.sh (writes .cache/guest-images/vmlinuz-cloud)");
        string version = File.ReadAllText(Path.Combine(Path.GetDirectoryName(path)!, "VERSION")).Trim();

        var sw = Stopwatch.StartNew();
        var kernel = KernelImage.Load(path!);
        var decompress = sw.Elapsed;
        Assert.Equal(KernelContainer.BzImage, kernel.Container);
        Assert.NotEqual(KernelCompression.None, kernel.Compression);
        int banner = kernel.Elf.Span.IndexOf("Linux version "u8);
        string linuxVersion = banner < 0 ? "?" : Encoding.ASCII.GetString(kernel.Elf.Span.Slice(banner, 120)).Split('\0', '\n')[0];

        var elf = ElfImage.Parse(kernel.Elf);
        var g = XenGuestInfo.FromElf(elf, PvBuildOptions.DefaultOfferedFeatures);
        var n = g.Notes;
        Assert.Equal(0xffff_ffff_8000_0000UL, n.VirtBase);
        Assert.Equal(0x80_0000_0000UL, n.InitP2m);
        Assert.Null(n.HypercallPage);
        Assert.Contains("!writable_page_tables", n.Features!.Split('|'));
        Assert.Equal(1UL, n.ModStartPfn);
        Assert.Equal("linux", n.GuestOs);
        Assert.Equal("xen-3.0", n.XenVersion);
        Assert.Equal("generic", n.Loader);
        Assert.Equal(0UL, n.PaddrOffset);
        Assert.True(g.UnmappedInitrd);
        Assert.Equal(0x80_0000_0000UL, g.P2mBase);

        using var mem = new GuestMemory(512 * MiB);
        var initrd = new byte[300 * 1024 + 123];
        new Random(3).NextBytes(initrd);
        sw.Restart();
        var r = PvDomainBuilder.Build(mem, kernel, new PvBuildOptions
        {
            CommandLine = "console=hvc0 earlyprintk=xen",
            Initrd = initrd,
            SharedInfoMfn = 512 * MiB / 4096 + 16,
            StoreEvtchn = 1,
            ConsoleEvtchn = 2,
        });
        var build = sw.Elapsed;
        ulong nrPages = 512 * MiB / 4096;

        // A.3 placement rules (worked example: Linux, 512 MiB).
        Assert.Equal(0x1000UL, r.KernelPfn);                                  // 16 MiB of padding, then the kernel
        Assert.Equal(r.KernelPfn + r.KernelPages, r.StartInfoPfn);           // start_info right after the kernel end
        Assert.Equal(((g.VirtKernelEnd - g.VirtBase + 4095) >> 12), r.StartInfoPfn);
        Assert.Equal(r.StartInfoPfn + 1, r.XenstorePfn);
        Assert.Equal(r.StartInfoPfn + 2, r.ConsolePfn);
        Assert.Equal(r.StartInfoPfn + 3, r.PageTablePfn);
        Assert.Equal(0UL, r.VirtPgtabEnd % (4 * MiB));
        ulong mapped = r.VirtPgtabEnd - r.VirtBase;
        Assert.Equal(3 + mapped / (2 * MiB), r.PageTableCount);              // L4, L3, L2 and one L1 per 2 MiB
        Assert.Equal(r.PageTablePfn + r.PageTableCount, r.BootStackPfn);
        Assert.True(r.VirtBase + ((r.BootStackPfn + 1) << 12) + 512 * 1024 <= r.VirtPgtabEnd);
        Assert.True(r.VirtPgtabEnd - 4 * MiB < r.VirtBase + ((r.BootStackPfn + 1) << 12) + 512 * 1024); // smallest such boundary
        Assert.Equal(mapped >> 12, r.InitrdPfn);                              // unmapped initrd after virt_pgtab_end
        Assert.Equal(((ulong)initrd.Length + 4095) >> 12, r.InitrdPages);
        Assert.Equal(r.InitrdPfn + r.InitrdPages, r.P2mPfn);                  // then the p2m at INIT_P2M
        Assert.Equal(0x80_0000_0000UL, r.P2mVirt);
        Assert.Equal(nrPages * 8 / 4096, r.P2mDataFrames);
        Assert.Equal(r.P2mDataFrames + 3, r.P2mFrames);                      // + its L3, L2, one L1 (256 pages < 2 MiB)
        Assert.Equal(r.StartInfoVirt, r.VirtBase + (r.StartInfoPfn << 12));
        Assert.Equal(r.VirtBase + ((r.BootStackPfn + 1) << 12), r.InitialRsp);
        Assert.InRange(r.EntryRip, g.VirtKernelStart, g.VirtKernelEnd - 1);

        // L4 first, then L3, then L2 (Linux hands the first three frames back on that assumption).
        ulong l4 = r.PageTablePfn << 12;
        Assert.Equal(r.PageTablePfn + 1, mem.ReadUInt64(l4 + 511 * 8) >> 12);
        Assert.Equal(r.PageTablePfn + 2, mem.ReadUInt64(((r.PageTablePfn + 1) << 12) + 510 * 8) >> 12);
        Assert.Equal(r.PageTablePfn + 3, mem.ReadUInt64(((r.PageTablePfn + 2) << 12) + 0 * 8) >> 12);
        Assert.Equal(r.P2mPfn + r.P2mDataFrames, mem.ReadUInt64(l4 + 1 * 8) >> 12); // INIT_P2M's L3 in L4 slot 1

        var si = MemoryMarshal.Read<StartInfo>(mem.Frame(r.StartInfoPfn));
        Assert.Equal(nrPages, si.NrPages);
        Assert.Equal(StartInfoFlags.ModStartPfn, si.Flags);
        Assert.Equal(r.InitrdPfn, si.ModStart);
        Assert.Equal(r.InitrdPages * 4096, si.ModLen);
        Assert.Equal(0x80_0000_0000UL, si.MfnList);
        Assert.Equal(r.P2mPfn, si.FirstP2mPfn);
        Assert.Equal(r.P2mFrames, si.NrP2mFrames);
        Assert.Equal(r.PageTableCount, si.NrPtFrames);
        Assert.True(mem.Span(r.InitrdPfn!.Value << 12, initrd.Length).SequenceEqual(initrd));
        PvDomainBuilderTests.CheckPageTables(mem, r);

        output.WriteLine($"package: {version}");
        output.WriteLine($"banner: {linuxVersion}");
        output.WriteLine($"bzImage protocol 0x{kernel.BootProtocolVersion:x}, payload {kernel.Compression}, ELF {kernel.Elf.Length} bytes, decompressed in {decompress.TotalMilliseconds:F0} ms; build {build.TotalMilliseconds:F0} ms");
        output.WriteLine($"notes ({n.Source}, {n.Count}): GUEST_OS={n.GuestOs} GUEST_VERSION={n.GuestVersion} XEN_VERSION={n.XenVersion} LOADER={n.Loader} PAE_MODE={n.PaeMode}");
        output.WriteLine($"  VIRT_BASE=0x{n.VirtBase:x} PADDR_OFFSET=0x{n.PaddrOffset:x} ENTRY=0x{n.Entry:x} INIT_P2M=0x{n.InitP2m:x} HV_START_LOW=0x{n.HvStartLow:x}");
        output.WriteLine($"  FEATURES=\"{n.Features}\" SUPPORTED_FEATURES=0x{n.SupportedFeatures:x} MOD_START_PFN={n.ModStartPfn} SUSPEND_CANCEL={n.SuspendCancel} HYPERCALL_PAGE={(n.HypercallPage is { } h ? $"0x{h:x}" : "none")} PHYS32_ENTRY={(n.Phys32Entry is { } p ? $"0x{p:x}" : "none")} L1_MFN_VALID={(n.L1MfnValid is { } l ? Convert.ToHexString(l) : "none")}");
        output.WriteLine($"  kernel [0x{g.VirtKernelStart:x}, 0x{g.VirtKernelEnd:x}) supported=0x{g.FeaturesSupported:x} required=0x{g.FeaturesRequired:x}");
        output.WriteLine($"layout (512 MiB = 0x{nrPages:x} pages): kernel pfn 0x{r.KernelPfn:x}+0x{r.KernelPages:x}, start_info 0x{r.StartInfoPfn:x}, xenstore 0x{r.XenstorePfn:x}, console 0x{r.ConsolePfn:x}");
        output.WriteLine($"  page tables 0x{r.PageTablePfn:x}+{r.PageTableCount}, boot stack 0x{r.BootStackPfn:x} (rsp 0x{r.InitialRsp:x}), virt_pgtab_end 0x{r.VirtPgtabEnd:x} ({mapped / MiB} MiB mapped)");
        output.WriteLine($"  initrd 0x{r.InitrdPfn:x}+{r.InitrdPages}, p2m 0x{r.P2mPfn:x}+{r.P2mFrames} ({r.P2mDataFrames} data) at 0x{r.P2mVirt:x}, first free 0x{r.FirstFreePfn:x}; rip 0x{r.EntryRip:x} rsi 0x{r.StartInfoVirt:x} cr3 0x{r.Cr3:x}");
    }
}
