using System.Diagnostics;
using XenSharp.Accel;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Pv.Abi;
using ShutdownReason = XenSharp.Hypervisor.ShutdownReason;
using XenSharp.Hypervisor.Pv.Cpu;

/// <summary>
/// PV ABI figures with guests/pv-abi: an interdomain event-channel ping-pong between two PV domains (beside two host
/// threads handing a turn back and forth with Monitor.Wait/Pulse, what blocked vCPU threads park on), and the exits of a Linux-style page fault (#PF → handler →
/// update_va_mapping → HYPERVISOR_iret) counted with DomainPerfCounters (beside the exits of one hypercall).
/// Fixed costs (boot, shutdown) are taken out by running each guest with 0 and with N operations.
/// </summary>
static class PvAbiBench
{
    public static void Run(Func<IAccelerator> make, string kernel, int roundTrips, int faults)
    {
        var image = File.ReadAllBytes(kernel);
        EventPingPong(make, image, roundTrips);
        PageFaults(make, image, faults);
    }

    private static double Median(List<double> xs) { var s = xs.OrderBy(x => x).ToList(); return s[s.Count / 2]; }

    // ---- event channel ping-pong ----

    private static void EventPingPong(Func<IAccelerator> make, byte[] image, int n)
    {
        PingPong(make, image, 0); PingPong(make, image, n / 10); Monitors(n / 10);
        var guest = new List<double>(); var host = new List<double>(); var exits = new List<double>();
        Dictionary<string, long>? breakdown = null;
        for (int round = 0; round < 3; round++)
        {
            var (t0, c0) = PingPong(make, image, 0);
            var (tn, cn) = PingPong(make, image, n);
            guest.Add((tn - t0) / n);
            exits.Add((double)(cn["exits"] - c0["exits"]) / n);
            breakdown = cn.ToDictionary(kv => kv.Key, kv => kv.Value - c0.GetValueOrDefault(kv.Key));
            host.Add(Monitors(n));
        }
        double g = Median(guest), b = Median(host);
        Console.WriteLine($"event-channel ping-pong between two PV domains (interdomain channel, pong sends from its upcall; median of 3): " +
            $"{g:F2} µs per round trip, two host threads through Monitor.Wait/Pulse {b:F2} µs, ratio {g / b:F1}, exits per round trip (both domains) {Median(exits):F2}");
        if (breakdown is not null)
            Console.WriteLine("  per round trip (both domains): " + string.Join(", ", breakdown.Where(kv => kv.Value > n / 20).OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {(double)kv.Value / n:F3}")));
    }

    /// <summary>Domain A (ping=n) and B (pong) joined by an interdomain channel; µs from A's unpause to its poweroff, and both domains' exits.</summary>
    private static (double Micros, Dictionary<string, long> Counters) PingPong(Func<IAccelerator> make, byte[] image, int n)
    {
        using var hv = new XenHypervisor(make(), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30));
        var a = hv.CreateDomain(new DomainCreateSpec("ping", DomainType.Pv, 32 << 20, 32 << 20, 1, 1));
        var b = hv.CreateDomain(new DomainCreateSpec("pong", DomainType.Pv, 32 << 20, 32 << 20, 1, 1));
        var pa = PvDomainSetup.Compose(a, 1, image, $"ping={n}");
        var pb = PvDomainSetup.Compose(b, 1, image, "pong");
        int rc = pa.Services.Events.AllocUnbound(DomId.Self, (ushort)b.Id, out uint portA);
        if (rc == 0) rc = pb.Services.Events.BindInterdomain((ushort)a.Id, portA, out _);
        if (rc != 0) throw new InvalidOperationException($"interdomain channel: error {rc}");
        var done = new ManualResetEventSlim();
        hv.DomainShutdown += d => { if (d == a) done.Set(); };
        hv.Start(b);
        b.Unpause();
        hv.Start(a);
        var sw = Stopwatch.StartNew();
        a.Unpause();
        if (!done.Wait(TimeSpan.FromMinutes(5))) throw new TimeoutException("ping domain did not power off");
        sw.Stop();
        if (a.ShutdownReason != ShutdownReason.Poweroff) throw new InvalidOperationException($"ping domain: {a.ShutdownReason} {a.CrashDetail}");
        var counters = new Dictionary<string, long>();
        foreach (var c in DomainPerfCounters.Of(a).Concat(DomainPerfCounters.Of(b))) counters[c.Name] = counters.GetValueOrDefault(c.Name) + c.Value;
        return (sw.Elapsed.TotalMicroseconds, counters);
    }

    /// <summary>
    /// Two host threads, n round trips handing a turn back and forth with Monitor.Wait/Pulse — the primitive a blocked
    /// vCPU thread parks on — so each round trip is two thread wake-ups, as between two blocked vCPUs: µs per round trip.
    /// </summary>
    private static double Monitors(int n)
    {
        var gate = new object();
        int turn = 0; // 0: ping's, 1: pong's
        var t = new Thread(() =>
        {
            for (int i = 0; i < n; i++)
                lock (gate) { while (turn != 1) Monitor.Wait(gate); turn = 0; Monitor.Pulse(gate); }
        });
        t.Start();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
            lock (gate) { turn = 1; Monitor.Pulse(gate); while (turn != 0) Monitor.Wait(gate); }
        sw.Stop();
        t.Join();
        return sw.Elapsed.TotalMicroseconds / n;
    }

    // ---- page faults ----

    private static void PageFaults(Func<IAccelerator> make, byte[] image, int pages)
    {
        const int rounds = 10;
        int n = pages * rounds;
        Guest(make, image, $"pf={pages}");
        var perFault = new List<double>(); var perHc = new List<double>(); var exitsPerFault = new List<double>(); var exitsPerHc = new List<double>();
        Dictionary<string, long>? breakdown = null;
        for (int round = 0; round < 3; round++)
        {
            var z = Guest(make, image, "pfprep=0");
            var prep = Guest(make, image, $"pfprep={pages} rounds={rounds}");
            var pf = Guest(make, image, $"pf={pages} rounds={rounds}");
            perHc.Add((prep.Micros - z.Micros) / n);
            perFault.Add((pf.Micros - prep.Micros) / n);
            long hcs = Hypercalls(prep.Counters) - Hypercalls(z.Counters);
            exitsPerHc.Add((double)(prep.Counters["exits"] - z.Counters["exits"]) / hcs);
            exitsPerFault.Add((double)(pf.Counters["exits"] - prep.Counters["exits"]) / n);
            breakdown = pf.Counters.Where(kv => kv.Value != prep.Counters.GetValueOrDefault(kv.Key))
                .ToDictionary(kv => kv.Key, kv => kv.Value - prep.Counters.GetValueOrDefault(kv.Key));
        }
        double f = Median(perFault), h = Median(perHc), ef = Median(exitsPerFault), eh = Median(exitsPerHc);
        Console.WriteLine($"Linux-style page fault (#PF -> handler -> update_va_mapping -> iret, {pages} pages unmapped and touched {rounds} times, median of 3): " +
            $"{ef:F3} exits per fault vs {eh:F3} exits per hypercall (ratio {ef / eh:F2}); {f:F2} µs per fault vs {h:F2} µs per update_va_mapping hypercall (ratio {f / h:F2})");
        if (breakdown is not null)
            Console.WriteLine("  per fault: " + string.Join(", ", breakdown.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {(double)kv.Value / n:F3}")));
    }

    private static long Hypercalls(Dictionary<string, long> c) => c.Where(kv => kv.Key.StartsWith("hypercall/")).Sum(kv => kv.Value);

    /// <summary>Runs one pv-abi domain to its poweroff; µs from unpause, and its perf counters (xl perfc's figures).</summary>
    private static (double Micros, Dictionary<string, long> Counters) Guest(Func<IAccelerator> make, byte[] image, string cmdline)
    {
        using var hv = new XenHypervisor(make(), new HostMemory(HostMemory.ReadPhysicalBytes(), 1UL << 30));
        var d = hv.CreateDomain(new DomainCreateSpec("pvabi", DomainType.Pv, 32 << 20, 32 << 20, 1, 1));
        PvDomainSetup.Compose(d, 1, image, cmdline);
        var done = new ManualResetEventSlim();
        hv.DomainShutdown += _ => done.Set();
        hv.Start(d);
        var sw = Stopwatch.StartNew();
        d.Unpause();
        if (!done.Wait(TimeSpan.FromMinutes(5))) throw new TimeoutException($"pv-abi {cmdline} did not power off");
        sw.Stop();
        if (d.ShutdownReason != ShutdownReason.Poweroff) throw new InvalidOperationException($"pv-abi {cmdline}: {d.ShutdownReason} {d.CrashDetail}");
        return (sw.Elapsed.TotalMicroseconds, DomainPerfCounters.Of(d).ToDictionary(c => c.Name, c => c.Value));
    }
}
