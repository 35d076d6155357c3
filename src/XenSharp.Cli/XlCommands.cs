using System.Globalization;
using XenSharp.Api;

namespace XenSharp.Cli;

/// <summary>xl's verbs, options and output, as Xen's xl prints them where a user would compare.</summary>
public static class XlCommands
{
    public const string Usage = """
        Usage xl [-v] <subcommand> [args]

        xl full list of subcommands:

         create              Create a domain from config file <filename>
         list                List information about all/some domains
         destroy             Terminate a domain immediately
         shutdown            Issue a shutdown signal to a domain
         reboot              Issue a reboot signal to a domain
         pause               Pause execution of a domain
         unpause             Unpause a paused domain
         console             Attach to domain's console
         rename              Rename a domain
         dmesg               Read and/or clear dmesg buffer
         perfc               Print a domain's exit, hypercall and exception counters (as Xen's xenperf)
         info                Get information about Xen host
         uptime              Print uptime for all/some domains
         block-attach        Create a new virtual block device
         block-detach        Destroy a domain's virtual block device
         block-list          List virtual block devices for a domain
         network-attach      Create a new network device
         network-detach      Destroy a domain's network device
         network-list        List network interfaces for a domain
         mem-set             Set the current memory usage for a domain
         mem-max             Set the maximum amount reservation for a domain
         top                 Monitor a host and the domains in real time
         sched-credit        Get/set credit scheduler parameters
         vcpu-list           List the VCPUs for all/some domains
         vcpu-pin            Set which CPUs a VCPU can use
         vcpu-set            Set the number of active VCPUs allowed for the domain
         xenstore-ls         List a xenstore subtree (dom0's view)
         xenstore-read       Read xenstore nodes
         xenstore-write      Write xenstore nodes (path value pairs)
         xenstore-rm         Remove xenstore nodes
         disk-create         Create a VPS disk in xld's disk directory (-r replaces one)
         disk-list           List the VPS disks with their size and allocated bytes
         disk-delete         Delete a VPS disk
         token-create        Create a bearer token for xld's HTTP API (printed once)
         token-list          List the HTTP API tokens
         token-revoke        Revoke an HTTP API token
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var rest = args.SkipWhile(a => a == "-v").ToArray();
        if (rest.Length == 0 || rest[0] is "help" or "-h" or "--help")
        {
            stdout.WriteLine(Usage);
            return rest.Length == 0 ? 1 : 0;
        }
        string verb = rest[0];
        var a = rest[1..];
        try
        {
            using var xld = new XldClient(XldClient.DefaultSocketPath);
            return verb switch
            {
                "create" => await Create(xld, a, stdout, stderr),
                "list" or "li" => await List(xld, a, stdout),
                "info" => await Info(xld, stdout),
                "destroy" => await Simple(xld, "destroy", a, "destroy <Domain>"),
                "pause" => await Simple(xld, "pause", a, "pause <Domain>"),
                "unpause" => await Simple(xld, "unpause", a, "unpause <Domain>"),
                "shutdown" => await Shutdown(xld, a, reboot: false, stderr),
                "reboot" => await Shutdown(xld, a, reboot: true, stderr),
                "console" => await ConsoleVerb(xld, a, stderr),
                "rename" => await Rename(xld, a),
                "dmesg" => await Dmesg(xld, a, stdout),
                "uptime" => await Uptime(xld, a, stdout),
                "perfc" => await Perfc(xld, a, stdout),
                "mem-set" or "mem-max" => a.Length == 2 ? await Mem(xld, verb, a) : throw new UsageException($"Usage: xl {verb} <Domain> <MemMB['b'[bytes]|'k'[KB]|'g'[GB]|'t'[TB]]>"),
                "top" => await Top.RunAsync(xld, a, stdout),
                "block-list" or "network-list" => await DeviceList(xld, verb, a, stdout),
                "block-attach" or "network-attach" => a.Length >= 2 ? await Call(xld, verb, new DeviceAttachArgs(a[0], string.Join(',', a[1..])))
                    : throw new UsageException($"Usage: xl {verb} <Domain> <{(verb == "block-attach" ? "disk-spec" : "vif-spec")}>"),
                "block-detach" or "network-detach" => a.Length == 2 ? await Call(xld, verb, new DeviceDetachArgs(a[0], a[1]))
                    : throw new UsageException($"Usage: xl {verb} <Domain> <DevId>"),
                "sched-credit" => await SchedCredit(xld, a, stdout),
                "vcpu-list" => await VcpuList(xld, a, stdout),
                "vcpu-pin" => await VcpuPin(xld, a),
                "vcpu-set" => a.Length == 2 && int.TryParse(a[1], out int nv) ? await Call(xld, "vcpu-set", new VcpuSetArgs(a[0], nv))
                    : throw new UsageException("Usage: xl vcpu-set <Domain> <vCPUs>"),
                "xenstore-ls" => await XenstoreLs(xld, a, stdout),
                "xenstore-read" => await XenstoreEach(xld, "read", a, stdout),
                "xenstore-rm" => await XenstoreEach(xld, "rm", a, stdout),
                "xenstore-write" => await XenstoreWrite(xld, a),
                "disk-create" => await DiskCreate(xld, a, stdout),
                "disk-list" => await DiskList(xld, stdout),
                "disk-delete" => await Simple(xld, "disk-delete", a, "disk-delete <Name>", n => new DiskNameArgs(n)),
                "token-create" => await TokenCreate(xld, a, stdout),
                "token-list" => await TokenList(xld, stdout),
                "token-revoke" => await Simple(xld, "token-revoke", a, "token-revoke <Name>", n => new TokenNameArgs(n)),
                _ => throw new UsageException($"command '{verb}' not implemented\n\n{Usage}"),
            };
        }
        catch (UsageException e)
        {
            stderr.WriteLine(e.Message);
            return 2;
        }
        catch (Exception e) when (e is XldUnavailableException or XldCommandException or IOException)
        {
            stderr.WriteLine($"xl: {e.Message}");
            return 1;
        }
    }

    private static async Task<int> Create(XldClient xld, string[] a, TextWriter stdout, TextWriter stderr)
    {
        bool console = false, paused = false;
        string? file = null;
        var overrides = new List<string>();
        for (int i = 0; i < a.Length; i++)
        {
            switch (a[i])
            {
                case "-c": console = true; break;
                case "-p": paused = true; break;
                case "-f": file = i + 1 < a.Length ? a[++i] : throw new UsageException("xl create: -f needs a file name"); break;
                case "-q" or "-n" or "-d" or "-e" or "-V": break;
                default:
                    if (a[i].StartsWith('-')) throw new UsageException($"xl create: unknown option {a[i]}");
                    if (file is null && !a[i].Contains('=')) file = a[i];
                    else overrides.Add(a[i]);
                    break;
            }
        }
        if (file is null) throw new UsageException("Usage: xl create [-c] [-p] <ConfigFile> [options] [vars]");
        string text;
        try
        {
            text = await File.ReadAllTextAsync(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new XldCommandException($"cannot read config file {file}: {e.Message}");
        }
        stderr.WriteLine($"Parsing config from {file}");
        var result = await xld.CallAsync<CreateResult>("create", new CreateArgs(text, Path.GetFullPath(file), overrides, paused, Environment.CurrentDirectory));
        foreach (var w in result.Warnings) stderr.WriteLine($"Warning: {w}");
        if (console) return await AttachConsole(xld, result.Name, stderr);
        return 0;
    }

    private static async Task<int> List(XldClient xld, string[] a, TextWriter stdout)
    {
        bool json = a.Contains("-l") || a.Contains("--long");
        var wanted = a.Where(x => !x.StartsWith('-')).ToHashSet();
        var rows = (await xld.CallAsync<DomainSummary[]>("list")).Where(r => wanted.Count == 0 || wanted.Contains(r.Name) || wanted.Contains(r.Id.ToString())).ToArray();
        var missing = wanted.Where(w => !rows.Any(r => r.Name == w || r.Id.ToString() == w)).ToArray();
        if (missing.Length > 0) throw new XldCommandException($"no domain named or numbered '{missing[0]}'");
        if (json)
        {
            stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(rows, new System.Text.Json.JsonSerializerOptions(Protocol.Json) { WriteIndented = true }));
            return 0;
        }
        stdout.WriteLine("Name                                        ID   Mem VCPUs\tState\tTime(s)");
        foreach (var r in rows) stdout.WriteLine(FormatListRow(r));
        return 0;
    }

    /// <summary>One row of <c>xl list</c> in Xen's column layout.</summary>
    public static string FormatListRow(DomainSummary r) =>
        string.Format(CultureInfo.InvariantCulture, "{0,-40} {1,5} {2,5} {3,5}     {4}  {5,8:F1}", r.Name, r.Id, r.MemoryMiB, r.Vcpus, r.State, r.CpuSeconds);

    private static async Task<int> Info(XldClient xld, TextWriter stdout)
    {
        var i = await xld.CallAsync<HostInfo>("info");
        void Row(string k, object v) => stdout.WriteLine($"{k,-23}: {Convert.ToString(v, CultureInfo.InvariantCulture)}");
        Row("host", i.Host);
        Row("release", i.Release);
        Row("machine", i.Machine);
        Row("nr_cpus", i.NrCpus);
        Row("max_cpu_id", i.NrCpus - 1);
        Row("nr_nodes", 1);
        Row("cores_per_socket", i.CoresPerSocket);
        Row("threads_per_core", i.ThreadsPerCore);
        Row("cpu_mhz", i.CpuMhz);
        Row("virt_caps", i.Accelerator == "kvm" ? "pv hvm" : "pv hvm (software cpu)");
        Row("total_memory", i.TotalMemoryMiB);
        Row("free_memory", i.FreeMemoryMiB);
        Row("host_reserved_memory", i.HostReservationMiB);
        Row("xen_major", i.XenMajor);
        Row("xen_minor", i.XenMinor);
        Row("xen_extra", i.XenExtra);
        Row("xen_version", i.XenVersion);
        Row("xen_caps", i.XenCaps);
        Row("xen_scheduler", "credit (host cgroups)");
        Row("xen_pagesize", 4096);
        Row("accelerator", i.AcceleratorNote is null ? i.Accelerator : $"{i.Accelerator} ({i.AcceleratorNote})");
        Row("xen_commandline", i.XenCommandline);
        Row("cc_compiler", i.CcCompiler);
        Row("xend_config_format", i.XendConfigFormat);
        return 0;
    }

    private static async Task<int> Simple(XldClient xld, string command, string[] a, string usage, Func<string, object>? args = null)
    {
        var doms = a.Where(x => !x.StartsWith('-')).ToArray();
        if (doms.Length != 1) throw new UsageException($"Usage: xl {usage}");
        await xld.CallCheckedAsync(command, args is null ? new DomainArgs(doms[0]) : args(doms[0]));
        return 0;
    }

    private static async Task<int> Call(XldClient xld, string command, object args)
    {
        await xld.CallCheckedAsync(command, args);
        return 0;
    }

    private static async Task<int> DeviceList(XldClient xld, string verb, string[] a, TextWriter stdout)
    {
        var doms = a.Where(x => !x.StartsWith('-')).ToArray();
        if (doms.Length == 0) throw new UsageException($"Usage: xl {verb} <Domain> [<Domain>...]");
        stdout.WriteLine(verb == "block-list"
            ? "Vdev  BE  handle state target                                   rd-bytes    wr-bytes BE-path"
            : "Idx BE Mac Addr.         state bridge          rx-bytes    tx-bytes BE-path");
        foreach (var d in doms)
            foreach (var r in await xld.CallAsync<DeviceRow[]>(verb, new DomainArgs(d)))
            {
                stdout.WriteLine(verb == "block-list"
                    ? $"{r.DevId,-5} {0,3} {r.DevId,6} {r.State,5} {r.Target,-40} {r.ReadOrRxBytes,11} {r.WriteOrTxBytes,11} {r.BackendPath}"
                    : $"{r.DevId,-3} {0,2} {r.Name,-17} {r.State,5} {r.Target,-12} {r.ReadOrRxBytes,11} {r.WriteOrTxBytes,11} {r.BackendPath}");
                if (r.Note is not null) stdout.WriteLine($"      {r.Note}"); // e.g. "qcow2 v3, 64 KiB clusters, backing ..."
            }
        return 0;
    }

    private static async Task<int> Mem(XldClient xld, string verb, string[] a)
    {
        await xld.CallCheckedAsync(verb, new MemArgs(a[0], a[1]));
        return 0;
    }

    private static async Task<int> SchedCredit(XldClient xld, string[] a, TextWriter stdout)
    {
        string? dom = null;
        int? weight = null, cap = null;
        for (int i = 0; i < a.Length; i++)
        {
            string Value() => i + 1 < a.Length ? a[++i] : throw new UsageException($"xl sched-credit: {a[i]} needs a value");
            int Number(string what) => int.TryParse(Value(), out int n) ? n : throw new UsageException($"xl sched-credit: {what} must be a whole number");
            switch (a[i])
            {
                case "-d" or "--domain": dom = Value(); break;
                case "-w" or "--weight": weight = Number("weight"); break;
                case "-c" or "--cap": cap = Number("cap"); break;
                default: throw new UsageException("Usage: xl sched-credit [-d <Domain> [-w <Weight>] [-c <Cap>]]");
            }
        }
        var rows = await xld.CallAsync<SchedCreditRow[]>("sched-credit", new SchedCreditArgs(dom, weight, cap));
        if (weight is not null || cap is not null) return 0;
        stdout.WriteLine("Cpupool Pool-0: tslice=30ms ratelimit=1000us migr_delay=0us");
        stdout.WriteLine("Name                                ID Weight  Cap");
        foreach (var r in rows) stdout.WriteLine($"{r.Name,-32} {r.Id,5} {r.Weight,6} {r.Cap,4}");
        return 0;
    }

    private static async Task<int> VcpuList(XldClient xld, string[] a, TextWriter stdout)
    {
        var doms = a.Where(x => !x.StartsWith('-')).ToArray();
        var rows = new List<VcpuRow>();
        if (doms.Length == 0) rows.AddRange(await xld.CallAsync<VcpuRow[]>("vcpu-list", new VcpuListArgs()));
        foreach (var d in doms) rows.AddRange(await xld.CallAsync<VcpuRow[]>("vcpu-list", new VcpuListArgs(d)));
        stdout.WriteLine("Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)");
        foreach (var r in rows)
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-32} {1,5} {2,5} {3,5}   {4,-3} {5,9:F1}  {6} / all",
                r.Name, r.Id, r.Vcpu, r.Cpu < 0 ? "-" : r.Cpu.ToString(), r.State, r.TimeSeconds, r.Affinity));
        return 0;
    }

    private static async Task<int> VcpuPin(XldClient xld, string[] a)
    {
        var pos = a.Where(x => !x.StartsWith('-')).ToArray();
        if (pos.Length < 3) throw new UsageException("Usage: xl vcpu-pin <Domain> <VCPU|all> <Hard affinity|-|all> [Soft affinity]");
        await xld.CallCheckedAsync("vcpu-pin", new VcpuPinArgs(pos[0], pos[1], pos[2]));
        return 0;
    }

    private static async Task<int> XenstoreLs(XldClient xld, string[] a, TextWriter stdout)
    {
        bool perms = a.Contains("-p");
        var path = a.FirstOrDefault(x => !x.StartsWith('-')) ?? "/";
        foreach (var n in await xld.CallAsync<XenstoreNodeInfo[]>("xenstore", new XenstoreArgs("ls", path)))
        {
            int depth = n.Path.Count(c => c == '/');
            string line = $"{new string(' ', depth)}{n.Path[(n.Path.LastIndexOf('/') + 1)..]} = \"{n.Value}\"";
            stdout.WriteLine(perms ? $"{line,-60} ({n.Perms})" : line);
        }
        return 0;
    }

    private static async Task<int> XenstoreEach(XldClient xld, string op, string[] a, TextWriter stdout)
    {
        if (a.Length == 0) throw new UsageException($"Usage: xl xenstore-{op} <path>...");
        foreach (var p in a)
        {
            if (op == "read") stdout.WriteLine(await xld.CallAsync<string>("xenstore", new XenstoreArgs(op, p)));
            else await xld.CallCheckedAsync("xenstore", new XenstoreArgs(op, p));
        }
        return 0;
    }

    private static async Task<int> XenstoreWrite(XldClient xld, string[] a)
    {
        if (a.Length == 0 || a.Length % 2 != 0) throw new UsageException("Usage: xl xenstore-write <path> <value> [<path> <value>]...");
        for (int i = 0; i < a.Length; i += 2) await xld.CallCheckedAsync("xenstore", new XenstoreArgs("write", a[i], a[i + 1]));
        return 0;
    }

    private static async Task<int> TokenCreate(XldClient xld, string[] a, TextWriter stdout)
    {
        string scope = "admin";
        string? name = null;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] == "--scope" && i + 1 < a.Length) scope = a[++i];
            else if (!a[i].StartsWith('-')) name = a[i];
            else throw new UsageException("Usage: xl token-create <Name> [--scope admin|read]");
        }
        if (name is null) throw new UsageException("Usage: xl token-create <Name> [--scope admin|read]");
        var r = await xld.CallAsync<TokenCreateResult>("token-create", new TokenCreateArgs(name, scope));
        stdout.WriteLine(r.Token);
        return 0;
    }

    /// <summary><c>xl disk-create [-r] NAME SIZE [TEMPLATE]</c>: SIZE as for mem-set (MiB, or with a b/k/m/g/t suffix).</summary>
    private static async Task<int> DiskCreate(XldClient xld, string[] a, TextWriter stdout)
    {
        bool replace = a.Contains("-r");
        var rest = a.Where(x => x != "-r").ToArray();
        if (rest.Length is not (2 or 3) || rest.Any(x => x.StartsWith('-')))
            throw new UsageException("Usage: xl disk-create [-r] <Name> <Size[b|k|m|g|t]> [<TemplateImage>]");
        ulong size;
        try { size = MemorySize.Parse(rest[1], "disk size"); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
        var template = rest.Length == 3 ? Path.GetFullPath(rest[2]) : null;
        var d = await xld.CallAsync<DiskRow>("disk-create", new DiskCreateArgs(rest[0], (long)size, template, replace));
        stdout.WriteLine(d.Path);
        return 0;
    }

    private static async Task<int> DiskList(XldClient xld, TextWriter stdout)
    {
        stdout.WriteLine("Name                                   Size(MiB)  Alloc(MiB)  Path");
        foreach (var d in await xld.CallAsync<DiskRow[]>("disk-list"))
            stdout.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-38} {1,10:F1} {2,11:F1}  {3}", d.Name, d.SizeBytes / 1048576.0, d.AllocatedBytes / 1048576.0, d.Path));
        return 0;
    }

    private static async Task<int> TokenList(XldClient xld, TextWriter stdout)
    {
        stdout.WriteLine("Name                             Scope  Created (UTC)");
        foreach (var t in await xld.CallAsync<TokenSummary[]>("token-list"))
            stdout.WriteLine($"{t.Name,-32} {t.Scope,-6} {t.CreatedUtc:yyyy-MM-dd HH:mm:ss}");
        return 0;
    }

    private static async Task<int> Shutdown(XldClient xld, string[] a, bool reboot, TextWriter stderr)
    {
        bool wait = false, force = false, all = false;
        var doms = new List<string>();
        foreach (var x in a)
        {
            switch (x)
            {
                case "-w": wait = true; break;
                case "-F": force = true; wait = true; break;
                case "-a": all = true; break;
                default:
                    if (x.StartsWith('-')) throw new UsageException($"xl {(reboot ? "reboot" : "shutdown")}: unknown option {x}");
                    doms.Add(x);
                    break;
            }
        }
        if (all) doms.AddRange((await xld.CallAsync<DomainSummary[]>("list")).Where(d => d.Id != 0).Select(d => d.Name));
        if (doms.Count == 0) throw new UsageException($"Usage: xl {(reboot ? "reboot" : "shutdown")} [-a] [-w] [-F] <Domain>");
        int rc = 0;
        foreach (var d in doms)
        {
            if (wait) stderr.WriteLine($"Waiting for 1 domains");
            var r = await xld.CallAsync("shutdown", new ShutdownArgs(d, reboot, wait, force));
            if (!r.Ok)
            {
                stderr.WriteLine($"xl: {r.Error}");
                rc = 1;
            }
            else if (wait) stderr.WriteLine($"Domain {d} has been shut down");
        }
        return rc;
    }

    private static async Task<int> Rename(XldClient xld, string[] a)
    {
        if (a.Length != 2) throw new UsageException("Usage: xl rename <Domain> <NewDomainName>");
        await xld.CallCheckedAsync("rename", new RenameArgs(a[0], a[1]));
        return 0;
    }

    private static async Task<int> Dmesg(XldClient xld, string[] a, TextWriter stdout)
    {
        var r = await xld.CallAsync<DmesgResult>("dmesg", new DmesgArgs(a.Contains("-c")));
        foreach (var l in r.Lines) stdout.WriteLine(l);
        return 0;
    }

    private static async Task<int> Perfc(XldClient xld, string[] a, TextWriter stdout)
    {
        if (a.Length != 1) throw new UsageException("Usage: xl perfc <Domain>");
        foreach (var c in await xld.CallAsync<PerfCounterRow[]>("perfc", new DomainArgs(a[0])))
            stdout.WriteLine($"{c.Name,-40} {c.Value,14}");
        return 0;
    }

    private static async Task<int> Uptime(XldClient xld, string[] a, TextWriter stdout)
    {
        bool shortForm = a.Contains("-s");
        var wanted = a.Where(x => !x.StartsWith('-')).ToHashSet();
        var rows = (await xld.CallAsync<DomainSummary[]>("list")).Where(r => wanted.Count == 0 || wanted.Contains(r.Name) || wanted.Contains(r.Id.ToString()));
        if (!shortForm) stdout.WriteLine("Name                                ID Uptime");
        foreach (var r in rows)
        {
            var t = TimeSpan.FromSeconds(r.UptimeSeconds);
            string up = t.Days > 0 ? $"{t.Days} days, {t:hh\\:mm\\:ss}" : $"{t:h\\:mm\\:ss}";
            stdout.WriteLine(shortForm ? $"{r.Name,-32} {r.Id,5} {up}" : $"{r.Name,-32} {r.Id,5} {up}");
        }
        return 0;
    }

    private static async Task<int> ConsoleVerb(XldClient xld, string[] a, TextWriter stderr)
    {
        var doms = new List<string>();
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] is "-t" or "-n") { i++; continue; }
            if (!a[i].StartsWith('-')) doms.Add(a[i]);
        }
        if (doms.Count != 1) throw new UsageException("Usage: xl console [-t <type>] <Domain>");
        return await AttachConsole(xld, doms[0], stderr);
    }

    /// <summary>Joins the terminal to the domain's console until Ctrl-] or the domain goes away.</summary>
    private static async Task<int> AttachConsole(XldClient xld, string domain, TextWriter stderr)
    {
        await xld.CallCheckedAsync("console", new DomainArgs(domain));
        var (stream, buffered) = xld.TakeStream();
        using var terminal = RawTerminal.Enter();
        var stdout = Console.OpenStandardOutput();
        if (!buffered.IsEmpty) await stdout.WriteAsync(buffered);
        using var cts = new CancellationTokenSource();
        var fromGuest = Task.Run(async () =>
        {
            var buf = new byte[4096];
            int n;
            try
            {
                while ((n = await stream.ReadAsync(buf, cts.Token)) > 0)
                {
                    await stdout.WriteAsync(buf.AsMemory(0, n), cts.Token);
                    await stdout.FlushAsync(cts.Token);
                }
            }
            catch (OperationCanceledException) { }
            catch (IOException) { }
        });
        var toGuest = Task.Run(async () =>
        {
            var stdin = Console.OpenStandardInput();
            var buf = new byte[1024];
            try
            {
                int n;
                while ((n = await stdin.ReadAsync(buf, cts.Token)) > 0)
                {
                    int esc = Array.IndexOf(buf, (byte)0x1d, 0, n); // Ctrl-] detaches, as in xenconsole.
                    if (esc >= 0)
                    {
                        if (esc > 0) await stream.WriteAsync(buf.AsMemory(0, esc), cts.Token);
                        return;
                    }
                    await stream.WriteAsync(buf.AsMemory(0, n), cts.Token);
                }
                // Input ended (a pipe, not a person): keep showing output until the guest or xld goes.
                await Task.Delay(Timeout.Infinite, cts.Token);
            }
            catch (OperationCanceledException) { }
            catch (IOException) { }
        });
        await Task.WhenAny(fromGuest, toGuest);
        cts.Cancel();
        return 0;
    }
}

public sealed class UsageException(string message) : Exception(message);
