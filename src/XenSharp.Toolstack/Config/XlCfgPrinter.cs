using System.Globalization;
using System.Text;

namespace XenSharp.Toolstack.Config;

/// <summary>
/// Writes a <see cref="DomainConfig"/> as xl.cfg text. Every modelled field is written explicitly
/// (defaults included) so the output is self-describing and parses back to an equal config.
/// </summary>
internal static class XlCfgPrinter
{
    public static string Print(DomainConfig c)
    {
        var sb = new StringBuilder();
        void Str(string key, string? v) { if (v is not null) sb.Append(key).Append(" = ").Append(XlCfgText.Quote(v)).Append('\n'); }
        void Num(string key, long? v) { if (v is not null) sb.Append(key).Append(" = ").Append(v.Value.ToString(CultureInfo.InvariantCulture)).Append('\n'); }
        void Bool(string key, bool? v) { if (v is not null) Num(key, v.Value ? 1 : 0); }
        void List(string key, IEnumerable<string> items)
        {
            sb.Append(key).Append(" = [\n");
            foreach (var i in items) sb.Append("    ").Append(XlCfgText.Quote(i)).Append(",\n");
            sb.Append("]\n");
        }
        void Affinity(string key, VcpuAffinity? a)
        {
            if (a is null) return;
            if (a.IsPerVcpu) sb.Append(key).Append(" = [").Append(string.Join(", ", a.Sets.Select(s => XlCfgText.Quote(s.ToString())))).Append("]\n");
            else Str(key, a.Sets[0].ToString());
        }

        Str("name", c.Name);
        Str("type", c.Type.ToString().ToLowerInvariant());
        Str("uuid", c.Uuid?.ToString("D"));
        Str("pool", c.Pool);
        Str("seclabel", c.Seclabel);
        Num("memory", c.MemoryMiB);
        Num("maxmem", c.MaxMemMiB);
        Num("vcpus", c.Vcpus);
        Num("maxvcpus", c.MaxVcpus);
        Affinity("cpus", c.Cpus);
        Affinity("cpus_soft", c.CpusSoft);
        Num("cpu_weight", c.CpuWeight);
        Num("cap", c.Cap);
        Str("kernel", c.Kernel);
        Str("ramdisk", c.Ramdisk);
        Str("cmdline", c.Cmdline);
        Str("root", c.Root);
        Str("extra", c.Extra);
        Str("bootloader", c.Bootloader);
        Str("on_poweroff", c.OnPoweroff.ToXl());
        Str("on_reboot", c.OnReboot.ToXl());
        Str("on_watchdog", c.OnWatchdog.ToXl());
        Str("on_crash", c.OnCrash.ToXl());
        Str("on_soft_reset", c.OnSoftReset.ToXl());
        Bool("localtime", c.Localtime);
        if (c.Serial is { } serial)
        {
            if (serial.Count == 1) Str("serial", serial[0]);
            else List("serial", serial);
        }
        if (c.Vnc is { } vnc)
        {
            Bool("vnc", vnc.Enabled);
            Str("vnclisten", vnc.Listen);
            Str("vncpasswd", vnc.Password);
            Num("vncdisplay", vnc.Display);
            Bool("vncunused", vnc.FindUnused);
        }
        if (c.Vfb is { } vfb) List("vfb", vfb);
        if (c.Disks.Count > 0) List("disk", c.Disks.Select(d => d.ToString()));
        if (c.Vifs.Count > 0) List("vif", c.Vifs.Select(v => v.ToString()));
        foreach (var o in c.OtherSettings) sb.Append(o.Key).Append(" = ").Append(o.XlText).Append('\n');
        return sb.ToString();
    }
}
