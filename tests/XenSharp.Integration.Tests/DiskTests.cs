using System.Diagnostics;
using System.Net;
using System.Text.Json;
using XenSharp.Accel;

namespace XenSharp.Integration.Tests;

/// <summary>
/// xld's VPS disks (disk-create, disk-list, disk-delete) through the HTTP API the panel uses and through xl: sparse
/// copies of a template at the requested size, names confined to the disk directory, templates that must be regular
/// files, and disks a domain has attached left alone.
/// </summary>
public sealed class DiskTests : IClassFixture<XldFixture>
{
    private const long MiB = 1 << 20;
    private static readonly string Kernel = Path.Combine(Paths.Repo, "guests", "build", "pv-test.elf");
    private readonly XldFixture _xld;
    private readonly HttpClient _admin;

    public DiskTests(XldFixture xld)
    {
        _xld = xld;
        _admin = xld.HttpClient(xld.HttpToken($"disk-admin-{Guid.NewGuid():N}"[..24]));
    }

    /// <summary>
    /// A 32 MiB template that is mostly hole: random data at 0, 10 MiB and its last 4 KiB, and 2 MiB of zeros written
    /// out at 20 MiB (allocated in the template, but nothing a copy needs to store).
    /// </summary>
    private string Template(string name)
    {
        var path = Path.Combine(_xld.Directory, name);
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        var rng = new Random(42);
        foreach (var (at, length) in new[] { (0L, 64 * 1024), (10 * MiB, (int)MiB), (32 * MiB - 4096, 4096) })
        {
            var data = new byte[length];
            rng.NextBytes(data);
            f.Position = at;
            f.Write(data);
        }
        f.Position = 20 * MiB;
        f.Write(new byte[2 * MiB]);
        f.SetLength(32 * MiB);
        return path;
    }

    private static long Allocated(string path)
    {
        using var h = File.OpenHandle(path);
        return Posix.FStat((int)h.DangerousGetHandle(), path).AllocatedBytes;
    }

    private async Task<JsonElement> Call(string command, object args, bool ok = true)
    {
        var (status, json) = await XldFixture.Post(_admin, command, args);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(ok == json.GetProperty("ok").GetBoolean(), $"{command} {JsonSerializer.Serialize(args)}: {json}");
        // A command with nothing to report (disk-delete) answers without a result.
        return !ok ? json.GetProperty("error") : json.TryGetProperty("result", out var result) ? result : default;
    }

    private async Task<string> Refused(string command, object args) => (await Call(command, args, ok: false)).GetString()!;

    [Fact]
    public async Task ACopyHasTheTemplatesBytesAtTheRequestedSizeAndKeepsItsHoles()
    {
        var template = Template("tpl-copy.img");
        var disk = await Call("disk-create", new { name = "vps-copy", template, sizeBytes = 64 * MiB });
        var path = Path.Combine(_xld.DiskDirectory, "vps-copy.img");
        Assert.Equal(path, disk.GetProperty("path").GetString());
        Assert.Equal(64 * MiB, disk.GetProperty("sizeBytes").GetInt64());
        Assert.Equal(64 * MiB, new FileInfo(path).Length);

        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.AsSpan(0, (int)(32 * MiB)).SequenceEqual(File.ReadAllBytes(template)), "the copy's first 32 MiB differ from the template");
        Assert.Equal(-1, bytes.AsSpan((int)(32 * MiB)).IndexOfAnyExcept((byte)0));

        // About 1.1 MiB of the template is non-zero; the 2 MiB of written zeros and the holes stay unallocated.
        long allocated = Allocated(path);
        Assert.True(allocated < 2 * MiB, $"the copy holds {allocated} bytes on disk");
        Assert.True(allocated < Allocated(template) - MiB, $"the copy ({allocated}) stored the template's zeros ({Allocated(template)})");
        Assert.Equal(allocated, disk.GetProperty("allocatedBytes").GetInt64());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_xld.DiskDirectory));
        Assert.Empty(Directory.GetFiles(_xld.DiskDirectory, "*.tmp"));
    }

    [Fact]
    public async Task WithoutATemplateADiskIsAnEmptySparseFile()
    {
        var disk = await Call("disk-create", new { name = "blank-1", sizeBytes = 16 * MiB });
        var path = disk.GetProperty("path").GetString()!;
        Assert.Equal(16 * MiB, new FileInfo(path).Length);
        Assert.Equal(0, Allocated(path));
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("a/b")]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a..b")]
    [InlineData("Upper")]
    [InlineData(".hidden")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123x")]
    public async Task NamesOutsideThePatternAreRefused(string name)
    {
        var error = await Refused("disk-create", new { name, sizeBytes = MiB });
        Assert.Contains("disk name", error);
        Assert.Contains("disk name", await Refused("disk-delete", new { name }));
        Assert.False(File.Exists(Path.Combine(_xld.Directory, "x.img")));
        Assert.False(File.Exists(Path.Combine(_xld.DiskDirectory, name + ".img")));
    }

    [Fact]
    public async Task ANameOfSixtyFourCharactersIsAccepted()
    {
        var name = "n" + new string('7', 63);
        Assert.Equal(MiB, (await Call("disk-create", new { name, sizeBytes = MiB })).GetProperty("sizeBytes").GetInt64());
        await Call("disk-delete", new { name });
    }

    [Fact]
    public async Task TemplatesMustBeAbsolutePathsToExistingRegularFiles()
    {
        Assert.Contains("expected an absolute path", await Refused("disk-create", new { name = "t1", template = "tpl.img", sizeBytes = MiB }));
        Assert.Contains("does not exist", await Refused("disk-create", new { name = "t1", template = "/nonexistent/tpl.img", sizeBytes = MiB }));
        Assert.Contains("is a directory", await Refused("disk-create", new { name = "t1", template = _xld.Directory, sizeBytes = MiB }));
        Assert.Contains("is not a regular file", await Refused("disk-create", new { name = "t1", template = "/dev/null", sizeBytes = MiB }));
        var blockNode = Path.Combine(_xld.Directory, "blk");
        using (var mknod = Process.Start("mknod", [blockNode, "b", "7", "0"])) mknod.WaitForExit();
        Assert.Contains("is a block device", await Refused("disk-create", new { name = "t1", template = blockNode, sizeBytes = MiB }));
        Assert.False(File.Exists(Path.Combine(_xld.DiskDirectory, "t1.img")));
    }

    [Fact]
    public async Task ADiskIsNeverSmallerThanItsTemplate()
    {
        var template = Template("tpl-small.img");
        var error = await Refused("disk-create", new { name = "small", template, sizeBytes = 16 * MiB });
        Assert.Contains("never shrunk", error);
        Assert.Contains("33554432", error);
        Assert.Contains("sectors", await Refused("disk-create", new { name = "small", sizeBytes = MiB + 100 }));
        Assert.False(File.Exists(Path.Combine(_xld.DiskDirectory, "small.img")));
    }

    [Fact]
    public async Task AnExistingDiskIsReplacedOnlyWhenAskedAndDeletedOnce()
    {
        var template = Template("tpl-replace.img");
        var path = (await Call("disk-create", new { name = "vps-re", template, sizeBytes = 32 * MiB })).GetProperty("path").GetString()!;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write)) f.Write("written by the client"u8);

        Assert.Contains("exists", await Refused("disk-create", new { name = "vps-re", template, sizeBytes = 32 * MiB }));
        Assert.Equal("written by the client"u8.ToArray(), File.ReadAllBytes(path)[..21]);

        await Call("disk-create", new { name = "vps-re", template, sizeBytes = 48 * MiB, replace = true });
        Assert.Equal(48 * MiB, new FileInfo(path).Length);
        Assert.True(File.ReadAllBytes(path).AsSpan(0, (int)(32 * MiB)).SequenceEqual(File.ReadAllBytes(template)), "the replaced disk is not a fresh copy");

        var listed = (await Call("disk-list", new { })).EnumerateArray().Single(d => d.GetProperty("name").GetString() == "vps-re");
        Assert.Equal(48 * MiB, listed.GetProperty("sizeBytes").GetInt64());
        Assert.Equal(path, listed.GetProperty("path").GetString());

        await Call("disk-delete", new { name = "vps-re" });
        Assert.False(File.Exists(path));
        Assert.Contains("no such disk", await Refused("disk-delete", new { name = "vps-re" }));
        Assert.DoesNotContain((await Call("disk-list", new { })).EnumerateArray(), d => d.GetProperty("name").GetString() == "vps-re");
    }

    [SkippableFact]
    public async Task ADiskADomainHasAttachedIsNeitherReplacedNorDeleted()
    {
        Skip.IfNot(File.Exists(Kernel), $"{Kernel} is not built (run make -C guests)");
        var path = (await Call("disk-create", new { name = "vps-busy", sizeBytes = 8 * MiB })).GetProperty("path").GetString()!;
        var cfg = Path.Combine(_xld.Directory, "busy.cfg");
        // The disk line the panel writes; the test kernel ends with SCHEDOP_shutdown(suspend), leaving the domain in place.
        File.WriteAllText(cfg, $"name=\"busy-vps\"\ntype=\"pv\"\nkernel=\"{Kernel}\"\nextra=\"reason=2\"\nmemory=32\nvcpus=2\n" +
                               $"disk = [ 'format=raw, vdev=xvda, access=rw, target={path}' ]\n");
        var created = _xld.Xl("create", cfg);
        Assert.True(created.ExitCode == 0, created.ToString());
        try
        {
            var error = await Refused("disk-create", new { name = "vps-busy", sizeBytes = 8 * MiB, replace = true });
            Assert.Contains("attached to domain", error);
            Assert.Contains("busy-vps", error);
            Assert.Contains("busy-vps", await Refused("disk-delete", new { name = "vps-busy" }));
            Assert.True(File.Exists(path));
        }
        finally
        {
            Assert.Equal(0, _xld.Xl("destroy", "busy-vps").ExitCode);
        }
        await Call("disk-create", new { name = "vps-busy", sizeBytes = 8 * MiB, replace = true });
        await Call("disk-delete", new { name = "vps-busy" });
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task AReadTokenMayListDisksButNotChangeThemAndChangesAreAudited()
    {
        var read = _xld.HttpClient(_xld.HttpToken("disk-reader", "read"));
        Assert.Equal(HttpStatusCode.Forbidden, (await XldFixture.Post(read, "disk-create", new { name = "nope", sizeBytes = MiB })).Item1);
        Assert.Equal(HttpStatusCode.Forbidden, (await XldFixture.Post(read, "disk-delete", new { name = "nope" })).Item1);
        var (status, json) = await XldFixture.Post(read, "disk-list", new { });
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.False(File.Exists(Path.Combine(_xld.DiskDirectory, "nope.img")));

        await Call("disk-create", new { name = "audited", sizeBytes = MiB });
        await Call("disk-delete", new { name = "audited" });
        var log = File.ReadAllText(Path.Combine(_xld.LogDirectory, "xld.log"));
        Assert.Contains("from 127.0.0.1: disk-create {\"name\":\"audited\"", log);
        Assert.Contains("from 127.0.0.1: disk-delete {\"name\":\"audited\"}", log);
    }

    [Fact]
    public void XlCreatesListsAndDeletesDisks()
    {
        var template = Template("tpl-xl.img");
        var created = _xld.Xl("disk-create", "xl-disk", "40m", template);
        Assert.True(created.ExitCode == 0, created.ToString());
        var path = Path.Combine(_xld.DiskDirectory, "xl-disk.img");
        Assert.Equal(path, created.Stdout.Trim());
        Assert.Equal(40 * MiB, new FileInfo(path).Length);

        var again = _xld.Xl("disk-create", "xl-disk", "40m", template);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("exists", again.Stderr);
        Assert.Equal(0, _xld.Xl("disk-create", "-r", "xl-disk", "1g").ExitCode);
        Assert.Equal(1L << 30, new FileInfo(path).Length);

        var list = _xld.Xl("disk-list");
        Assert.Contains("xl-disk", list.Stdout);
        Assert.Contains("1024.0", list.Stdout);
        Assert.Equal(0, _xld.Xl("disk-delete", "xl-disk").ExitCode);
        Assert.False(File.Exists(path));
        Assert.Equal(2, _xld.Xl("disk-create", "only-a-name").ExitCode);
    }
}
