using System.Security.Cryptography;
using System.Text;

namespace XenSharp.Panel.Security;

/// <summary>Panel API tokens look like "xsp_ID_SECRET"; the database keeps SHA-256(SECRET) only (the secret is random, so no stretching is needed).</summary>
public static class ApiTokens
{
    public static readonly string[] Scopes = ["read", "write", "admin"];

    public static (string Secret, string Hash) NewSecret()
    {
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        return (secret, HashSecret(secret));
    }

    public static string HashSecret(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    public static string Format(long id, string secret) => $"xsp_{id}_{secret}";

    public static bool TryParse(string token, out long id, out string secret)
    {
        id = 0; secret = "";
        var p = token.Split('_');
        if (p.Length != 3 || p[0] != "xsp" || !long.TryParse(p[1], out id)) return false;
        secret = p[2];
        return true;
    }

    public static bool Matches(string secret, string storedHash) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(HashSecret(secret)), Encoding.ASCII.GetBytes(storedHash));
}
