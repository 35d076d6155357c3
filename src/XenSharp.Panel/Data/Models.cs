namespace XenSharp.Panel.Data;

public static class Roles
{
    public const string Admin = "admin";
    public const string Client = "client";
}

public sealed record User(long Id, string Username, string PasswordHash, string Role, string Email, string? TotpSecret,
    bool TotpEnabled, int FailedLogins, DateTime? LockedUntil, bool Disabled, DateTime CreatedAt)
{
    public bool IsAdmin => Role == Roles.Admin;
}

public sealed record XenHost(long Id, string Name, string Url, string Token, bool Maintenance, DateTime CreatedAt);

public sealed record Plan(long Id, string Name, int MemoryMiB, int Vcpus, int DiskGiB, int CpuWeight, int CpuCap, int TrafficGiB, int RateMbps);

public sealed record OsTemplate(long Id, string Name, string Type, string Kernel, string Ramdisk, string RootImage, string Extra);

public sealed record IpPool(long Id, string Name, string Cidr, string Gateway, string RangeStart, string RangeEnd, long? HostId);

public sealed record Vps(long Id, string Name, long OwnerId, string OwnerName, long HostId, string HostName, long PlanId, string PlanName,
    long TemplateId, string TemplateName, int MemoryMiB, int Vcpus, string? Ip, DateTime CreatedAt, bool? LastSeenRunning = null, string DiskPath = "");

public sealed record AuditEntry(long Id, DateTime At, long? UserId, string Username, string Ip, string Action, string Target, string Detail);

public sealed record ApiToken(long Id, long UserId, string Name, string Scope, DateTime CreatedAt, DateTime? LastUsedAt);

/// <summary>I/O counters of one sample: the host's running byte totals for the domain (they restart with it).</summary>
public sealed record IoCounters(uint DomId, long NetRxBytes, long NetTxBytes, long DiskReadBytes, long DiskWriteBytes);

public sealed record Sample(DateTime At, double CpuSeconds, long MemoryMiB, bool Running, IoCounters? Io = null);

public sealed record Traffic(string Month, long RxBytes, long TxBytes);
