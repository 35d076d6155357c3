using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using XenSharp.Hypervisor.Pv.Abi;

namespace XenSharp.Hypervisor.Tests.Pv;

/// <summary>
/// Compiles a C program against Xen's real public headers (Debian's libxen-dev, /usr/include/xen) that prints
/// the size of every struct, the offset and size of every field and the value of every constant that the C#
/// ABI declares with [XenName], and compares them all. Needs gcc and libxen-dev; skipped without them.
/// </summary>
public sealed class XenAbiHeaderTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string XenInclude = "/usr/include/xen/xen.h";

    private sealed record Item(string Key, string CExpression, ulong Expected, string? Guard);

    private static readonly Type[] AbiTypes = typeof(StartInfo).Assembly.GetTypes()
        .Where(t => t.Namespace == typeof(StartInfo).Namespace).ToArray();

    internal static int SizeOf(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    private static List<Item> CollectItems()
    {
        var items = new List<Item>();
        foreach (var t in AbiTypes)
        {
            var sname = t.GetCustomAttribute<XenNameAttribute>();
            if (t.IsValueType && sname != null)
            {
                string ctype = sname.Name;
                if (!sname.SkipSize)
                    items.Add(new($"sizeof({ctype})", $"sizeof({ctype})", (ulong)SizeOf(t), sname.IfDefined));
                foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
                {
                    var fname = f.GetCustomAttribute<XenNameAttribute>();
                    var off = f.GetCustomAttribute<FieldOffsetAttribute>();
                    if (fname == null || off == null) continue;
                    string guard = fname.IfDefined ?? ""; // a struct-level guard covers only its size
                    items.Add(new($"offsetof({ctype}, {fname.Name})", $"offsetof({ctype}, {fname.Name})", (ulong)off.Value, guard == "" ? null : guard));
                    items.Add(new($"sizeof(({ctype}*)0)->{fname.Name}", $"sizeof((({ctype} *)0)->{fname.Name})", (ulong)SizeOf(f.FieldType), guard == "" ? null : guard));
                }
            }
            foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Static))
            {
                var cname = f.GetCustomAttribute<XenNameAttribute>();
                if (cname == null || !f.IsLiteral) continue;
                object v = f.GetRawConstantValue()!;
                ulong expected = v switch
                {
                    ulong u => u,
                    _ => unchecked((ulong)Convert.ToInt64(v)),
                };
                items.Add(new(cname.Name, cname.Name, expected, cname.IfDefined));
            }
        }
        return items;
    }

    private static string GenerateC(List<Item> items)
    {
        var sb = new StringBuilder();
        sb.AppendLine("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>");
        foreach (var h in new[] { "xen.h", "errno.h", "event_channel.h", "memory.h", "vcpu.h", "grant_table.h", "sched.h",
                     "callback.h", "features.h", "version.h", "elfnote.h", "io/console.h", "io/ring.h", "io/xs_wire.h" })
            sb.AppendLine($"#include <xen/{h}>");
        sb.AppendLine("struct xensharp_probe_req { uint64_t a; };\nstruct xensharp_probe_rsp { uint64_t b; };");
        sb.AppendLine("DEFINE_RING_TYPES(xensharp_probe, struct xensharp_probe_req, struct xensharp_probe_rsp);");
        sb.AppendLine("int main(void) {");
        for (int i = 0; i < items.Count; i++)
        {
            var it = items[i];
            if (it.Guard != null) sb.AppendLine($"#ifdef {it.Guard}");
            sb.AppendLine($"  printf(\"{i} %llu\\n\", (unsigned long long)({it.CExpression}));");
            if (it.Guard != null) sb.AppendLine("#endif");
        }
        sb.AppendLine("  return 0;\n}");
        return sb.ToString();
    }

    private static (int Exit, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string? FindOnPath(string exe) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':')
            .Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);

    [SkippableFact]
    public void EveryDeclaredAbiItemMatchesTheXenPublicHeaders()
    {
        Skip.IfNot(File.Exists(XenInclude), "Xen public headers missing: install Debian's libxen-dev (apt-get install libxen-dev) to run the ABI check");
        string? gcc = FindOnPath("gcc");
        Skip.If(gcc == null, "gcc not found on PATH: install gcc to run the ABI check");

        var items = CollectItems();
        string dir = Directory.CreateTempSubdirectory("xensharp-abi-").FullName;
        try
        {
            string c = Path.Combine(dir, "abi.c"), exe = Path.Combine(dir, "abi");
            File.WriteAllText(c, GenerateC(items));
            var cc = Run(gcc!, "-std=gnu11", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", exe, c);
            Assert.True(cc.Exit == 0, $"gcc failed (a [XenName] names something the headers lack?):\n{cc.Err}");
            var run = Run(exe);
            Assert.Equal(0, run.Exit);

            var seen = new HashSet<int>();
            var errors = new List<string>();
            foreach (var line in run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(' ');
                int i = int.Parse(parts[0]);
                ulong actual = ulong.Parse(parts[1]);
                seen.Add(i);
                if (actual != items[i].Expected)
                    errors.Add($"{items[i].Key}: header says {actual} (0x{actual:x}), C# says {items[i].Expected} (0x{items[i].Expected:x})");
            }
            for (int i = 0; i < items.Count; i++)
                if (!seen.Contains(i) && items[i].Guard == null)
                    errors.Add($"{items[i].Key}: not printed");
            Assert.True(errors.Count == 0, string.Join("\n", errors));
            int structs = items.Count(i => i.Key.StartsWith("sizeof(struct", StringComparison.Ordinal));
            int fields = items.Count(i => i.Key.StartsWith("offsetof(", StringComparison.Ordinal));
            output.WriteLine($"compared {seen.Count} of {items.Count} items with the headers: {structs} struct sizes, {fields} field offsets (+ as many field sizes), " +
                $"{items.Count - structs - 2 * fields} constants; {items.Count - seen.Count} guarded items absent from these headers");
            // Guarded items may be absent from older headers, but the bulk must have been compared.
            Assert.True(seen.Count > 500, $"only {seen.Count} of {items.Count} items compared");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void EveryAbiStructFieldCarriesAnOffsetAndAName()
    {
        foreach (var t in AbiTypes.Where(t => t.IsValueType && t.GetCustomAttribute<XenNameAttribute>() != null))
        {
            foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
            {
                Assert.True(f.GetCustomAttribute<XenNameAttribute>() != null, $"{t.Name}.{f.Name} has no [XenName]");
                var off = f.GetCustomAttribute<FieldOffsetAttribute>()!.Value;
                Assert.True(off + SizeOf(f.FieldType) <= SizeOf(t), $"{t.Name}.{f.Name} runs past the struct");
            }
        }
    }
}
