using XenSharp.Toolstack.Config;

namespace XenSharp.Toolstack.Tests.Config;

public sealed class SyntaxTests
{
    private static XlConfigFile Ok(string text, params string[] overrides)
    {
        var f = XlConfigFile.Parse(text, "test.cfg", overrides);
        Assert.False(f.HasErrors, string.Join("\n", f.Diagnostics));
        return f;
    }

    private static string Str(XlConfigFile f, string key) => Assert.IsType<XlAtom>(f[key]!.Value).Text;

    [Fact]
    public void Settings_AreSeparatedByNewlinesAndSemicolons_AndCommentsAreIgnored()
    {
        var f = Ok("# leading comment\nname = \"a\"; memory = 512 # trailing\n\n  vcpus=2;;\n# end");
        Assert.Equal("a", Str(f, "name"));
        Assert.Equal("512", Str(f, "memory"));
        Assert.True(Assert.IsType<XlAtom>(f["memory"]!.Value).IsNumber);
        Assert.Equal(2, f["memory"]!.Line);
        Assert.Equal(4, f["vcpus"]!.Line);
    }

    [Fact]
    public void LastLine_NeedsNoNewline() => Assert.Equal("x", Str(Ok("name='x'"), "name"));

    [Fact]
    public void SingleAndDoubleQuotes_WithEscapes()
    {
        var f = Ok("a = 'it\\'s \"q\"'\nb = \"tab\\there\\n\\\\ \\x41\\101\"");
        Assert.Equal("it's \"q\"", Str(f, "a"));
        Assert.Equal("tab\there\n\\ AA", Str(f, "b"));
    }

    [Fact]
    public void HashInsideString_IsNotAComment() => Assert.Equal("a#b", Str(Ok("extra = \"a#b\" # c"), "extra"));

    [Fact]
    public void Lists_SpanLines_AllowTrailingCommaAndComments_AndNest()
    {
        var f = Ok("disk = [\n  'a', # first\n\n  'b',\n]\nx = [ [ '1', 2 ], [] ]\ny = []");
        var disk = Assert.IsType<XlList>(f["disk"]!.Value);
        Assert.Equal(["a", "b"], disk.Items.Select(i => ((XlAtom)i).Text));
        Assert.Equal(1, disk.Line);
        Assert.Equal(2, disk.Items[0].Line);
        Assert.Equal(4, disk.Items[1].Line);
        var x = Assert.IsType<XlList>(f["x"]!.Value);
        Assert.Equal(2, x.Items.Count);
        Assert.Empty(Assert.IsType<XlList>(x.Items[1]).Items);
        Assert.Empty(Assert.IsType<XlList>(f["y"]!.Value).Items);
    }

    [Fact]
    public void LastAssignmentWins_AndKeepsFirstPosition()
    {
        var f = Ok("memory = 1\nname='n'\nmemory = 2");
        Assert.Equal("2", Str(f, "memory"));
        Assert.Equal(3, f["memory"]!.Line);
        Assert.Equal(["memory", "name"], f.Settings.Select(s => s.Key));
    }

    [Fact]
    public void PlusEquals_ConcatenatesStringsAndLists()
    {
        var f = Ok("extra = 'console=hvc0'\nextra += ' quiet'\ndisk = ['a']\ndisk += ['b', 'c']\nnew += 'x'");
        Assert.Equal("console=hvc0 quiet", Str(f, "extra"));
        Assert.Equal(3, ((XlList)f["disk"]!.Value).Items.Count);
        Assert.Equal("x", Str(f, "new"));
        Assert.True(f["extra"]!.Appended);
    }

    [Fact]
    public void PlusEquals_ListOntoString_IsAnError()
    {
        var f = XlConfigFile.Parse("extra = 'a'\nextra += ['b']");
        var e = Assert.Single(f.Diagnostics);
        Assert.Equal(2, e.Line);
        Assert.Equal("extra", e.Key);
    }

    [Fact]
    public void CommandLineOverrides_ReplaceAndAppend_LikeExtraLines()
    {
        var f = Ok("name='a'\nmemory=512\nextra='x'", "memory=1024", "extra+=\" y\"", "vcpus=4");
        Assert.Equal("1024", Str(f, "memory"));
        Assert.Equal("command line", f["memory"]!.Source);
        Assert.Equal(1, f["memory"]!.Line);
        Assert.Equal("x y", Str(f, "extra"));
        Assert.Equal(3, f["vcpus"]!.Line);
    }

    [Fact]
    public void BadOverride_IsReportedAgainstTheCommandLine()
    {
        var f = XlConfigFile.Parse("name='a'", "vm.cfg", ["memory"]);
        var e = Assert.Single(f.Diagnostics);
        Assert.Equal("command line", e.Source);
        Assert.Equal(1, e.Line);
        Assert.Equal("memory", e.Key);
    }

    [Fact]
    public void CrLfLineEndings_AreAccepted() => Assert.Equal("512", Str(Ok("name='a'\r\nmemory = 512\r\n"), "memory"));

    [Fact]
    public void Errors_AreAllCollected_AndParsingResumesOnTheNextLine()
    {
        var f = XlConfigFile.Parse("a = 1\nb 2\nc = 'x\nd = [\n 'p',\n 'q' 'r',\n]\ne = 5\nf = -1");
        Assert.Equal([2, 3, 6, 9], f.Diagnostics.Select(d => d.Line));
        Assert.Equal("5", ((XlAtom)f["e"]!.Value).Text);
        Assert.Null(f["d"]);
    }
}
