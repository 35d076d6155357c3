using System.Security.Cryptography;

namespace XenSharp.Panel.Security;

/// <summary>PBKDF2-SHA256 password hashes, stored as "pbkdf2-sha256$iterations$salt$hash" so the cost can rise later.</summary>
public static class Passwords
{
    public const int Iterations = 210_000; // OWASP's 2023 floor for PBKDF2-HMAC-SHA256
    private const int SaltBytes = 16, HashBytes = 32;

    public static string Hash(string password)
    {
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Rfc2898DeriveBytes.Pbkdf2(password, salt, Iterations, HashAlgorithmName.SHA256, HashBytes);
        return $"pbkdf2-sha256${Iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    public static bool Verify(string password, string stored)
    {
        var p = stored.Split('$');
        if (p.Length != 4 || p[0] != "pbkdf2-sha256" || !int.TryParse(p[1], out var it)) return false;
        var expected = Convert.FromBase64String(p[3]);
        var actual = Rfc2898DeriveBytes.Pbkdf2(password, Convert.FromBase64String(p[2]), it, HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>A hash of a random password, spent on unknown usernames so that timing does not reveal which names exist.</summary>
    public static readonly string Dummy = Hash(Convert.ToBase64String(RandomNumberGenerator.GetBytes(16)));

    public static string? Check(string password) =>
        password.Length < 10 ? "password must be at least 10 characters" : password.Length > 200 ? "password is too long" : null;
}
