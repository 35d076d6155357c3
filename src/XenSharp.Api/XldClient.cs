using System.Net.Sockets;
using System.Text;

namespace XenSharp.Api;

/// <summary>A connection to xld's control socket: requests in, replies out, and the console stream.</summary>
public sealed class XldClient : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly LineReader _reader;

    public XldClient(string socketPath)
    {
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            _socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e)
        {
            _socket.Dispose();
            string why = e.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable or SocketError.ConnectionRefused => "is xld running? start it with 'bin/xld' (as root)",
                SocketError.AccessDenied => "permission denied: xl must run as root, like Xen's xl",
                _ => e.Message,
            };
            if (!File.Exists(socketPath)) why = "no such socket: is xld running? start it with 'bin/xld' (as root)";
            throw new XldUnavailableException($"cannot connect to xld at {socketPath}: {why}");
        }
        _stream = new NetworkStream(_socket, ownsSocket: true);
        _reader = new LineReader(_stream);
    }

    public static string DefaultSocketPath => Environment.GetEnvironmentVariable("XENSHARP_XLD_SOCKET") is { Length: > 0 } p ? p : Protocol.DefaultSocketPath;

    public async Task<Response> CallAsync(string command, object? args = null, CancellationToken cancel = default)
    {
        var request = new Request(command, args is null ? null : System.Text.Json.JsonSerializer.SerializeToElement(args, Protocol.Json));
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(Protocol.Serialize(request) + "\n"), cancel);
        string line = await _reader.ReadLineAsync(cancel) ?? throw new IOException("xld closed the connection");
        return Protocol.Deserialize<Response>(line);
    }

    /// <summary>Calls and returns the typed result, or throws <see cref="XldCommandException"/> with xld's error.</summary>
    public async Task<T> CallAsync<T>(string command, object? args = null, CancellationToken cancel = default)
    {
        var r = await CallAsync(command, args, cancel);
        if (!r.Ok) throw new XldCommandException(r.Error ?? "unknown error");
        return r.ResultAs<T>()!;
    }

    public async Task CallCheckedAsync(string command, object? args = null, CancellationToken cancel = default)
    {
        var r = await CallAsync(command, args, cancel);
        if (!r.Ok) throw new XldCommandException(r.Error ?? "unknown error");
    }

    /// <summary>After a successful "console" call: the raw stream, and any bytes already read past the reply.</summary>
    public (Stream Stream, ReadOnlyMemory<byte> Buffered) TakeStream() => (_stream, _reader.TakeBuffered());

    public void Dispose() => _stream.Dispose();
}

public sealed class XldUnavailableException(string message) : Exception(message);
public sealed class XldCommandException(string message) : Exception(message);
