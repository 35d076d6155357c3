using System.Text.RegularExpressions;

namespace XenSharp.Panel.Services;

/// <summary>Input rules shared by the UI and the API, so both refuse the same things with the same words.</summary>
public static partial class Validation
{
    [GeneratedRegex("^[a-z][a-z0-9-]{1,31}$")]
    private static partial Regex VpsNameRx();
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.@-]{2,31}$")]
    private static partial Regex UsernameRx();
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")]
    private static partial Regex LabelRx();

    public static void VpsName(string? name)
    {
        if (name is null || !VpsNameRx().IsMatch(name))
            throw PanelProblem.Invalid("name", "name must be 2-32 characters: lower-case letters, digits and '-', starting with a letter");
    }

    public static void Username(string? name)
    {
        if (name is null || !UsernameRx().IsMatch(name))
            throw PanelProblem.Invalid("username", "username must be 3-32 characters: letters, digits and _ . @ -");
    }

    public static void Label(string field, string? value)
    {
        if (value is null || !LabelRx().IsMatch(value))
            throw PanelProblem.Invalid(field, $"{field} must be 1-64 characters: letters, digits, space and _ . + -");
    }

    public static void Range(string field, long value, long min, long max)
    {
        if (value < min || value > max) throw PanelProblem.Invalid(field, $"{field} must be between {min} and {max}");
    }

    /// <summary>Paths end up quoted inside an xl.cfg: refuse anything that could break out of the quotes.</summary>
    public static void HostPath(string field, string? value, bool required)
    {
        if (string.IsNullOrEmpty(value))
        {
            if (required) throw PanelProblem.Invalid(field, $"{field} is required");
            return;
        }
        if (!value.StartsWith('/') || value.Length > 1024 || value.Any(c => c is '"' or '\'' or '\\' || char.IsControl(c)))
            throw PanelProblem.Invalid(field, $"{field} must be an absolute path on the host without quotes or control characters");
    }

    public static void CmdLine(string field, string? value)
    {
        if (value is not null && (value.Length > 1024 || value.Any(c => c is '"' or '\\' || char.IsControl(c))))
            throw PanelProblem.Invalid(field, $"{field} must not contain quotes, backslashes or control characters");
    }

    public static void HostUrl(string? url)
    {
        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https") || u.Query.Length > 0)
            throw PanelProblem.Invalid("url", "url must be an http:// or https:// address of the host's xld, like https://host1.example:8443");
    }
}
