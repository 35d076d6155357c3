using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using XenSharp.Api;

namespace XenSharp.Daemon;

/// <summary>Who is on the other end of a control connection, from the kernel (SO_PEERCRED), for the audit log.</summary>
public sealed record Caller(int Pid, int Uid, string Transport)
{
    public override string ToString() => Pid < 0 ? Transport : $"{Transport} pid {Pid} uid {Uid}";
}

/// <summary>
/// Serves the control protocol on a unix socket: root only (mode 0600), one JSON request per line, many
/// clients at once. A connection that asks for a console becomes a raw byte stream.
/// </summary>
public sealed class ControlServer : IAsyncDisposable
{
    private const int MaxRequestBytes = 4 << 20;
    private readonly Socket _listener;
    private readonly ControlApi _api;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly Action<string> _log;

    public string SocketPath { get; }

    public ControlServer(string socketPath, ControlApi api, Action<string> log)
    {
        SocketPath = socketPath;
        _api = api;
        _log = log;
        Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
        if (File.Exists(socketPath)) ProbeStaleSocket(socketPath);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(64);
        _acceptLoop = AcceptLoop();
    }

    /// <summary>Refuses to start beside a live xld; removes a socket left by one that died.</summary>
    private static void ProbeStaleSocket(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            File.Delete(path);
            return;
        }
        throw new InvalidOperationException($"another xld is already serving {path}");
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (OperationCanceledException) { break; }
            catch (SocketException) { break; }
            catch (ObjectDisposedException) { break; }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(Socket socket)
    {
        var caller = PeerOf(socket);
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        var reader = new LineReader(stream, MaxRequestBytes);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                string? line = await reader.ReadLineAsync(_stop.Token);
                if (line is null) break;
                if (line.Length == 0) continue;
                Request? request;
                try
                {
                    request = Protocol.Deserialize<Request>(line);
                }
                catch (System.Text.Json.JsonException e)
                {
                    await Send(stream, Response.Failure($"malformed request: {e.Message}"));
                    continue;
                }
                var outcome = await _api.HandleAsync(request, caller, _stop.Token);
                await Send(stream, outcome.Response);
                if (outcome.Stream is { } takeOver)
                {
                    await takeOver(stream, reader, _stop.Token);
                    break;
                }
            }
        }
        catch (IOException) { }
        catch (OperationCanceledException) { }
        catch (Exception e)
        {
            _log($"control connection from {caller}: {e.GetType().Name}: {e.Message}");
        }
    }

    private static async Task Send(Stream stream, Response response)
    {
        var bytes = Encoding.UTF8.GetBytes(Protocol.Serialize(response) + "\n");
        await stream.WriteAsync(bytes);
        await stream.FlushAsync();
    }

    private static Caller PeerOf(Socket socket)
    {
        const int SolSocket = 1, SoPeercred = 17;
        var cred = new byte[12];
        try
        {
            socket.GetRawSocketOption(SolSocket, SoPeercred, cred);
            return new Caller(BinaryPrimitives.ReadInt32LittleEndian(cred), BinaryPrimitives.ReadInt32LittleEndian(cred.AsSpan(4)), "unix");
        }
        catch (SocketException)
        {
            return new Caller(-1, -1, "unix");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        try { await _acceptLoop; } catch { }
        try { File.Delete(SocketPath); } catch (IOException) { }
    }
}
