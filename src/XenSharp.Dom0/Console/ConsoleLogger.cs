using XenSharp.Hypervisor;

namespace XenSharp.Dom0.Console;

/// <summary>
/// Copies a domain's console output to its log file, as xenconsoled does with
/// <c>/var/log/xen/console/guest-NAME.log</c>. Every chunk goes straight to write(2), unbuffered, so a crash of
/// xld loses nothing the guest printed (the kernel's page cache holds it); no fsync per chunk, which would put a
/// disk flush on the vCPU's path for every byte.
/// </summary>
public sealed class ConsoleLogger : IDisposable
{
    private readonly FileStream _file;
    private readonly IDisposable _subscription;
    private readonly object _lock = new();
    private bool _disposed;

    public string Path { get; }

    public ConsoleLogger(DomainConsole console, string directory, string domainName)
    {
        Directory.CreateDirectory(directory);
        Path = System.IO.Path.Combine(directory, $"guest-{domainName}.log");
        _file = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        _subscription = console.Subscribe(Append, replayHistory: false);
    }

    private void Append(ReadOnlyMemory<byte> data)
    {
        lock (_lock)
        {
            if (_disposed) return;
            try
            {
                _file.Write(data.Span);
            }
            catch (IOException)
            {
                // A full disk must not stop the guest: the console history still holds recent output.
            }
        }
    }

    public void Dispose()
    {
        _subscription.Dispose();
        lock (_lock)
        {
            _disposed = true;
            _file.Dispose();
        }
    }
}
