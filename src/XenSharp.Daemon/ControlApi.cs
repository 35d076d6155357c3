using System.Runtime.InteropServices;
using XenSharp.Api;
using XenSharp.Hypervisor;
using XenSharp.Hypervisor.Scheduling;
using XenSharp.Dom0.Xenstore;
using XenSharp.Toolstack;
using XenSharp.Toolstack.Config;

namespace XenSharp.Daemon;

/// <summary>A command's reply, and for "console" what takes over the connection after it.</summary>
public sealed record Outcome(Response Response, Func<Stream, LineReader, CancellationToken, Task>? Stream = null);

/// <summary>
/// The daemon's control API: each command validated and carried out through the toolstack. Every
/// mutating command is logged with who asked.
/// </summary>
public sealed class ControlApi(Toolstack.Toolstack toolstack, TokenStore tokens, VpsDiskStore disks, Action<string> audit)
{
    public Toolstack.Toolstack Toolstack => toolstack;

    /// <summary>Commands that change something: audited, and refused to read-only tokens.</summary>
    public static readonly IReadOnlySet<string> Mutating = new HashSet<string>
        { "create", "destroy", "shutdown", "pause", "unpause", "rename", "dmesg", "console", "token-create", "token-revoke", "sched-credit", "vcpu-pin", "xenstore", "mem-set", "mem-max", "vcpu-set", "block-attach", "block-detach", "network-attach", "network-detach", "disk-create", "disk-delete" };

    /// <summary>Commands only root on the unix socket may use: token management.</summary>
    public static readonly IReadOnlySet<string> LocalOnly = new HashSet<string> { "token-create", "token-list", "token-revoke" };

    public async Task<Outcome> HandleAsync(Request request, Caller caller, CancellationToken cancel)
    {
        string command = request.Command ?? "";
        if (LocalOnly.Contains(command) && caller.Transport != "unix")
            return new Outcome(Response.Failure($"'{command}' is only available on xld's unix socket"));
        if (Mutating.Contains(command) && command != "token-create") audit($"{caller}: {command} {request.Args?.GetRawText()}");
        try
        {
            return command switch
            {
                "version" => Ok(new { Protocol = Protocol.Version, Xld = XenVersion.Full }),
                "list" => Ok(toolstack.List()),
                "info" => Ok(HostInfoReader.Read(toolstack.Hypervisor)),
                "create" => Ok(Create(Args<CreateArgs>(request))),
                "destroy" => Do(Args<DomainArgs>(request), toolstack.Destroy),
                "pause" => Do(Args<DomainArgs>(request), d => d.Pause()),
                "unpause" => Do(Args<DomainArgs>(request), d => d.Unpause()),
                "rename" => Rename(Args<RenameArgs>(request)),
                "shutdown" => await Shutdown(Args<ShutdownArgs>(request), cancel),
                "dmesg" => Dmesg(Args<DmesgArgs>(request)),
                "perfc" => Ok(DomainPerfCounters.Of(toolstack.Resolve(Args<DomainArgs>(request).Domain)).Select(c => new PerfCounterRow(c.Name, c.Value)).ToArray()),
                "console" => Console(Args<DomainArgs>(request)),
                "sched-credit" => Ok(SchedCredit(request.ArgsAs<SchedCreditArgs>() ?? new SchedCreditArgs())),
                "vcpu-pin" => VcpuPin(Args<VcpuPinArgs>(request)),
                "vcpu-set" => Args<VcpuSetArgs>(request) is var vs ? Do(new DomainArgs(vs.Domain), d => toolstack.SetVcpuCount(d, vs.Count)) : null!,
                "vcpu-list" => Ok(VcpuList(request.ArgsAs<VcpuListArgs>() ?? new VcpuListArgs())),
                "xenstore" => Xenstore(Args<XenstoreArgs>(request)),
                "stats" => Ok(Stats(request.ArgsAs<StatsArgs>() ?? new StatsArgs())),
                "block-list" => Ok(BlockList(Args<DomainArgs>(request))),
                "network-list" => Ok(NetworkList(Args<DomainArgs>(request))),
                "block-attach" => Attach(Args<DeviceAttachArgs>(request), block: true),
                "network-attach" => Attach(Args<DeviceAttachArgs>(request), block: false),
                "block-detach" => Detach(Args<DeviceDetachArgs>(request), block: true),
                "network-detach" => Detach(Args<DeviceDetachArgs>(request), block: false),
                "mem-set" => Do(Args<MemArgs>(request) is var m ? new DomainArgs(m.Domain) : null!, d => toolstack.SetMemoryTarget(d, MemorySize.Parse(m.Size))),
                "mem-max" => Do(Args<MemArgs>(request) is var mx ? new DomainArgs(mx.Domain) : null!, d => toolstack.SetMaximumMemory(d, MemorySize.Parse(mx.Size))),
                "disk-create" => Ok(disks.Create(Args<DiskCreateArgs>(request))),
                "disk-delete" => Args<DiskNameArgs>(request) is var dd ? Do(() => disks.Delete(dd.Name)) : null!,
                "disk-list" => Ok(disks.List()),
                "token-create" => Ok(CreateToken(Args<TokenCreateArgs>(request), caller)),
                "token-list" => Ok(tokens.List().Select(t => new TokenSummary(t.Name, t.Scope.ToString().ToLowerInvariant(), t.CreatedUtc)).ToArray()),
                "token-revoke" => RevokeToken(Args<TokenNameArgs>(request)),
                _ => new Outcome(Response.Failure($"unknown command '{command}'")),
            };
        }
        catch (Exception e) when (e is ToolstackException or HostMemoryExhaustedException or DomainExistsException
                                      or ArgumentException or InvalidOperationException or ConfigException or IOException or UnauthorizedAccessException
                                      or XenSharp.Hypervisor.Hvm.ImageFormatException or XenSharp.Accel.AcceleratorUnavailableException)
        {
            return new Outcome(Response.Failure(e.Message));
        }
        catch (Exception e)
        {
            // A bug of ours: the caller gets an answer, the log gets the stack, the daemon carries on.
            audit($"{caller}: {command} failed with an internal error: {e}");
            return new Outcome(Response.Failure($"internal error in xld ({e.GetType().Name}: {e.Message}); see xld.log"));
        }
    }

    private static T Args<T>(Request r) => r.ArgsAs<T>() ?? throw new ArgumentException($"command '{r.Command}' needs arguments");

    private static Outcome Ok<T>(T result) => new(Response.Success(result));

    private Outcome Do(DomainArgs args, Action<Domain> action) => Do(() => action(toolstack.Resolve(args.Domain)));

    private static Outcome Do(Action action)
    {
        action();
        return new Outcome(Response.Success());
    }

    private CreateResult Create(CreateArgs args)
    {
        var (plan, warnings) = ConfigLoader.Load(args.ConfigText, args.ConfigPath, args.Overrides, args.WorkingDirectory);
        var domain = toolstack.Create(plan, args.Paused);
        if (domain.Type == XenSharp.Hypervisor.DomainType.Hvm && toolstack.Hypervisor.Accelerator.Note is { } note)
            warnings = [.. warnings, $"{domain.Name} is an HVM domain: its kernel will run slowly here ({toolstack.Hypervisor.Accelerator.Name} on {note}); PV domains run at full speed"];
        return new CreateResult(domain.Id, domain.Name, warnings);
    }

    private DomainStats[] Stats(StatsArgs args) =>
        DomainStatsReader.Read(toolstack, args.Domain is null ? toolstack.Hypervisor.Domains : [toolstack.Resolve(args.Domain)]);

    private DeviceRow[] BlockList(DomainArgs args) =>
        toolstack.Backends.ListDisks(toolstack.Resolve(args.Domain).Id).Select(d => new DeviceRow(d.Domid, d.DevId, d.Vdev, d.Target + (d.ReadOnly ? " (ro)" : ""),
            (int)d.State, d.Error, d.BackendPath, d.Stats.SectorsRead * 512, d.Stats.SectorsWritten * 512, d.Stats.ReadRequests + d.Stats.WriteRequests, d.Note)).ToArray();

    private DeviceRow[] NetworkList(DomainArgs args) =>
        toolstack.Backends.ListNics(toolstack.Resolve(args.Domain).Id).Select(n =>
        {
            var s = n.Stats.Snapshot();
            return new DeviceRow(n.Domid, n.DevId, n.Mac, n.Bridge ?? "", (int)n.State, n.Error, n.BackendPath, s.RxBytes, s.TxBytes, s.TxPackets + s.RxPackets);
        }).ToArray();

    private Outcome Attach(DeviceAttachArgs args, bool block)
    {
        var domain = toolstack.Resolve(args.Domain);
        if (domain.Type != XenSharp.Hypervisor.DomainType.Pv) throw new ArgumentException($"domain {domain.Id} is {domain.Type.ToString().ToLowerInvariant()}: only PV domains have block and network frontends here");
        try
        {
            if (block) toolstack.AttachDisk(domain, DiskSpec.Parse(args.Spec));
            else toolstack.AttachNic(domain, VifSpec.Parse(args.Spec));
        }
        catch (FormatException e) { throw new ArgumentException($"'{args.Spec}': {e.Message}"); }
        return new Outcome(Response.Success());
    }

    private Outcome Detach(DeviceDetachArgs args, bool block)
    {
        var domain = toolstack.Resolve(args.Domain);
        uint devid = uint.TryParse(args.Device, out uint n) ? n
            : block && VirtualDevice.TryGetNumber(args.Device, out int v, out _) ? (uint)v
            : throw new ArgumentException($"device '{args.Device}': expected a device id{(block ? " or a vdev name such as xvda" : "")}");
        bool found = block ? toolstack.Backends.DetachDisk(domain.Id, devid, TimeSpan.FromSeconds(10)) : toolstack.Backends.DetachNic(domain.Id, devid, TimeSpan.FromSeconds(10));
        return found ? new Outcome(Response.Success()) : new Outcome(Response.Failure($"domain {domain.Id} has no {(block ? "disk" : "network")} device {args.Device}"));
    }

    private SchedCreditRow[] SchedCredit(SchedCreditArgs args)
    {
        var scheduler = toolstack.Hypervisor.Scheduler;
        var domains = args.Domain is null ? toolstack.Hypervisor.Domains : [toolstack.Resolve(args.Domain)];
        if (args.Weight is not null || args.Cap is not null)
        {
            if (args.Domain is null) throw new ArgumentException("give a domain (-d) to change its weight or cap");
            scheduler.Set(domains[0], args.Weight, args.Cap);
        }
        return domains.Select(d => scheduler.Get(d) is var p ? new SchedCreditRow(d.Name, d.Id, p.Weight, p.Cap) : null!).ToArray();
    }

    private Outcome VcpuPin(VcpuPinArgs args)
    {
        var domain = toolstack.Resolve(args.Domain);
        var cpus = CpuAffinity.Parse(args.Cpus).Resolve(HostCpus.Count);
        var vcpus = args.Vcpu == "all" ? domain.Vcpus
            : int.TryParse(args.Vcpu, out int n) && n >= 0 && n < domain.Vcpus.Count ? [domain.Vcpus[n]]
            : throw new ArgumentException($"vcpu '{args.Vcpu}': expected 'all' or a number below {domain.Vcpus.Count}");
        foreach (var v in vcpus) toolstack.Hypervisor.Scheduler.Pin(v, cpus);
        return new Outcome(Response.Success());
    }

    private VcpuRow[] VcpuList(VcpuListArgs args)
    {
        var domains = args.Domain is null ? toolstack.Hypervisor.Domains : [toolstack.Resolve(args.Domain)];
        return domains.SelectMany(d => d.Vcpus.Select(v => new VcpuRow(d.Name, d.Id, v.Id,
            v.HostThreadId == 0 ? -1 : HostCpus.LastCpu(v.HostThreadId),
            v.RunState switch { VcpuRunState.Running => "r", VcpuRunState.Blocked => "b", VcpuRunState.Runnable => "-", _ => "p" } + (d.IsPaused ? "p" : "-") + "-",
            v.CpuTime.TotalSeconds,
            HostCpus.Format(v.HardAffinity ?? Enumerable.Range(0, HostCpus.Count).ToArray())))).ToArray();
    }

    /// <summary>dom0's view of xenstore, for xl's xenstore-* verbs.</summary>
    private Outcome Xenstore(XenstoreArgs args)
    {
        using var xs = new XenstoreClient(toolstack.Store);
        try
        {
            switch (args.Op)
            {
                case "read": return Ok(xs.Read(args.Path));
                case "write": xs.Write(args.Path, args.Value ?? ""); return new Outcome(Response.Success());
                case "mkdir": xs.Mkdir(args.Path); return new Outcome(Response.Success());
                case "rm": xs.Rm(args.Path); return new Outcome(Response.Success());
                case "ls":
                    var nodes = new List<XenstoreNodeInfo>();
                    void Walk(string path, string relative)
                    {
                        foreach (var child in xs.Directory(path))
                        {
                            string p = path == "/" ? "/" + child : path + "/" + child;
                            string rel = relative.Length == 0 ? child : relative + "/" + child;
                            nodes.Add(new XenstoreNodeInfo(rel, xs.TryRead(p) ?? "", string.Join(",", xs.GetPerms(p))));
                            Walk(p, rel);
                        }
                    }
                    Walk(args.Path, "");
                    return Ok(nodes);
                default: throw new ArgumentException($"xenstore op '{args.Op}': expected read, write, mkdir, rm or ls");
            }
        }
        catch (XenstoreException e)
        {
            return new Outcome(Response.Failure($"xenstore {args.Op} {args.Path}: {e.Message}"));
        }
    }

    private TokenCreateResult CreateToken(TokenCreateArgs args, Caller caller)
    {
        var scope = args.Scope switch
        {
            "admin" => TokenScope.Admin,
            "read" => TokenScope.Read,
            _ => throw new ArgumentException($"token scope '{args.Scope}': expected admin or read"),
        };
        var token = tokens.Create(args.Name, scope);
        audit($"{caller}: token-create {args.Name} ({args.Scope})");
        return new TokenCreateResult(args.Name, args.Scope, token);
    }

    private Outcome RevokeToken(TokenNameArgs args)
    {
        tokens.Revoke(args.Name);
        return new Outcome(Response.Success());
    }

    private Outcome Rename(RenameArgs args)
    {
        toolstack.Rename(toolstack.Resolve(args.Domain), args.NewName);
        return new Outcome(Response.Success());
    }

    private async Task<Outcome> Shutdown(ShutdownArgs args, CancellationToken cancel)
    {
        var domain = toolstack.Resolve(args.Domain);
        toolstack.RequestShutdown(domain, args.Reboot);
        if (!args.Wait) return new Outcome(Response.Success());
        var timeout = TimeSpan.FromSeconds(Math.Clamp(args.TimeoutSeconds, 1, 3600));
        if (await toolstack.WaitForShutdownAsync(domain, timeout, cancel)) return new Outcome(Response.Success());
        if (args.Force)
        {
            toolstack.Hypervisor.Log.Write($"d{domain.Id} ({domain.Name}): no response to the shutdown request in {timeout.TotalSeconds} s, destroying");
            toolstack.Destroy(domain);
            return new Outcome(Response.Success());
        }
        return new Outcome(Response.Failure($"domain {domain.Id} ({domain.Name}) did not shut down within {timeout.TotalSeconds} s (use -F to destroy it then)"));
    }

    private Outcome Dmesg(DmesgArgs args)
    {
        var lines = toolstack.Hypervisor.Log.Snapshot();
        if (args.Clear) toolstack.Hypervisor.Log.Clear();
        return Ok(new DmesgResult(lines));
    }

    /// <summary>After the reply, guest output flows to the client and the client's bytes become guest input, until either side goes.</summary>
    private Outcome Console(DomainArgs args)
    {
        var domain = toolstack.Resolve(args.Domain);
        return new Outcome(Response.Success(), async (stream, reader, cancel) =>
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            var output = System.Threading.Channels.Channel.CreateBounded<ReadOnlyMemory<byte>>(
                new System.Threading.Channels.BoundedChannelOptions(1024) { FullMode = System.Threading.Channels.BoundedChannelFullMode.DropOldest });
            void OnDestroyed(Domain d)
            {
                if (d == domain) output.Writer.TryComplete();
            }
            toolstack.Hypervisor.DomainDestroyed += OnDestroyed;
            using var sub = domain.Console.Subscribe(data => output.Writer.TryWrite(data));
            try
            {
                if (domain.IsDying || toolstack.Hypervisor.Find(domain.Id) is null) output.Writer.TryComplete();
                var pending = reader.TakeBuffered();
                if (!pending.IsEmpty) domain.Console.WriteInput(pending.Span);
                var pump = Task.Run(async () =>
                {
                    var buf = new byte[1024];
                    while (!linked.IsCancellationRequested)
                    {
                        int n = await stream.ReadAsync(buf, linked.Token);
                        if (n == 0) break;
                        domain.Console.WriteInput(buf.AsSpan(0, n));
                    }
                    output.Writer.TryComplete();
                }, linked.Token);
                await foreach (var chunk in output.Reader.ReadAllAsync(linked.Token))
                {
                    await stream.WriteAsync(chunk, linked.Token);
                    await stream.FlushAsync(linked.Token);
                }
            }
            finally
            {
                toolstack.Hypervisor.DomainDestroyed -= OnDestroyed;
                linked.Cancel();
            }
        });
    }
}

/// <summary>Reads the host facts <c>xl info</c> shows.</summary>
public static class HostInfoReader
{
    public static HostInfo Read(XenHypervisor hypervisor)
    {
        int cpus = Environment.ProcessorCount;
        int threads = CountList(ReadOrEmpty("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list"));
        ulong mhz = 0;
        foreach (var line in ReadOrEmpty("/proc/cpuinfo").Split('\n'))
            if (line.StartsWith("cpu MHz", StringComparison.Ordinal) && double.TryParse(line[(line.IndexOf(':') + 1)..].Trim(), out var m))
            {
                mhz = (ulong)m;
                break;
            }
        var hm = hypervisor.HostMemory;
        return new HostInfo(
            Host: Environment.MachineName,
            Release: ReadOrEmpty("/proc/sys/kernel/osrelease").Trim(),
            Machine: RuntimeInformation.OSArchitecture == Architecture.X64 ? "x86_64" : RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
            NrCpus: cpus,
            CoresPerSocket: Math.Max(1, cpus / Math.Max(1, threads)),
            ThreadsPerCore: Math.Max(1, threads),
            CpuMhz: mhz,
            TotalMemoryMiB: (hm.TotalBytes + hm.HostReservationBytes) >> 20,
            FreeMemoryMiB: hm.FreeBytes >> 20,
            HostReservationMiB: hm.HostReservationBytes >> 20,
            XenMajor: XenVersion.Major,
            XenMinor: XenVersion.Minor,
            XenExtra: XenVersion.Extra,
            XenVersion: XenVersion.Full,
            XenCaps: XenVersion.Capabilities,
            Accelerator: hypervisor.Accelerator.Name,
            XenCommandline: string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
            CcCompiler: $".NET {Environment.Version}",
            XendConfigFormat: "4",
            UptimeSeconds: (DateTime.UtcNow - hypervisor.StartedUtc).TotalSeconds,
            AcceleratorNote: hypervisor.Accelerator.Note);
    }

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>Counts the CPUs in a kernel cpulist such as "0-3,8".</summary>
    private static int CountList(string list)
    {
        int n = 0;
        foreach (var part in list.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var ends = part.Split('-');
            n += ends.Length == 2 && int.TryParse(ends[0], out int a) && int.TryParse(ends[1], out int b) ? b - a + 1 : 1;
        }
        return n;
    }
}
