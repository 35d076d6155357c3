using System.Diagnostics;
using Xunit;
using Xunit.Abstractions;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Cpu;
using ShutdownReason = XenSharp.Hypervisor.ShutdownReason;

namespace XenSharp.Hypervisor.Tests.PvCpu;

/// <summary>The PV ABI bench guest (guests/pv-abi, built with gcc through guests/Makefile), run on the emulator.</summary>
public sealed class PvAbiGuestTests(ITestOutputHelper output)
{
    private static readonly Lazy<byte[]?> Kernel = new(() => TestGuests.Build("build/pv-abi.elf", "pv-abi.elf"));

    private byte[] Image => Kernel.Value ?? throw new InvalidOperationException("guests/build/pv-abi.elf could not be built (gcc and make are needed)");

    private Dictionary<string, long> RunToPoweroff(string accel, string cmdline)
    {
        using var h = new PvGuestHarness(accel, Image, vcpus: 1, memMiB: 32, cmdline: cmdline);
        bool done = h.Run(TimeSpan.FromSeconds(60));
        output.WriteLine($"{cmdline}: {h.Log}");
        Assert.True(done, $"{cmdline}: guest did not shut down");
        Assert.True(h.Domain.ShutdownReason == ShutdownReason.Poweroff, $"{cmdline}: {h.Domain.ShutdownReason} {h.Domain.CrashDetail}");
        return DomainPerfCounters.Of(h.Domain).ToDictionary(c => c.Name, c => c.Value);
    }

    /// <summary>
    /// A Linux-style fault path (#PF → handler → update_va_mapping → HYPERVISOR_iret) costs three exits per fault:
    /// the #PF, the hypercall and the iret, as the perf counters of pf=N against pfprep=N show.
    /// </summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void PageFaultPathCostsThreeExitsPerFault(string accel)
    {
        const int n = 64;
        var prep = RunToPoweroff(accel, $"pfprep={n}");
        var pf = RunToPoweroff(accel, $"pf={n}");
        long D(string k) => pf.GetValueOrDefault(k) - prep.GetValueOrDefault(k);
        foreach (var kv in pf) output.WriteLine($"{kv.Key} {kv.Value} (+{D(kv.Key)})");
        Assert.Equal(3 * n, D("exits"));
        Assert.Equal(n, D("hypercall/update_va_mapping"));
        Assert.Equal(n, D("hypercall/iret"));
        Assert.Equal(n, pf.Where(kv => kv.Key.StartsWith("exception/")).Sum(kv => kv.Value) - prep.Where(kv => kv.Key.StartsWith("exception/")).Sum(kv => kv.Value));
    }

    /// <summary>Two domains joined by an interdomain channel: ping sends N times, pong's upcall answers each.</summary>
    [SkippableTheory, ClassData(typeof(PvAccelerators))]
    public void EventChannelPingPongBetweenTwoDomains(string accel)
    {
        const int n = 50;
        using var hv = new XenHypervisor(PvAccelerators.Create(accel), new HostMemory(8UL << 30, 0));
        var a = hv.CreateDomain(new DomainCreateSpec("ping", DomainType.Pv, 32 << 20, 32 << 20, 1, 1));
        var b = hv.CreateDomain(new DomainCreateSpec("pong", DomainType.Pv, 32 << 20, 32 << 20, 1, 1));
        var pa = PvDomainSetup.Compose(a, 1, Image, $"ping={n}");
        var pb = PvDomainSetup.Compose(b, 1, Image, "pong");
        Assert.Equal(0, pa.Services.Events.AllocUnbound(DomId.Self, (ushort)b.Id, out uint portA));
        Assert.Equal(0, pb.Services.Events.BindInterdomain((ushort)a.Id, portA, out _));
        var done = new ManualResetEventSlim();
        hv.DomainShutdown += d => { if (d == a) done.Set(); };
        hv.Start(b); b.Unpause();
        hv.Start(a); a.Unpause();
        bool ok = done.Wait(TimeSpan.FromSeconds(60));
        output.WriteLine(string.Join("\n", hv.Log.Snapshot()));
        foreach (var (n2, p) in new[] { ("A", pa), ("B", pb) })
        {
            var st = p.Platform.State(0);
            output.WriteLine($"{n2}: upcall pending {st.EvtchnUpcallPending} mask {st.EvtchnUpcallMask} upcalls {st.UpcallCount} hypercalls {st.HypercallCount} cs {st.CurrentCs:x} pendingResume {st.PendingResume is not null}");
            for (uint port = 1; port < 5; port++) output.WriteLine($"  port {port}: {p.Services.Events.Info(port)} pending {p.Services.Events.IsPending(port)} masked {p.Services.Events.IsMasked(port)}");
        }
        Assert.True(ok, "ping did not power off");
        Assert.True(a.ShutdownReason == ShutdownReason.Poweroff, $"{a.ShutdownReason} {a.CrashDetail}");
        Assert.Null(b.ShutdownReason);
        Assert.True(pb.Platform.State(0).UpcallCount >= n && pa.Platform.State(0).UpcallCount >= n, "every ping and every answer arrives as an upcall");
        Assert.Contains("PVABI ping done", string.Join("\n", hv.Log.Snapshot()));
    }
}
