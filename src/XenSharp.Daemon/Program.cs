using System.Runtime.InteropServices;
using XenSharp.Api;
using XenSharp.Daemon;
using XenSharp.Hypervisor;
using XenSharp.Toolstack;

// xld: domain 0's daemon. It holds the hypervisor and every domain, and serves xl and the panel.
if (args is ["--probe-kvm"])
{
    var (usable, reason) = XenSharp.Kvm.KvmAccelerator.Probe();
    Console.WriteLine(usable ? "kvm usable" : reason);
    return usable ? 0 : 1;
}

DaemonOptions options;
try
{
    options = DaemonOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"xld: {e.Message}");
    Console.Error.WriteLine(DaemonOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(DaemonOptions.Usage);
    return 0;
}

Directory.CreateDirectory(options.LogDirectory);
using var logFile = new StreamWriter(new FileStream(Path.Combine(options.LogDirectory, "xld.log"), FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
var logLock = new object();
void Log(string message)
{
    string line = $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} xld[{Environment.ProcessId}]: {message}";
    lock (logLock)
    {
        logFile.WriteLine(line);
        Console.Error.WriteLine($"<6>{message}"); // journald's priority prefix: info.
    }
}

XenHypervisor hypervisor;
try
{
    var accel = AcceleratorChoice.Create(options.Accelerator, Log);
    var scheduler = XenSharp.Hypervisor.Scheduling.CreditScheduler.ForHost(options.CgroupName);
    hypervisor = new XenHypervisor(accel, new HostMemory(HostMemory.ReadPhysicalBytes(), options.HostReservationMiB << 20), scheduler);
    Log($"scheduler: credit on {scheduler.Description}");
}
catch (Exception e) when (e is XenSharp.Accel.AcceleratorUnavailableException or ArgumentException)
{
    Console.Error.WriteLine($"xld: {e.Message}");
    return 1;
}
hypervisor.Log.LineLogged += line => Log("(XEN) " + line);

var store = new XenSharp.Dom0.Xenstore.XenstoreStore();
store.Log = m => Log("xenstored: " + m);
using var toolstack = new Toolstack(hypervisor, new ToolstackOptions(options.StateDirectory, options.LogDirectory), store);
await using var xenstored = new XenSharp.Dom0.Xenstore.XenstoreSocketServer(store, options.XenstoredSocket);
xenstored.Start();
Log($"xenstored serving {options.XenstoredSocket}");
var tokens = new TokenStore(options.StateDirectory);
var disks = new VpsDiskStore(options.DiskDirectory, VpsDiskStore.AttachedIn(toolstack));
var api = new ControlApi(toolstack, tokens, disks, m => Log("audit: " + m));
ControlServer server;
try
{
    server = new ControlServer(options.SocketPath, api, Log);
}
catch (Exception e) when (e is InvalidOperationException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"xld: cannot serve {options.SocketPath}: {e.Message}");
    return 1;
}
Log($"serving {options.SocketPath} (accelerator {hypervisor.Accelerator.Name}{(hypervisor.Accelerator.Note is { } note ? $": {note}" : "")})");
HttpApi? http = null;
if (options.HttpListen is not null)
{
    try
    {
        http = new HttpApi(options.HttpListen, options.TlsCert, options.TlsKey, api, tokens, Log);
        await http.StartAsync();
    }
    catch (Exception e) when (e is ArgumentException or IOException or System.Security.Cryptography.CryptographicException)
    {
        Console.Error.WriteLine($"xld: cannot serve HTTP on {options.HttpListen}: {e.Message}");
        await server.DisposeAsync();
        return 1;
    }
}

if (options.AutoDirectory is not null) Autostart.Run(toolstack, options.AutoDirectory);

var stopping = new TaskCompletionSource();
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stopping.TrySetResult(); });
using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stopping.TrySetResult(); });
await stopping.Task;

Log("stopping: asking every domain to shut down");
await server.DisposeAsync();
if (http is not null) await http.DisposeAsync();
await ShutdownAll(toolstack, TimeSpan.FromSeconds(options.ShutdownTimeoutSeconds), Log);
hypervisor.Dispose();
Log("stopped");
return 0;

static async Task ShutdownAll(Toolstack toolstack, TimeSpan timeout, Action<string> log)
{
    var waits = new List<Task>();
    foreach (var d in toolstack.Hypervisor.Domains)
    {
        try
        {
            if (d.ShutdownReason is null) toolstack.RequestShutdown(d, reboot: false);
            waits.Add(toolstack.WaitForShutdownAsync(d, timeout));
        }
        catch (ToolstackException e)
        {
            log($"d{d.Id}: {e.Message}");
        }
    }
    await Task.WhenAll(waits);
    foreach (var d in toolstack.Hypervisor.Domains)
    {
        log($"d{d.Id} ({d.Name}) did not shut down in {timeout.TotalSeconds} s: destroying it");
        toolstack.Destroy(d);
    }
}
