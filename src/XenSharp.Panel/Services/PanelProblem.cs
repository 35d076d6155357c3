namespace XenSharp.Panel.Services;

/// <summary>A request the panel refuses, with the HTTP status the API answers and a message the UI shows.</summary>
public sealed class PanelProblem(int status, string message, IDictionary<string, string[]>? errors = null) : Exception(message)
{
    public int Status { get; } = status;
    public IDictionary<string, string[]>? Errors { get; } = errors;

    public static PanelProblem NotFound(string what) => new(404, $"{what} not found");
    public static PanelProblem Invalid(string field, string message) => new(400, message, new Dictionary<string, string[]> { [field] = [message] });
}

/// <summary>Who is acting and from where: every mutation is audited with both.</summary>
public sealed record Actor(Data.User User, string Ip);
