namespace XenSharp.Api;

/// <summary>Sizes as xl takes them: a number of MiB, or a number with a b, k, m, g or t suffix.</summary>
public static class MemorySize
{
    public static ulong Parse(string text, string what = "memory size")
    {
        var t = text.Trim().ToLowerInvariant();
        int shift = 20;
        if (t.Length > 0 && char.IsLetter(t[^1]))
        {
            shift = t[^1] switch
            {
                'b' => 0, 'k' => 10, 'm' => 20, 'g' => 30, 't' => 40,
                _ => throw new ArgumentException($"{what} '{text}': unknown suffix '{t[^1]}' (use b, k, m, g or t)"),
            };
            t = t[..^1];
        }
        if (!ulong.TryParse(t, out ulong n) || n == 0 || n > (ulong.MaxValue >> shift))
            throw new ArgumentException($"{what} '{text}': expected a positive whole number, optionally with a b/k/m/g/t suffix");
        ulong bytes = n << shift;
        return (bytes + 4095) & ~4095UL;
    }
}
