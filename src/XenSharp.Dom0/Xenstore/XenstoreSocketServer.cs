using System.Net.Sockets;

namespace XenSharp.Dom0.Xenstore;

/// <summary>
/// xenstored's unix socket for dom0 tools (libxenstore connects to XENSTORED_PATH, default /run/xenstored/socket).
/// Every client is privileged dom0, as xenstored treats its socket; same wire protocol as the rings.
/// </summary>
public sealed class XenstoreSocketServer : IAsyncDisposable
{
    public const string DefaultPath = "/run/xenstored/socket";

    private readonly XenstoreStore _store;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _clients = [];
    private Task? _acceptLoop;
    private int _nextClient;

    public string Path { get; }

    public XenstoreSocketServer(XenstoreStore store, string path = DefaultPath)
    {
        _store = store;
        Path = path;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        if (File.Exists(path)) File.Delete(path); // stale socket from an earlier daemon
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        // Dom0 root only: every client of this socket gets full privileges.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(64);
    }

    public void Start() => _acceptLoop ??= Task.Run(AcceptLoopAsync);

    private async Task AcceptLoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptAsync(_cts.Token).ConfigureAwait(false); }
            catch (Exception) when (_cts.IsCancellationRequested) { return; }
            catch (SocketException e)
            {
                _store.Log?.Invoke($"xenstore: accept failed: {e.Message}");
                continue;
            }
            var t = Task.Run(() => ServeAsync(s));
            lock (_clients)
            {
                _clients.RemoveAll(c => c.IsCompleted);
                _clients.Add(t);
            }
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        var conn = _store.Connect(0, $"socket client {Interlocked.Increment(ref _nextClient)}");
        var wake = new SemaphoreSlim(0);
        conn.OutputAvailable += _ => wake.Release();
        using var done = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
        var writer = Task.Run(() => WriteLoopAsync(socket, conn, wake, done.Token));
        var buffer = new byte[8192];
        try
        {
            while (!done.IsCancellationRequested)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(), SocketFlags.None, done.Token).ConfigureAwait(false);
                if (n == 0) break;
                // A payload over 4096 kills the connection, as xenstored does.
                if (!conn.Feed(buffer.AsSpan(0, n))) break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
        finally
        {
            conn.Close();
            done.Cancel();
            try { await writer.ConfigureAwait(false); } catch (OperationCanceledException) { }
            socket.Dispose();
        }
    }

    private static async Task WriteLoopAsync(Socket socket, XenstoreConnection conn, SemaphoreSlim wake, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                while (conn.TryDequeue(out var m))
                    for (int sent = 0; sent < m.Length;)
                        sent += await socket.SendAsync(m.AsMemory(sent), SocketFlags.None, ct).ConfigureAwait(false);
                await wake.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            try { socket.Shutdown(SocketShutdown.Both); } catch (Exception) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _cts.Cancel();
        _listener.Dispose();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        Task[] clients;
        lock (_clients) clients = [.. _clients];
        try { await Task.WhenAll(clients).ConfigureAwait(false); } catch (Exception) { }
        try { File.Delete(Path); } catch (IOException) { }
        _cts.Dispose();
    }
}
