namespace XenSharp.Toolstack.Config;

public enum DiagnosticSeverity
{
    /// <summary>A known key that XenSharp accepts but does not act on yet.</summary>
    Note,
    /// <summary>Suspicious but usable (unknown key, unsupported feature).</summary>
    Warning,
    /// <summary>The configuration cannot be used.</summary>
    Error,
}

/// <summary>
/// One finding about a configuration, located by source name (file path or "command line")
/// and 1-based line number. <see cref="Key"/> and <see cref="ValueText"/> are set when known.
/// </summary>
public sealed record XlDiagnostic(
    DiagnosticSeverity Severity,
    string Source,
    int Line,
    string? Key,
    string? ValueText,
    string Message)
{
    public override string ToString()
    {
        var where = Line > 0 ? $"{Source} line {Line}" : Source;
        var prefix = Severity switch
        {
            DiagnosticSeverity.Warning => "warning: ",
            DiagnosticSeverity.Note => "note: ",
            _ => "",
        };
        if (Key is null) return $"{where}: {prefix}{Message}";
        if (ValueText is null) return $"{where}: {prefix}{Key}: {Message}";
        return $"{where}: {prefix}{Key} = {ValueText}: {Message}";
    }
}

/// <summary>Thrown by the throwing parse entry points; carries every error found, not just the first.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(IReadOnlyList<XlDiagnostic> diagnostics)
        : base(BuildMessage(diagnostics)) => Diagnostics = diagnostics;

    /// <summary>All diagnostics (errors first in file order, then warnings and notes are included too).</summary>
    public IReadOnlyList<XlDiagnostic> Diagnostics { get; }

    public IEnumerable<XlDiagnostic> Errors => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error);

    private static string BuildMessage(IReadOnlyList<XlDiagnostic> diagnostics)
    {
        var errors = diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        return errors.Count switch
        {
            0 => "invalid configuration",
            1 => errors[0].ToString(),
            _ => $"{errors.Count} errors in configuration:" + Environment.NewLine +
                 string.Join(Environment.NewLine, errors),
        };
    }
}

/// <summary>Result of a non-throwing parse: a config when there were no errors, plus all diagnostics.</summary>
public sealed record DomainConfigParseResult(DomainConfig? Config, IReadOnlyList<XlDiagnostic> Diagnostics)
{
    public bool Success => Config is not null;
    public IEnumerable<XlDiagnostic> Errors => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error);
    public IEnumerable<XlDiagnostic> Warnings => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Warning);
    public IEnumerable<XlDiagnostic> Notes => Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Note);
}
