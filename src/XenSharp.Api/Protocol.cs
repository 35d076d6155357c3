using System.Text.Json;
using System.Text.Json.Serialization;

namespace XenSharp.Api;

/// <summary>
/// xld's control protocol: one JSON object per line in each direction over the unix socket
/// (<see cref="DefaultSocketPath"/>). A request names a command and carries its arguments; the reply says
/// ok with a result, or not ok with an error a person can act on. After a successful "console" request the
/// connection carries raw console bytes both ways.
/// </summary>
public static class Protocol
{
    public const string DefaultSocketPath = "/run/xensharp/xld.sock";
    public const int Version = 1;

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Json);
    public static T Deserialize<T>(string json) => JsonSerializer.Deserialize<T>(json, Json) ?? throw new JsonException("null message");
    public static T? ArgsAs<T>(this Request r) => r.Args is { } a ? a.Deserialize<T>(Json) : default;
    public static T? ResultAs<T>(this Response r) => r.Result is { } a ? a.Deserialize<T>(Json) : default;
}

public sealed record Request(string Command, JsonElement? Args = null);

public sealed record Response(bool Ok, JsonElement? Result = null, string? Error = null)
{
    public static Response Success<T>(T result) => new(true, JsonSerializer.SerializeToElement(result, Protocol.Json));
    public static Response Success() => new(true);
    public static Response Failure(string error) => new(false, null, error);
}

/// <summary>Names a domain by name or numeric id, as xl's arguments do.</summary>
public sealed record DomainArgs(string Domain);

/// <summary>A domain to create. Relative paths in the config are taken from <paramref name="WorkingDirectory"/>, the directory xl ran in, as with Xen's xl.</summary>
public sealed record CreateArgs(string ConfigText, string ConfigPath, IReadOnlyList<string> Overrides, bool Paused, string WorkingDirectory);

public sealed record ShutdownArgs(string Domain, bool Reboot = false, bool Wait = false, bool Force = false, int TimeoutSeconds = 60);

public sealed record RenameArgs(string Domain, string NewName);

public sealed record CreateResult(uint DomainId, string Name, IReadOnlyList<string> Warnings);

/// <summary>One row of <c>xl list</c>.</summary>
public sealed record DomainSummary(
    string Name,
    uint Id,
    ulong MemoryMiB,
    ulong MaxMemoryMiB,
    int Vcpus,
    string State,
    double CpuSeconds,
    string Type,
    string Uuid,
    string? ShutdownReason,
    double UptimeSeconds,
    string? Config = null);

/// <summary>The keys of <c>xl info</c> that apply to XenSharp.</summary>
public sealed record HostInfo(
    string Host,
    string Release,
    string Machine,
    int NrCpus,
    int CoresPerSocket,
    int ThreadsPerCore,
    ulong CpuMhz,
    ulong TotalMemoryMiB,
    ulong FreeMemoryMiB,
    ulong HostReservationMiB,
    int XenMajor,
    int XenMinor,
    string XenExtra,
    string XenVersion,
    string XenCaps,
    string Accelerator,
    string XenCommandline,
    string CcCompiler,
    string XendConfigFormat,
    double UptimeSeconds,
    string? AcceleratorNote = null);

/// <summary><c>xl vcpu-set</c>: how many vCPUs the guest should have online.</summary>
public sealed record VcpuSetArgs(string Domain, int Count);

public sealed record DmesgArgs(bool Clear = false);

public sealed record DmesgResult(IReadOnlyList<string> Lines);

/// <summary>One software counter of a domain: exits by reason, hypercalls by name, exceptions by vector.</summary>
public sealed record PerfCounterRow(string Name, long Value);

public sealed record TokenCreateArgs(string Name, string Scope = "admin");

public sealed record TokenCreateResult(string Name, string Scope, string Token);

public sealed record TokenNameArgs(string Name);

public sealed record TokenSummary(string Name, string Scope, DateTime CreatedUtc);

/// <summary><c>xl sched-credit</c>: with neither weight nor cap, it only reports.</summary>
public sealed record SchedCreditArgs(string? Domain = null, int? Weight = null, int? Cap = null);

public sealed record SchedCreditRow(string Name, uint Id, int Weight, int Cap);

/// <summary><c>xl vcpu-pin dom vcpu cpus</c>: vcpu is a number or "all"; cpus in Xen's syntax ("all", "0-3,^1").</summary>
public sealed record VcpuPinArgs(string Domain, string Vcpu, string Cpus);

public sealed record VcpuListArgs(string? Domain = null);

/// <summary>One row of <c>xl vcpu-list</c>.</summary>
public sealed record VcpuRow(string Name, uint Id, int Vcpu, int Cpu, string State, double TimeSeconds, string Affinity);

/// <summary>xenstore access for xl's xenstore-* verbs: op is read, write, ls, rm or mkdir.</summary>
public sealed record XenstoreArgs(string Op, string Path, string? Value = null);

/// <summary>One node of an <c>ls</c>: its path relative to the listed one, value and permissions.</summary>
public sealed record XenstoreNodeInfo(string Path, string Value, string Perms);

/// <summary><c>xl mem-set</c> / <c>xl mem-max</c>: a size in Xen's syntax (a number of MiB, or with a b/k/m/g suffix).</summary>
public sealed record MemArgs(string Domain, string Size);

/// <summary><c>xl block-attach dom spec</c> / <c>network-attach dom spec</c>: a DISKSPEC or vifspec as in xl.cfg.</summary>
public sealed record DeviceAttachArgs(string Domain, string Spec);

/// <summary><c>xl block-detach dom dev</c> / <c>network-detach dom dev</c>: the device id (or a vdev name such as xvda).</summary>
public sealed record DeviceDetachArgs(string Domain, string Device);

/// <summary>
/// One row of <c>xl block-list</c> or <c>network-list</c>, with its traffic counters; <see cref="Note"/>: what the
/// backend says of a disk image (its qcow2 layout and backing file, or why O_DIRECT is not used).
/// </summary>
public sealed record DeviceRow(uint DomainId, uint DevId, string Name, string Target, int State, string? Error, string BackendPath,
    long ReadOrRxBytes, long WriteOrTxBytes, long Requests, string? Note = null);

/// <summary><c>stats</c>: one domain's resource figures, or every domain's when <see cref="Domain"/> is null.</summary>
public sealed record StatsArgs(string? Domain = null);

/// <summary>
/// A domain's resource figures at <see cref="AtUtc"/>, for xl top, the panel's graphs and traffic accounting, and
/// /metrics. Byte and request counters are running totals since the device was attached: they restart from zero
/// when the domain is rebuilt (restart, reboot), so a reader that wants deltas treats a smaller value as a reset.
/// Net directions are the guest's (Tx: sent by the guest). <see cref="AllocatedBytes"/> is host memory the
/// domain's RAM holds right now (its memfd's st_blocks): it falls when the guest balloons pages out.
/// </summary>
public sealed record DomainStats(
    string Name,
    uint Id,
    string State,
    double CpuSeconds,
    int Vcpus,
    ulong TargetBytes,
    ulong MaxBytes,
    ulong AllocatedBytes,
    int Nets,
    long NetTxBytes,
    long NetRxBytes,
    long NetTxPackets,
    long NetRxPackets,
    int Vbds,
    long VbdReadRequests,
    long VbdWriteRequests,
    long VbdReadBytes,
    long VbdWriteBytes,
    double UptimeSeconds,
    DateTime AtUtc,
    IReadOnlyList<DeviceStats> Devices);

/// <summary>One vif ("vif") or vbd ("vbd") of <see cref="DomainStats"/>: for a vif Read is Rx and Write is Tx.</summary>
public sealed record DeviceStats(string Kind, uint DevId, string Name, long ReadBytes, long WriteBytes, long ReadOps, long WriteOps);

/// <summary>
/// <c>disk-create</c>: a raw VPS disk NAME.img in xld's disk directory, <paramref name="SizeBytes"/> long: a sparse copy of
/// <paramref name="Template"/> (an absolute path to a regular image file) grown to that size, or empty without one.
/// An existing disk of that name is an error unless <paramref name="Replace"/>; either way a disk a running domain has
/// attached is never touched.
/// </summary>
public sealed record DiskCreateArgs(string Name, long SizeBytes, string? Template = null, bool Replace = false);

/// <summary><c>disk-delete</c>: names a disk in xld's disk directory.</summary>
public sealed record DiskNameArgs(string Name);

/// <summary>One VPS disk: its file, apparent size and the bytes the host's file system actually holds for it.</summary>
public sealed record DiskRow(string Name, string Path, long SizeBytes, long AllocatedBytes);
