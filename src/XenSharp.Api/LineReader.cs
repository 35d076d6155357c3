using System.Text;

namespace XenSharp.Api;

/// <summary>
/// Reads newline-terminated UTF-8 lines from a stream with a length limit, and can hand back whatever it
/// buffered past the last line, so a connection can switch to raw bytes (the console) without losing any.
/// </summary>
public sealed class LineReader(Stream stream, int maxLineBytes = 4 << 20)
{
    private byte[] _buffer = new byte[8192];
    private int _start, _end;

    /// <summary>The next line without its terminator, or null at end of stream.</summary>
    public async Task<string?> ReadLineAsync(CancellationToken cancel = default)
    {
        while (true)
        {
            int nl = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (nl >= 0)
            {
                string line = Encoding.UTF8.GetString(_buffer, _start, nl - _start).TrimEnd('\r');
                _start = nl + 1;
                return line;
            }
            if (_end - _start >= maxLineBytes) throw new IOException($"line longer than {maxLineBytes} bytes");
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length) Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, maxLineBytes + 1));
            int n = await stream.ReadAsync(_buffer.AsMemory(_end), cancel);
            if (n == 0)
            {
                if (_end == _start) return null;
                string rest = Encoding.UTF8.GetString(_buffer, _start, _end - _start);
                _start = _end;
                return rest;
            }
            _end += n;
        }
    }

    /// <summary>Bytes read from the stream but not yet returned as a line.</summary>
    public ReadOnlyMemory<byte> TakeBuffered()
    {
        var rest = _buffer.AsMemory(_start, _end - _start).ToArray();
        _start = _end = 0;
        return rest;
    }
}
