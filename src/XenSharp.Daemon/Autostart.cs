using XenSharp.Hypervisor;
using XenSharp.Toolstack;
using XenSharp.Toolstack.Config;

namespace XenSharp.Daemon;

/// <summary>
/// What Xen's xendomains does at boot: every domain config in the auto directory (/etc/xen/auto by default, usually
/// symlinks to files in /etc/xen) is created, in name order, when xld starts. A config that does not load or a domain
/// that does not build is logged with the reason and the rest still start; a name already running is left alone.
/// </summary>
public static class Autostart
{
    public sealed record Result(string File, string? Domain, int? DomId, string? Error);

    public static IReadOnlyList<Result> Run(Toolstack.Toolstack toolstack, string directory)
    {
        var log = toolstack.Hypervisor.Log; // xl dmesg, and xld.log through it
        var results = new List<Result>();
        if (!Directory.Exists(directory)) return results;
        var files = Directory.EnumerateFiles(directory)
            .Where(f => Path.GetFileName(f) is var n && !n.StartsWith('.') && !n.EndsWith('~') && !n.EndsWith(".rpmsave") && !n.EndsWith(".dpkg-old"))
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            Result r;
            try
            {
                // Relative paths in the config (kernel, ramdisk, disks) are taken from the real file's directory: an
                // auto/ entry is typically a symlink, and xld's own working directory means nothing to its author.
                string real = new FileInfo(file).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(file);
                var (plan, warnings) = ConfigLoader.Load(File.ReadAllText(real), real, [], Path.GetDirectoryName(real)!);
                foreach (var w in warnings) log.Write($"autostart: {file}: {w}");
                if (toolstack.Hypervisor.Domains.Any(d => d.Name == plan.Name))
                {
                    r = new Result(file, plan.Name, null, $"a domain named {plan.Name} is already running");
                }
                else
                {
                    var domain = toolstack.Create(plan, paused: false);
                    r = new Result(file, domain.Name, (int)domain.Id, null);
                }
            }
            catch (ConfigException e)
            {
                r = new Result(file, null, null, string.Join("; ", e.Errors)); // one dmesg line, every error with its line and key
            }
            catch (Exception e) when (e is ToolstackException or HostMemoryExhaustedException or DomainExistsException
                                          or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                r = new Result(file, null, null, e.Message);
            }
            log.Write(r.Error is null ? $"autostart: d{r.DomId} ({r.Domain}) created from {file}" : $"autostart: {file}: not started: {r.Error}");
            results.Add(r);
        }
        return results;
    }
}
