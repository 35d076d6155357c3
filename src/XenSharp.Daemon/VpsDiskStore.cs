using System.Text.RegularExpressions;
using XenSharp.Accel;
using XenSharp.Api;
using XenSharp.Toolstack;

namespace XenSharp.Daemon;

/// <summary>
/// The host's VPS disks: raw images NAME.img in one directory (created 0700). A disk is a sparse copy of a template
/// image grown to the size asked for, or an empty sparse file; it is written under a temporary name, fsynced and
/// renamed into place, so a crash never leaves a half-copied disk under its real name. A disk that a domain has
/// attached is neither replaced nor deleted: <paramref name="holderOf"/> names the domain holding a path, or says null.
/// </summary>
public sealed partial class VpsDiskStore(string directory, Func<string, string?> holderOf)
{
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode ImageMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly HashSet<string> _busy = [];

    public const string DefaultDirectory = "/var/lib/xensharp/disks";

    public string Directory { get; } = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();

    /// <summary>Which domain has the file at a full path attached, as "domain 3 (web1)", from the toolstack's block backends.</summary>
    public static Func<string, string?> AttachedIn(Toolstack.Toolstack toolstack) => path =>
        toolstack.Backends.ListDisks().FirstOrDefault(d => Path.GetFullPath(d.Target) == path) is { } disk
            ? $"domain {disk.Domid} ({toolstack.Hypervisor.Domains.FirstOrDefault(x => x.Id == disk.Domid)?.Name ?? "?"})"
            : null;

    /// <summary>The image file of a valid disk name; anything else (empty, too long, a path, "..") is refused.</summary>
    public string PathOf(string? name)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("disk name is empty");
        if (!NamePattern().IsMatch(name) || name.Contains(".."))
            throw new ArgumentException($"disk name '{name}': expected 1 to 64 of a-z 0-9 . _ - starting with a letter or digit, without '..'");
        var path = Path.GetFullPath(Path.Combine(Directory, name + ".img"));
        if (Path.GetDirectoryName(path) != Directory) throw new ArgumentException($"disk name '{name}' leads outside {Directory}");
        return path;
    }

    public DiskRow Create(DiskCreateArgs args)
    {
        var path = PathOf(args.Name);
        if (args.SizeBytes <= 0 || args.SizeBytes % 512 != 0)
            throw new ArgumentException($"disk size {args.SizeBytes}: expected a positive whole number of 512-byte sectors");
        using var template = args.Template is null ? null : TemplateImage.Open(args.Template);
        if (template is not null && args.SizeBytes < template.Length)
            throw new ArgumentException($"disk size {args.SizeBytes} bytes is below the template's {template.Length} bytes ({template.Path}): a disk is never shrunk");
        using var claim = Claim(args.Name);
        if (File.Exists(path))
        {
            if (!args.Replace) throw new ArgumentException($"disk '{args.Name}' exists ({path}); ask for replace to overwrite it");
            RefuseIfAttached(args.Name, path, "replace");
        }
        System.IO.Directory.CreateDirectory(Directory, DirectoryMode);
        var temp = Path.Combine(Directory, $".{args.Name}.{Guid.NewGuid():N}.tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0, UnixCreateMode = ImageMode };
            using (var f = new FileStream(temp, options))
            {
                if (template is not null) SparseCopy.Copy(template, f.SafeFileHandle);
                RandomAccess.SetLength(f.SafeFileHandle, args.SizeBytes);
                f.Flush(flushToDisk: true);
            }
            // Checked again just before the rename: a domain may have been started on the old disk during the copy.
            if (args.Replace) RefuseIfAttached(args.Name, path, "replace");
            File.Move(temp, path, overwrite: args.Replace);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        AtomicFile.SyncDirectory(Directory);
        return Describe(args.Name, path);
    }

    public void Delete(string? name)
    {
        var path = PathOf(name);
        using var claim = Claim(name!);
        if (!File.Exists(path)) throw new FileNotFoundException($"no such disk '{name}' ({path})");
        RefuseIfAttached(name!, path, "delete");
        File.Delete(path);
        AtomicFile.SyncDirectory(Directory);
    }

    public DiskRow[] List()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        return System.IO.Directory.EnumerateFiles(Directory, "*.img")
            .Select(p => (Name: Path.GetFileNameWithoutExtension(p), Path: p))
            .Where(d => NamePattern().IsMatch(d.Name) && !d.Name.Contains(".."))
            .OrderBy(d => d.Name, StringComparer.Ordinal)
            .Select(d => Describe(d.Name, d.Path))
            .ToArray();
    }

    private static DiskRow Describe(string name, string path)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var st = Posix.FStat((int)h.DangerousGetHandle(), path);
        return new DiskRow(name, path, st.Size, st.AllocatedBytes);
    }

    private void RefuseIfAttached(string name, string path, string verb)
    {
        if (holderOf(path) is { } domain)
            throw new InvalidOperationException($"disk '{name}' is attached to {domain}: destroy the domain (or block-detach the disk) before you {verb} it");
    }

    /// <summary>One create or delete per disk name at a time; a second one meanwhile is refused rather than queued.</summary>
    private Claimed Claim(string name)
    {
        lock (_busy)
            if (!_busy.Add(name)) throw new InvalidOperationException($"disk '{name}' is being created or deleted by another request; try again");
        return new Claimed(this, name);
    }

    private sealed class Claimed(VpsDiskStore store, string name) : IDisposable
    {
        public void Dispose()
        {
            lock (store._busy) store._busy.Remove(name);
        }
    }
}
