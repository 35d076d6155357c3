using System.Globalization;
using System.Text;

namespace XenSharp.Toolstack.Config;

/// <summary>A value in an xl.cfg file: an atom (string or number) or a list. Remembers where it started.</summary>
public abstract record XlValue(int Line)
{
    /// <summary>The value rendered back in xl.cfg syntax.</summary>
    public abstract string ToXlText();
}

/// <summary>
/// A string or number atom. libxlu keeps numbers as their source text and converts on use,
/// so <c>memory = 512</c> and <c>memory = "512"</c> mean the same thing.
/// </summary>
public sealed record XlAtom(string Text, bool IsNumber, int Line) : XlValue(Line)
{
    public override string ToXlText() => IsNumber ? Text : XlCfgText.Quote(Text);
}

public sealed record XlList(ValueList<XlValue> Items, int Line) : XlValue(Line)
{
    public override string ToXlText() => "[" + string.Join(", ", Items.Select(i => i.ToXlText())) + "]";
}

/// <summary>
/// The effective value of one key. <see cref="Appended"/> is true when the last statement was
/// <c>+=</c> (libxlu refuses such a setting where a number is wanted).
/// </summary>
public sealed record XlSetting(string Key, XlValue Value, int Line, string Source, bool Appended);

/// <summary>Result of the syntax pass: effective settings (last assignment wins) and syntax diagnostics.</summary>
public sealed class XlConfigFile
{
    internal XlConfigFile(IReadOnlyList<XlSetting> settings, IReadOnlyList<XlDiagnostic> diagnostics)
    {
        Settings = settings;
        Diagnostics = diagnostics;
        _byKey = settings.ToDictionary(s => s.Key, StringComparer.Ordinal);
    }

    private readonly Dictionary<string, XlSetting> _byKey;

    /// <summary>Effective settings in order of each key's first appearance.</summary>
    public IReadOnlyList<XlSetting> Settings { get; }

    public IReadOnlyList<XlDiagnostic> Diagnostics { get; }

    public bool HasErrors => Diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);

    public XlSetting? this[string key] => _byKey.GetValueOrDefault(key);

    /// <summary>
    /// Parses xl.cfg text. <paramref name="overrides"/> are <c>xl create cfg key=value …</c> extras:
    /// xl appends each as one more line after the file, so they use the same grammar,
    /// override earlier assignments and can <c>+=</c> onto file values. They are reported
    /// with source "command line" and the argument's 1-based position as line.
    /// </summary>
    public static XlConfigFile Parse(string text, string sourceName = "xl.cfg", IEnumerable<string>? overrides = null)
    {
        var state = new XlCfgParser.State();
        XlCfgParser.Parse(text.AsSpan(), sourceName, 0, state);
        if (overrides is not null)
        {
            var n = 0;
            foreach (var extra in overrides)
                XlCfgParser.Parse(extra.AsSpan(), "command line", n++, state);
        }
        return new XlConfigFile(state.Effective(), state.Diagnostics);
    }
}

internal static class XlCfgText
{
    /// <summary>Quotes a string so the libxlu lexer reads it back unchanged.</summary>
    public static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case < ' ' or '\x7f': sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }

    public static bool IsKeyStart(char c) => c is >= 'a' and <= 'z';
    public static bool IsKeyChar(char c) => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '.' or '_';
}

internal enum TokenKind { Ident, Number, String, Comma, LBracket, RBracket, Assign, AddAssign, Semicolon, Newline, Eof, Error }

internal readonly record struct Token(TokenKind Kind, string Text, int Line);

/// <summary>
/// Tokenizer following libxlu_cfg_l.l: keys are <c>[a-z][._0-9a-z]*</c>, numbers are
/// <c>[0-9][0-9a-fx]*</c> (kept as text), strings are single or double quoted on one line with
/// C-style escapes, <c>#</c> comments run to end of line. Anything else (e.g. <c>-</c>, <c>.</c>,
/// parentheses: Python-style configs) is a lexical error covering the rest of the word.
/// </summary>
internal ref struct XlCfgLexer
{
    private readonly ReadOnlySpan<char> _src;
    private int _pos;

    public XlCfgLexer(ReadOnlySpan<char> src, int firstLine)
    {
        _src = src;
        Line = firstLine;
    }

    public int Line { get; private set; }

    public Token Next()
    {
        // '\r' is skipped too so CRLF files work (libxlu would reject them; no reason to).
        while (_pos < _src.Length && _src[_pos] is ' ' or '\t' or '\r') _pos++;
        if (_pos >= _src.Length) return new(TokenKind.Eof, "", Line);

        var c = _src[_pos];
        var start = _pos;
        switch (c)
        {
            case '\n':
                _pos++;
                return new(TokenKind.Newline, "", Line++);
            case '#':
                while (_pos < _src.Length && _src[_pos] != '\n') _pos++;
                return Next();
            case ',': _pos++; return new(TokenKind.Comma, ",", Line);
            case '[': _pos++; return new(TokenKind.LBracket, "[", Line);
            case ']': _pos++; return new(TokenKind.RBracket, "]", Line);
            case ';': _pos++; return new(TokenKind.Semicolon, ";", Line);
            case '=': _pos++; return new(TokenKind.Assign, "=", Line);
            case '+' when _pos + 1 < _src.Length && _src[_pos + 1] == '=':
                _pos += 2;
                return new(TokenKind.AddAssign, "+=", Line);
            case '"' or '\'':
                return LexString(c);
        }

        if (XlCfgText.IsKeyStart(c))
        {
            while (_pos < _src.Length && XlCfgText.IsKeyChar(_src[_pos])) _pos++;
            return new(TokenKind.Ident, _src[start.._pos].ToString(), Line);
        }
        if (char.IsAsciiDigit(c))
        {
            while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] is >= 'a' and <= 'f' or 'x')) _pos++;
            return new(TokenKind.Number, _src[start.._pos].ToString(), Line);
        }

        // Lexical error: swallow the rest of the word, as libxlu does, and report it.
        while (_pos < _src.Length && _src[_pos] is not (' ' or '\t' or '\n' or '\r')) _pos++;
        return new(TokenKind.Error, _src[start.._pos].ToString(), Line);
    }

    private Token LexString(char quote)
    {
        var sb = new StringBuilder();
        var start = _pos++;
        while (true)
        {
            if (_pos >= _src.Length || _src[_pos] == '\n')
                return new(TokenKind.Error, "unterminated string " + _src[start.._pos].ToString(), Line);
            var c = _src[_pos++];
            if (c == quote) return new(TokenKind.String, sb.ToString(), Line);
            if (c != '\\') { sb.Append(c); continue; }
            if (_pos >= _src.Length || _src[_pos] == '\n')
                return new(TokenKind.Error, "unterminated string " + _src[start.._pos].ToString(), Line);
            var e = _src[_pos++];
            switch (e)
            {
                case '"' or '\'' or '\\': sb.Append(e); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x':
                {
                    var n = 0;
                    var v = 0;
                    while (n < 2 && _pos < _src.Length && char.IsAsciiHexDigit(_src[_pos]))
                    {
                        v = v * 16 + Convert.ToInt32(_src[_pos++].ToString(), 16);
                        n++;
                    }
                    if (n == 0) return SkipBadString(quote, start, "invalid hex escape '\\x' in quoted string");
                    sb.Append((char)v);
                    break;
                }
                case >= '0' and <= '7':
                {
                    var v = e - '0';
                    for (var n = 1; n < 3 && _pos < _src.Length && _src[_pos] is >= '0' and <= '7'; n++)
                        v = v * 8 + (_src[_pos++] - '0');
                    sb.Append((char)v);
                    break;
                }
                default:
                    return SkipBadString(quote, start, $"invalid escape '\\{e}' in quoted string");
            }
        }
    }

    private Token SkipBadString(char quote, int start, string message)
    {
        // Resynchronise at the closing quote so the rest of the line still parses.
        while (_pos < _src.Length && _src[_pos] != '\n')
        {
            var c = _src[_pos++];
            if (c == '\\' && _pos < _src.Length && _src[_pos] != '\n') _pos++;
            else if (c == quote) break;
        }
        return new(TokenKind.Error, message + ": " + _src[start.._pos].ToString(), Line);
    }
}

/// <summary>
/// Recursive-descent parser for the libxlu_cfg_y.y grammar:
/// statements are <c>key = value</c> or <c>key += value</c> ended by newline or <c>;</c>;
/// a value is an atom or <c>[ value, value, … ]</c> where newlines are allowed after <c>[</c> and
/// around commas and a trailing comma is allowed. Errors skip to the end of the line
/// (or past the open list) and parsing continues, so all errors in a file are reported.
/// </summary>
internal static class XlCfgParser
{
    internal sealed class State
    {
        public readonly List<XlDiagnostic> Diagnostics = [];
        private readonly Dictionary<string, XlSetting> _settings = new(StringComparer.Ordinal);
        private readonly List<string> _order = [];

        public void Store(string key, XlValue value, bool add, int line, string source)
        {
            if (add && _settings.TryGetValue(key, out var prev))
            {
                switch (prev.Value, value)
                {
                    case (XlAtom a, XlAtom b):
                        value = new XlAtom(a.Text + b.Text, false, b.Line);
                        break;
                    case (XlList a, XlList b):
                        value = new XlList(a.Items.Concat(b.Items).ToValueList(), b.Line);
                        break;
                    default:
                        Diagnostics.Add(new(DiagnosticSeverity.Error, source, line, key, value.ToXlText(),
                            "can't use += to add a list to a string or a string to a list"));
                        return;
                }
            }
            if (!_settings.ContainsKey(key)) _order.Add(key);
            _settings[key] = new XlSetting(key, value, line, source, add);
        }

        public List<XlSetting> Effective() => _order.Select(k => _settings[k]).ToList();
    }

    private sealed class SyntaxError(string message, int line) : Exception(message)
    {
        public int Line { get; } = line;
    }

    public static void Parse(ReadOnlySpan<char> text, string source, int lineOffset, State state)
    {
        var lexer = new XlCfgLexer(text, lineOffset + 1);
        var tok = lexer.Next();
        while (tok.Kind != TokenKind.Eof)
        {
            if (tok.Kind is TokenKind.Newline or TokenKind.Semicolon)
            {
                tok = lexer.Next();
                continue;
            }

            string? key = null;
            var depth = 0;
            try
            {
                if (tok.Kind != TokenKind.Ident)
                    throw new SyntaxError(tok.Kind == TokenKind.Error && tok.Text.StartsWith("unterminated", StringComparison.Ordinal)
                        ? tok.Text
                        : $"expected a key (lowercase letters, digits, '_' and '.') at the start of a setting, found {Describe(tok)}", tok.Line);
                key = tok.Text;
                tok = lexer.Next();
                if (tok.Kind is not (TokenKind.Assign or TokenKind.AddAssign))
                    throw new SyntaxError($"expected '=' or '+=' after the key, found {Describe(tok)}", tok.Line);
                var add = tok.Kind == TokenKind.AddAssign;
                tok = lexer.Next();
                var value = ParseValue(ref lexer, ref tok, ref depth);
                if (tok.Kind is not (TokenKind.Newline or TokenKind.Semicolon or TokenKind.Eof))
                    throw new SyntaxError($"expected end of line or ';' after the value, found {Describe(tok)}", tok.Line);
                state.Store(key, value, add, value.Line, source);
            }
            catch (SyntaxError e)
            {
                state.Diagnostics.Add(new(DiagnosticSeverity.Error, source, e.Line, key, null, e.Message));
                // Recover like the grammar's "error NEWLINE" rule, but first leave any open list
                // so the rest of a multi-line list doesn't produce a cascade of errors.
                while (tok.Kind != TokenKind.Eof && !(tok.Kind == TokenKind.Newline && depth <= 0))
                {
                    if (tok.Kind == TokenKind.LBracket) depth++;
                    else if (tok.Kind == TokenKind.RBracket) depth--;
                    tok = lexer.Next();
                }
            }
        }
    }

    private static XlValue ParseValue(ref XlCfgLexer lexer, ref Token tok, ref int depth)
    {
        switch (tok.Kind)
        {
            case TokenKind.String or TokenKind.Number:
            {
                var atom = new XlAtom(tok.Text, tok.Kind == TokenKind.Number, tok.Line);
                tok = lexer.Next();
                return atom;
            }
            case TokenKind.LBracket:
            {
                var line = tok.Line;
                depth++;
                var items = new List<XlValue>();
                tok = SkipNewlines(ref lexer, lexer.Next());
                while (tok.Kind != TokenKind.RBracket)
                {
                    if (tok.Kind == TokenKind.Eof)
                        throw new SyntaxError($"list opened on line {line} is not closed: expected ']'", tok.Line);
                    items.Add(ParseValue(ref lexer, ref tok, ref depth));
                    tok = SkipNewlines(ref lexer, tok);
                    if (tok.Kind == TokenKind.Comma)
                        tok = SkipNewlines(ref lexer, lexer.Next());
                    else if (tok.Kind != TokenKind.RBracket)
                        throw new SyntaxError(tok.Kind == TokenKind.Eof
                            ? $"list opened on line {line} is not closed: expected ']'"
                            : $"expected ',' or ']' in list, found {Describe(tok)}", tok.Line);
                }
                depth--;
                tok = lexer.Next();
                return new XlList(items.ToValueList(), line);
            }
            default:
                throw new SyntaxError($"expected a value (a quoted string, a number or a [list]), found {Describe(tok)}", tok.Line);
        }
    }

    private static Token SkipNewlines(ref XlCfgLexer lexer, Token tok)
    {
        while (tok.Kind == TokenKind.Newline) tok = lexer.Next();
        return tok;
    }

    private static string Describe(Token tok) => tok.Kind switch
    {
        TokenKind.Eof => "end of file",
        TokenKind.Newline => "end of line",
        TokenKind.String => $"string {XlCfgText.Quote(tok.Text)}",
        TokenKind.Number => $"number {tok.Text}",
        TokenKind.Ident => $"word '{tok.Text}' (strings must be quoted)",
        TokenKind.Error when tok.Text.StartsWith("unterminated", StringComparison.Ordinal) || tok.Text.StartsWith("invalid", StringComparison.Ordinal) => tok.Text,
        TokenKind.Error when tok.Text.Length > 0 && tok.Text[0] is '-' or '.' or '+' or '(' or ')' or ':' =>
            $"'{tok.Text}' (xl.cfg has no negative, fractional or Python-style values; quote strings)",
        TokenKind.Error => $"unexpected '{tok.Text}'",
        _ => $"'{tok.Text}'",
    };
}
