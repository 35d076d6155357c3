using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using XenSharp.Dom0.Xenstore;

namespace XenSharp.Dom0.Tests.Xenstore;

/// <summary>A raw wire-protocol client over a unix socket, as libxenstore talks.</summary>
internal sealed class SocketClient : IDisposable
{
    private readonly Socket _s = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private uint _req;
    public readonly List<(string, string)> Events = [];

    public SocketClient(string path) => _s.Connect(new UnixDomainSocketEndPoint(path));

    public void SendRaw(byte[] m) => _s.Send(m);

    public (XsHeader H, byte[] P) ReceiveOne()
    {
        var hdr = ReadExactly(XsHeader.Size);
        var h = XsHeader.Parse(hdr);
        return (h, ReadExactly((int)h.Length));
    }

    private byte[] ReadExactly(int n)
    {
        var b = new byte[n];
        for (int got = 0; got < n;)
        {
            int r = _s.Receive(b, got, n - got, SocketFlags.None);
            if (r == 0) throw new EndOfStreamException();
            got += r;
        }
        return b;
    }

    public string Req(XsMessageType t, params string[] args)
    {
        uint id = ++_req;
        _s.Send(XsWire.Build(t, id, 0, XsWire.Strings(args)));
        while (true)
        {
            var (h, p) = ReceiveOne();
            string s = Encoding.UTF8.GetString(p);
            if (h.Type == XsMessageType.WatchEvent)
            {
                var parts = s.Split('\0');
                Events.Add((parts[0], parts[1]));
                continue;
            }
            Assert.Equal(id, h.ReqId);
            return s.TrimEnd('\0');
        }
    }

    public (string, string) NextEvent()
    {
        _s.ReceiveTimeout = 5000;
        var (h, p) = ReceiveOne();
        Assert.Equal(XsMessageType.WatchEvent, h.Type);
        var parts = Encoding.UTF8.GetString(p).Split('\0');
        return (parts[0], parts[1]);
    }

    public bool IsClosedByPeer()
    {
        _s.ReceiveTimeout = 5000;
        try { return _s.Receive(new byte[1]) == 0; }
        catch (SocketException) { return true; }
    }

    public void Dispose() => _s.Dispose();
}

public sealed class SocketTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xs-sock-").FullName;
    private readonly XenstoreStore _s = new();
    private XenstoreSocketServer _server = null!;
    private string SocketPath => Path.Combine(_dir, "socket");

    public Task InitializeAsync()
    {
        _server = new XenstoreSocketServer(_s, SocketPath);
        _server.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, true);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void SocketIsOwnerOnly() =>
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(SocketPath) & (UnixFileMode)0x1ff);

    [Fact]
    public async Task ConcurrentClients()
    {
        var tasks = Enumerable.Range(0, 8).Select(i => Task.Run(() =>
        {
            using var c = new SocketClient(SocketPath);
            for (int j = 0; j < 50; j++)
            {
                Assert.Equal("OK", c.Req(XsMessageType.Write, $"/sock/c{i}/k{j}", $"{i}-{j}"));
                Assert.Equal($"{i}-{j}\0", c.Req(XsMessageType.Read, $"/sock/c{i}/k{j}") + "\0");
            }
            uint tx = uint.Parse(c.Req(XsMessageType.TransactionStart, ""));
            Assert.True(tx > 0);
        })).ToArray();
        await Task.WhenAll(tasks);
        using var check = new XenstoreClient(_s);
        Assert.Equal(8, check.Directory("/sock").Length);
        Assert.Equal(50, check.Directory("/sock/c3").Length);
    }

    [Fact]
    public void WatchEventsArePushedAsynchronously()
    {
        using var watcher = new SocketClient(SocketPath);
        using var writer = new SocketClient(SocketPath);
        Assert.Equal("OK", watcher.Req(XsMessageType.Watch, "/pushed", "tok"));
        Assert.Equal(("/pushed", "tok"), watcher.Events.Count > 0 ? watcher.Events[0] : watcher.NextEvent());
        writer.Req(XsMessageType.Write, "/pushed/x", "1");
        Assert.Equal(("/pushed/x", "tok"), watcher.NextEvent());
        // An in-process write reaches the socket watcher too.
        using var local = new XenstoreClient(_s);
        local.Write("/pushed/y", "2");
        Assert.Equal(("/pushed/y", "tok"), watcher.NextEvent());
    }

    [Fact]
    public void OversizedPayloadClosesOnlyThatConnection()
    {
        using var bad = new SocketClient(SocketPath);
        using var good = new SocketClient(SocketPath);
        var hdr = new byte[XsHeader.Size];
        new XsHeader(XsMessageType.Write, 1, 0, 100000).WriteTo(hdr);
        bad.SendRaw(hdr);
        Assert.True(bad.IsClosedByPeer());
        Assert.Equal("OK", good.Req(XsMessageType.Write, "/still", "alive"));
    }
}

/// <summary>Debian's xenstore-utils (libxenstore) against our socket, pointed at it with XENSTORED_PATH.</summary>
public sealed class XenstoreUtilsInteropTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("xs-utils-").FullName;
    private readonly XenstoreStore _s = new();
    private XenstoreSocketServer _server = null!;
    private string SocketPath => Path.Combine(_dir, "socket");

    public Task InitializeAsync()
    {
        _server = new XenstoreSocketServer(_s, SocketPath);
        _server.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, true);
    }

    private static void RequireTools() =>
        Skip.IfNot(File.Exists("/usr/bin/xenstore-read"),
            "xenstore-utils is not installed (apt-get install -y xenstore-utils); cannot run the libxenstore interop test");

    private ProcessStartInfo Psi(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/" + tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["XENSTORED_PATH"] = SocketPath;
        return psi;
    }

    private (int Code, string Out, string Err) Run(string tool, params string[] args)
    {
        using var p = Process.Start(Psi(tool, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(20000))
        {
            p.Kill();
            throw new TimeoutException($"{tool} {string.Join(' ', args)} hung");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [SkippableFact]
    public void WriteReadLsRm()
    {
        RequireTools();
        Assert.Equal(0, Run("xenstore-write", "/vm/name", "guest-one", "/vm/memory", "512").Code);
        var (code, output, err) = Run("xenstore-read", "/vm/name");
        Assert.True(code == 0, err);
        Assert.Equal("guest-one", output.Trim());
        using (var c = new XenstoreClient(_s)) Assert.Equal("512", c.Read("/vm/memory"));

        var ls = Run("xenstore-ls", "/vm");
        Assert.True(ls.Code == 0, ls.Err);
        Assert.Contains("name = \"guest-one\"", ls.Out);
        Assert.Contains("memory = \"512\"", ls.Out);

        Assert.Equal("name\nmemory", Run("xenstore-list", "/vm").Out.Trim());
        Assert.Equal(0, Run("xenstore-exists", "/vm/name").Code);
        Assert.Equal(0, Run("xenstore-chmod", "/vm", "n0", "r5").Code);
        Assert.Contains("n0", Run("xenstore-ls", "-p", "/").Out);

        Assert.Equal(0, Run("xenstore-rm", "/vm/name").Code);
        Assert.NotEqual(0, Run("xenstore-read", "/vm/name").Code);
        Assert.NotEqual(0, Run("xenstore-exists", "/vm/name").Code);
    }

    [SkippableFact]
    public void LsOfADirectoryLargerThanOnePayload()
    {
        RequireTools();
        using var c = new XenstoreClient(_s);
        for (int i = 0; i < 400; i++) c.Write($"/many/child-number-{i:D4}-with-padding", i.ToString());
        var ls = Run("xenstore-list", "/many");
        Assert.True(ls.Code == 0, ls.Err);
        Assert.Equal(400, ls.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [SkippableFact]
    public void WatchSeesInitialAndLaterEvents()
    {
        RequireTools();
        using var p = Process.Start(Psi("xenstore-watch", "-n", "2", "/watched"))!;
        var lines = new System.Collections.Concurrent.BlockingCollection<string>();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Add(e.Data); };
        p.BeginOutputReadLine();
        try
        {
            Assert.True(lines.TryTake(out var first, 20000), "no initial watch event from xenstore-watch");
            Assert.Equal("/watched", first);
            using (var c = new XenstoreClient(_s)) c.Write("/watched/child", "1");
            Assert.True(lines.TryTake(out var second, 20000), "no watch event after write");
            Assert.Equal("/watched/child", second);
            Assert.True(p.WaitForExit(20000));
        }
        finally
        {
            if (!p.HasExited) p.Kill();
        }
    }
}
