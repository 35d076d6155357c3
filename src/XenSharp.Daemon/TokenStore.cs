using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using XenSharp.Toolstack;

namespace XenSharp.Daemon;

public enum TokenScope { Read, Admin }

public sealed record TokenInfo(string Name, TokenScope Scope, DateTime CreatedUtc);

/// <summary>
/// Bearer tokens for xld's HTTP API. Only a SHA-256 of each token is stored (tokens.json in the state
/// directory, written atomically); the token itself is shown once, when it is created.
/// </summary>
public sealed class TokenStore
{
    private sealed record Entry(string Name, TokenScope Scope, DateTime CreatedUtc, string Sha256);

    private readonly string _path;
    private readonly object _lock = new();
    private List<Entry> _entries;

    public TokenStore(string stateDirectory)
    {
        _path = Path.Combine(stateDirectory, "tokens.json");
        _entries = File.Exists(_path) ? JsonSerializer.Deserialize<List<Entry>>(File.ReadAllText(_path)) ?? [] : [];
    }

    public string Create(string name, TokenScope scope)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ArgumentException($"token name '{name}' must be 1-64 letters, digits, '-', '_' or '.'");
        string token = "xst_" + Base64Url(RandomNumberGenerator.GetBytes(32));
        lock (_lock)
        {
            if (_entries.Any(e => e.Name == name)) throw new ArgumentException($"a token named '{name}' already exists (revoke it first)");
            _entries = [.. _entries, new Entry(name, scope, DateTime.UtcNow, Hash(token))];
            Save();
        }
        return token;
    }

    public IReadOnlyList<TokenInfo> List()
    {
        lock (_lock) return _entries.Select(e => new TokenInfo(e.Name, e.Scope, e.CreatedUtc)).ToArray();
    }

    public void Revoke(string name)
    {
        lock (_lock)
        {
            if (!_entries.Any(e => e.Name == name)) throw new ArgumentException($"no token named '{name}'");
            _entries = _entries.Where(e => e.Name != name).ToList();
            Save();
        }
    }

    /// <summary>The token's name and scope, or null. Compares hashes in constant time.</summary>
    public TokenInfo? Validate(string token)
    {
        var hash = Convert.FromHexString(Hash(token));
        lock (_lock)
        {
            TokenInfo? found = null;
            foreach (var e in _entries)
                if (CryptographicOperations.FixedTimeEquals(hash, Convert.FromHexString(e.Sha256)))
                    found = new TokenInfo(e.Name, e.Scope, e.CreatedUtc);
            return found;
        }
    }

    private void Save() => AtomicFile.WriteAllText(_path, JsonSerializer.Serialize(_entries), UnixFileMode.UserRead | UnixFileMode.UserWrite);

    private static string Hash(string token) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string Base64Url(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
