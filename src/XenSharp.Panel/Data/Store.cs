using System.Data.Common;
using System.Globalization;

namespace XenSharp.Panel.Data;

/// <summary>
/// All SQL the panel runs. Object lookups that a client can reach take the asking user, so ownership is decided
/// in the query (a row the user may not see is simply not found). The audit log has Append and reads only.
/// The SQL runs unchanged on SQLite and PostgreSQL; the few spots that differ ask <see cref="SqlDialect"/>.
/// </summary>
public sealed class Store(Db db)
{
    public Db Db => db;

    private static DateTime Now() => DateTime.UtcNow;

    /// <summary>A stored time: PostgreSQL returns timestamptz as a UTC DateTime, SQLite keeps the ISO 8601 text it was given.</summary>
    private static DateTime Date(DbDataReader r, int i) => r.GetValue(i) switch
    {
        DateTime d => DateTime.SpecifyKind(d, DateTimeKind.Utc),
        var v => DateTime.Parse(Convert.ToString(v, CultureInfo.InvariantCulture)!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
    };
    private static DateTime? DateOrNull(DbDataReader r, int i) => r.IsDBNull(i) ? null : Date(r, i);
    private static string? StrOrNull(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private DbCommand Cmd(DbConnection c, string sql, DbTransaction? tx, params (string Name, object? Value)[] ps)
    {
        var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach (var (n, v) in ps)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = n;
            p.Value = db.Dialect.Param(v);
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private List<T> Query<T>(string sql, Func<DbDataReader, T> map, params (string, object?)[] ps)
    {
        using var c = db.Open();
        using var cmd = Cmd(c, sql, null, ps);
        using var r = cmd.ExecuteReader();
        var list = new List<T>();
        while (r.Read()) list.Add(map(r));
        return list;
    }

    private int Exec(string sql, params (string, object?)[] ps)
    {
        using var c = db.Open();
        using var cmd = Cmd(c, sql, null, ps);
        return cmd.ExecuteNonQuery();
    }

    private long Insert(string sql, params (string, object?)[] ps)
    {
        using var c = db.Open();
        using var cmd = Cmd(c, sql + " RETURNING id", null, ps);
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private long Count(string sql, params (string, object?)[] ps)
    {
        using var c = db.Open();
        using var cmd = Cmd(c, sql, null, ps);
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    // ---- settings
    public string? GetSetting(string key) => Query("SELECT value FROM settings WHERE key=@k", r => r.GetString(0), ("@k", key)).FirstOrDefault();
    public void SetSetting(string key, string value) =>
        Exec("INSERT INTO settings(key,value) VALUES(@k,@v) ON CONFLICT(key) DO UPDATE SET value=excluded.value", ("@k", key), ("@v", value));
    public bool TotpMandatory => GetSetting("totp_mandatory") == "1";

    // ---- users
    private const string UserCols = "id,username,password_hash,role,email,totp_secret,totp_enabled,failed_logins,locked_until,disabled,created_at";
    private static User MapUser(DbDataReader r) => new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4),
        StrOrNull(r, 5), r.GetInt64(6) != 0, r.GetInt32(7), DateOrNull(r, 8), r.GetInt64(9) != 0, Date(r, 10));

    public bool AnyAdmin() => Count("SELECT COUNT(*) FROM users WHERE role='admin'") > 0;
    public User? GetUser(long id) => Query($"SELECT {UserCols} FROM users WHERE id=@id", MapUser, ("@id", id)).FirstOrDefault();
    public User? FindUser(string username) => Query($"SELECT {UserCols} FROM users WHERE username=@u", MapUser, ("@u", username)).FirstOrDefault();
    public List<User> ListUsers() => Query($"SELECT {UserCols} FROM users ORDER BY username", MapUser);

    public long CreateUser(string username, string passwordHash, string role, string email) =>
        Insert("INSERT INTO users(username,password_hash,role,email,created_at) VALUES(@u,@p,@r,@e,@t)",
            ("@u", username), ("@p", passwordHash), ("@r", role), ("@e", email), ("@t", Now()));

    public void UpdateUser(long id, string role, string email, bool disabled) =>
        Exec("UPDATE users SET role=@r, email=@e, disabled=@d WHERE id=@id", ("@r", role), ("@e", email), ("@d", disabled ? 1 : 0), ("@id", id));
    public void SetPassword(long id, string hash) => Exec("UPDATE users SET password_hash=@p WHERE id=@id", ("@p", hash), ("@id", id));
    public void SetTotp(long id, string? secret, bool enabled) =>
        Exec("UPDATE users SET totp_secret=@s, totp_enabled=@e WHERE id=@id", ("@s", secret), ("@e", enabled ? 1 : 0), ("@id", id));

    /// <summary>Counts a failed login; at <paramref name="maxFailures"/> the account locks for <paramref name="lockFor"/>.</summary>
    public void RecordLoginFailure(long id, int maxFailures, TimeSpan lockFor) =>
        Exec("""
             UPDATE users SET failed_logins = failed_logins + 1,
               locked_until = CASE WHEN failed_logins + 1 >= @max THEN @until ELSE locked_until END WHERE id=@id
             """, ("@max", maxFailures), ("@until", DateTime.UtcNow.Add(lockFor)), ("@id", id));
    public void RecordLoginSuccess(long id) => Exec("UPDATE users SET failed_logins=0, locked_until=NULL WHERE id=@id", ("@id", id));
    public void Unlock(long id) => RecordLoginSuccess(id);

    public bool DeleteUser(long id)
    {
        if (Count("SELECT COUNT(*) FROM vps WHERE owner_id=@id", ("@id", id)) > 0) return false;
        return Exec("DELETE FROM users WHERE id=@id", ("@id", id)) > 0;
    }

    // ---- hosts
    private const string HostCols = "id,name,url,token,maintenance,created_at";
    private static XenHost MapHost(DbDataReader r) => new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4) != 0, Date(r, 5));
    public List<XenHost> ListHosts() => Query($"SELECT {HostCols} FROM hosts ORDER BY name", MapHost);
    public XenHost? GetHost(long id) => Query($"SELECT {HostCols} FROM hosts WHERE id=@id", MapHost, ("@id", id)).FirstOrDefault();
    public long CreateHost(string name, string url, string token, bool maintenance) =>
        Insert("INSERT INTO hosts(name,url,token,maintenance,created_at) VALUES(@n,@u,@t,@m,@c)",
            ("@n", name), ("@u", url), ("@t", token), ("@m", maintenance ? 1 : 0), ("@c", Now()));
    public void UpdateHost(long id, string name, string url, string? token, bool maintenance) =>
        Exec("UPDATE hosts SET name=@n, url=@u, token=COALESCE(@t, token), maintenance=@m WHERE id=@id",
            ("@n", name), ("@u", url), ("@t", token), ("@m", maintenance ? 1 : 0), ("@id", id));
    public bool DeleteHost(long id) =>
        Count("SELECT COUNT(*) FROM vps WHERE host_id=@id", ("@id", id)) == 0 && Exec("DELETE FROM hosts WHERE id=@id", ("@id", id)) > 0;
    /// <summary>Host memory the host's VPSes hold: each reserves its maxmem there, which is its plan's memory (a live resize may grow to it).</summary>
    public long HostCommittedMiB(long hostId) =>
        Count("SELECT COALESCE(SUM(CASE WHEN v.memory_mib > p.memory_mib THEN v.memory_mib ELSE p.memory_mib END),0) FROM vps v JOIN plans p ON p.id = v.plan_id WHERE v.host_id=@id", ("@id", hostId));

    // ---- plans
    private const string PlanCols = "id,name,memory_mib,vcpus,disk_gib,cpu_weight,cpu_cap,traffic_gib,rate_mbps";
    private static Plan MapPlan(DbDataReader r) => new(r.GetInt64(0), r.GetString(1), r.GetInt32(2), r.GetInt32(3), r.GetInt32(4), r.GetInt32(5), r.GetInt32(6), r.GetInt32(7), r.GetInt32(8));
    public List<Plan> ListPlans() => Query($"SELECT {PlanCols} FROM plans ORDER BY memory_mib, name", MapPlan);
    public Plan? GetPlan(long id) => Query($"SELECT {PlanCols} FROM plans WHERE id=@id", MapPlan, ("@id", id)).FirstOrDefault();
    private static (string, object?)[] PlanParams(Plan p) =>
        [("@n", p.Name), ("@m", p.MemoryMiB), ("@v", p.Vcpus), ("@d", p.DiskGiB), ("@w", p.CpuWeight), ("@c", p.CpuCap), ("@t", p.TrafficGiB), ("@r", p.RateMbps), ("@id", p.Id)];
    public long CreatePlan(Plan p) =>
        Insert("INSERT INTO plans(name,memory_mib,vcpus,disk_gib,cpu_weight,cpu_cap,traffic_gib,rate_mbps) VALUES(@n,@m,@v,@d,@w,@c,@t,@r)", PlanParams(p));
    public void UpdatePlan(Plan p) =>
        Exec("UPDATE plans SET name=@n,memory_mib=@m,vcpus=@v,disk_gib=@d,cpu_weight=@w,cpu_cap=@c,traffic_gib=@t,rate_mbps=@r WHERE id=@id", PlanParams(p));
    public bool DeletePlan(long id) =>
        Count("SELECT COUNT(*) FROM vps WHERE plan_id=@id", ("@id", id)) == 0 && Exec("DELETE FROM plans WHERE id=@id", ("@id", id)) > 0;

    // ---- templates
    private const string TplCols = "id,name,type,kernel,ramdisk,root_image,extra";
    private static OsTemplate MapTpl(DbDataReader r) => new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6));
    public List<OsTemplate> ListTemplates() => Query($"SELECT {TplCols} FROM templates ORDER BY name", MapTpl);
    public OsTemplate? GetTemplate(long id) => Query($"SELECT {TplCols} FROM templates WHERE id=@id", MapTpl, ("@id", id)).FirstOrDefault();
    private static (string, object?)[] TplParams(OsTemplate t) =>
        [("@n", t.Name), ("@t", t.Type), ("@k", t.Kernel), ("@r", t.Ramdisk), ("@i", t.RootImage), ("@e", t.Extra), ("@id", t.Id)];
    public long CreateTemplate(OsTemplate t) =>
        Insert("INSERT INTO templates(name,type,kernel,ramdisk,root_image,extra) VALUES(@n,@t,@k,@r,@i,@e)", TplParams(t));
    public void UpdateTemplate(OsTemplate t) =>
        Exec("UPDATE templates SET name=@n,type=@t,kernel=@k,ramdisk=@r,root_image=@i,extra=@e WHERE id=@id", TplParams(t));
    public bool DeleteTemplate(long id) =>
        Count("SELECT COUNT(*) FROM vps WHERE template_id=@id", ("@id", id)) == 0 && Exec("DELETE FROM templates WHERE id=@id", ("@id", id)) > 0;

    // ---- IP pools
    private const string PoolCols = "id,name,cidr,gateway,range_start,range_end,host_id";
    private static IpPool MapPool(DbDataReader r) => new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.IsDBNull(6) ? null : r.GetInt64(6));
    public List<IpPool> ListPools() => Query($"SELECT {PoolCols} FROM ip_pools ORDER BY name", MapPool);
    public IpPool? GetPool(long id) => Query($"SELECT {PoolCols} FROM ip_pools WHERE id=@id", MapPool, ("@id", id)).FirstOrDefault();
    public long CreatePool(IpPool p) =>
        Insert("INSERT INTO ip_pools(name,cidr,gateway,range_start,range_end,host_id) VALUES(@n,@c,@g,@s,@e,@h)",
            ("@n", p.Name), ("@c", p.Cidr), ("@g", p.Gateway), ("@s", p.RangeStart), ("@e", p.RangeEnd), ("@h", p.HostId));
    public bool DeletePool(long id) =>
        Count("SELECT COUNT(*) FROM ip_addresses WHERE pool_id=@id", ("@id", id)) == 0 && Exec("DELETE FROM ip_pools WHERE id=@id", ("@id", id)) > 0;
    public long PoolUsed(long id) => Count("SELECT COUNT(*) FROM ip_addresses WHERE pool_id=@id", ("@id", id));

    // ---- VPS
    private const string VpsSelect = """
        SELECT v.id, v.name, v.owner_id, u.username, v.host_id, h.name, v.plan_id, p.name, v.template_id, t.name, v.memory_mib, v.vcpus,
               (SELECT address FROM ip_addresses a WHERE a.vps_id = v.id LIMIT 1), v.created_at,
               (SELECT running FROM vps_samples s WHERE s.vps_id = v.id ORDER BY s.at DESC LIMIT 1), v.disk_path
        FROM vps v JOIN users u ON u.id = v.owner_id JOIN hosts h ON h.id = v.host_id JOIN plans p ON p.id = v.plan_id
             JOIN templates t ON t.id = v.template_id
        """;
    private static Vps MapVps(DbDataReader r) => new(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetInt64(4), r.GetString(5),
        r.GetInt64(6), r.GetString(7), r.GetInt64(8), r.GetString(9), r.GetInt32(10), r.GetInt32(11), StrOrNull(r, 12), Date(r, 13), r.IsDBNull(14) ? null : r.GetInt64(14) != 0,
        r.GetString(15));

    /// <summary>The VPS if <paramref name="asker"/> may see it (its owner, or an admin); otherwise null, which callers turn into 404.</summary>
    public Vps? GetVps(long id, User asker) =>
        Query($"{VpsSelect} WHERE v.id=@id AND (@admin = 1 OR v.owner_id = @uid)", MapVps, ("@id", id), ("@admin", asker.IsAdmin ? 1 : 0), ("@uid", asker.Id)).FirstOrDefault();

    public List<Vps> AllVps() => Query($"{VpsSelect} ORDER BY v.id", MapVps);
    public List<Vps> VpsOnHost(long hostId) => Query($"{VpsSelect} WHERE v.host_id=@h", MapVps, ("@h", hostId));

    public static readonly IReadOnlyDictionary<string, string> VpsSortColumns = new Dictionary<string, string>
    {
        ["name"] = "v.name", ["owner"] = "u.username", ["host"] = "h.name", ["plan"] = "p.name", ["memory"] = "v.memory_mib", ["created"] = "v.created_at", ["id"] = "v.id",
    };

    /// <summary>One page of the VPSes <paramref name="asker"/> may see, sorted by a whitelisted column.</summary>
    public (List<Vps> Items, long Total) PageVps(User asker, string sort, bool desc, int page, int pageSize, string? filter)
    {
        var col = VpsSortColumns.GetValueOrDefault(sort, "v.name");
        // The CAST gives PostgreSQL a type for the parameter when it is NULL.
        var where = $"WHERE (@admin = 1 OR v.owner_id = @uid) AND (CAST(@f AS TEXT) IS NULL OR v.name {db.Dialect.CaseInsensitiveLike} @f)";
        var f = string.IsNullOrWhiteSpace(filter) ? null : "%" + filter.Trim() + "%";
        (string, object?)[] ps = [("@admin", asker.IsAdmin ? 1 : 0), ("@uid", asker.Id), ("@f", f), ("@lim", pageSize), ("@off", (page - 1) * pageSize)];
        var items = Query($"{VpsSelect} {where} ORDER BY {col} {(desc ? "DESC" : "ASC")}, v.id LIMIT @lim OFFSET @off", MapVps, ps);
        var total = Count($"SELECT COUNT(*) FROM vps v {where}", ps);
        return (items, total);
    }

    public bool VpsNameTaken(string name, long exceptId = 0) => Count("SELECT COUNT(*) FROM vps WHERE name=@n AND id<>@id", ("@n", name), ("@id", exceptId)) > 0;

    /// <summary>Creates the row and allocates an address from the host's pools (or a shared pool) in one transaction.</summary>
    public long CreateVps(string name, long ownerId, long hostId, Plan plan, long templateId)
    {
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        long id;
        using (var cmd = Cmd(c, "INSERT INTO vps(name,owner_id,host_id,plan_id,template_id,memory_mib,vcpus,created_at) VALUES(@n,@o,@h,@p,@t,@m,@v,@c) RETURNING id",
                   tx, ("@n", name), ("@o", ownerId), ("@h", hostId), ("@p", plan.Id), ("@t", templateId), ("@m", plan.MemoryMiB), ("@v", plan.Vcpus), ("@c", Now())))
            id = Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
        AllocateIp(c, tx, id, hostId);
        tx.Commit();
        return id;
    }

    private void AllocateIp(DbConnection c, DbTransaction tx, long vpsId, long hostId)
    {
        var pools = new List<IpPool>();
        using (var cmd = Cmd(c, $"SELECT {PoolCols} FROM ip_pools WHERE host_id=@h OR host_id IS NULL ORDER BY host_id IS NULL, id", tx, ("@h", hostId)))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) pools.Add(MapPool(r));
        foreach (var pool in pools)
        {
            var used = new HashSet<string>();
            using (var cmd = Cmd(c, "SELECT address FROM ip_addresses WHERE pool_id=@p", tx, ("@p", pool.Id)))
            using (var r = cmd.ExecuteReader())
                while (r.Read()) used.Add(r.GetString(0));
            foreach (var addr in IpRange.Enumerate(pool.RangeStart, pool.RangeEnd))
            {
                if (used.Contains(addr)) continue;
                using var ins = Cmd(c, "INSERT INTO ip_addresses(address,pool_id,vps_id) VALUES(@a,@p,@v)", tx, ("@a", addr), ("@p", pool.Id), ("@v", vpsId));
                ins.ExecuteNonQuery();
                return;
            }
        }
        // No pool or all full: the VPS still gets created; networking is not attached yet anyway.
    }

    public void RenameVps(long id, string name) => Exec("UPDATE vps SET name=@n WHERE id=@id", ("@n", name), ("@id", id));
    public void SetVpsDisk(long id, string path) => Exec("UPDATE vps SET disk_path=@d WHERE id=@id", ("@d", path), ("@id", id));
    public void SetVpsTemplate(long id, long templateId) => Exec("UPDATE vps SET template_id=@t WHERE id=@id", ("@t", templateId), ("@id", id));
    public void ResizeVps(long id, long planId, int memoryMiB, int vcpus) =>
        Exec("UPDATE vps SET plan_id=@p, memory_mib=@m, vcpus=@v WHERE id=@id", ("@p", planId), ("@m", memoryMiB), ("@v", vcpus), ("@id", id));
    public void DeleteVps(long id) => Exec("DELETE FROM vps WHERE id=@id", ("@id", id));

    // ---- samples and traffic
    public void AddSamples(IEnumerable<(long VpsId, double CpuSeconds, long MemoryMiB, bool Running)> samples) =>
        AddSamples(samples.Select(x => (x.VpsId, x.CpuSeconds, x.MemoryMiB, x.Running, (IoCounters?)null)));

    public void AddSamples(IEnumerable<(long VpsId, double CpuSeconds, long MemoryMiB, bool Running, IoCounters? Io)> samples)
    {
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        var now = Now();
        foreach (var s in samples)
        {
            using var cmd = Cmd(c, """
                INSERT INTO vps_samples(vps_id,at,cpu_seconds,memory_mib,running,domid,net_rx_bytes,net_tx_bytes,disk_read_bytes,disk_write_bytes)
                VALUES(@v,@a,@c,@m,@r,@d,@nr,@nt,@dr,@dw)
                """, tx,
                ("@v", s.VpsId), ("@a", now), ("@c", s.CpuSeconds), ("@m", s.MemoryMiB), ("@r", s.Running ? 1 : 0), ("@d", s.Io?.DomId),
                ("@nr", s.Io?.NetRxBytes), ("@nt", s.Io?.NetTxBytes), ("@dr", s.Io?.DiskReadBytes), ("@dw", s.Io?.DiskWriteBytes));
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
    }

    public List<Sample> Samples(long vpsId, int last) =>
        Query($"""
              SELECT at,cpu_seconds,memory_mib,running,domid,net_rx_bytes,net_tx_bytes,disk_read_bytes,disk_write_bytes
              FROM (SELECT {db.Dialect.InsertionOrder} AS rid, * FROM vps_samples WHERE vps_id=@v ORDER BY {db.Dialect.InsertionOrder} DESC LIMIT @n) AS recent
              ORDER BY rid
              """,
            r => new Sample(Date(r, 0), r.GetDouble(1), r.GetInt64(2), r.GetInt64(3) != 0,
                r.IsDBNull(4) || r.IsDBNull(5) ? null : new IoCounters((uint)r.GetInt64(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7), r.GetInt64(8))),
            ("@v", vpsId), ("@n", last));

    /// <summary>The counters traffic accounting last saw for a VPS, and the domain they belonged to.</summary>
    public (uint DomId, long Rx, long Tx)? TrafficCounters(long vpsId) =>
        Query("SELECT domid,rx_bytes,tx_bytes FROM traffic_counters WHERE vps_id=@v", r => ((uint)r.GetInt64(0), r.GetInt64(1), r.GetInt64(2)), ("@v", vpsId))
            .Select(x => ((uint, long, long)?)x).FirstOrDefault();

    /// <summary>Adds a traffic delta to the month and remembers the counters it was computed from, in one transaction.</summary>
    public void RecordTraffic(long vpsId, string month, long rxDelta, long txDelta, uint domid, long rx, long tx)
    {
        using var c = db.Open();
        using var t = c.BeginTransaction();
        using (var cmd = Cmd(c, """
                                INSERT INTO traffic_counters(vps_id,domid,rx_bytes,tx_bytes) VALUES(@v,@d,@r,@t)
                                ON CONFLICT(vps_id) DO UPDATE SET domid=excluded.domid, rx_bytes=excluded.rx_bytes, tx_bytes=excluded.tx_bytes
                                """, t, ("@v", vpsId), ("@d", domid), ("@r", rx), ("@t", tx)))
            cmd.ExecuteNonQuery();
        if (rxDelta > 0 || txDelta > 0)
            using (var cmd = Cmd(c, """
                                    INSERT INTO traffic(vps_id,month,rx_bytes,tx_bytes) VALUES(@v,@m,@r,@t)
                                    ON CONFLICT(vps_id,month) DO UPDATE SET rx_bytes=traffic.rx_bytes+excluded.rx_bytes, tx_bytes=traffic.tx_bytes+excluded.tx_bytes
                                    """, t, ("@v", vpsId), ("@m", month), ("@r", rxDelta), ("@t", txDelta)))
                cmd.ExecuteNonQuery();
        t.Commit();
    }

    public void PruneSamples(DateTime before) => Exec("DELETE FROM vps_samples WHERE at < @b", ("@b", before));

    public void AddTraffic(long vpsId, string month, long rx, long tx) =>
        Exec("""
             INSERT INTO traffic(vps_id,month,rx_bytes,tx_bytes) VALUES(@v,@m,@r,@t)
             ON CONFLICT(vps_id,month) DO UPDATE SET rx_bytes=traffic.rx_bytes+excluded.rx_bytes, tx_bytes=traffic.tx_bytes+excluded.tx_bytes
             """, ("@v", vpsId), ("@m", month), ("@r", rx), ("@t", tx));
    public Traffic GetTraffic(long vpsId, string month) =>
        Query("SELECT month,rx_bytes,tx_bytes FROM traffic WHERE vps_id=@v AND month=@m", r => new Traffic(r.GetString(0), r.GetInt64(1), r.GetInt64(2)),
            ("@v", vpsId), ("@m", month)).FirstOrDefault() ?? new Traffic(month, 0, 0);

    // ---- audit (append-only: no update or delete exists here, and triggers refuse them in the database)
    public void Audit(long? userId, string username, string ip, string action, string target, string detail = "") =>
        Exec("INSERT INTO audit_log(at,user_id,username,ip,action,target,detail) VALUES(@a,@u,@n,@i,@x,@t,@d)",
            ("@a", Now()), ("@u", userId), ("@n", username), ("@i", ip), ("@x", action), ("@t", target), ("@d", detail));
    public (List<AuditEntry> Items, long Total) PageAudit(int page, int pageSize) =>
        (Query("SELECT id,at,user_id,username,ip,action,target,detail FROM audit_log ORDER BY id DESC LIMIT @l OFFSET @o",
            r => new AuditEntry(r.GetInt64(0), Date(r, 1), r.IsDBNull(2) ? null : r.GetInt64(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetString(7)),
            ("@l", pageSize), ("@o", (page - 1) * pageSize)), Count("SELECT COUNT(*) FROM audit_log"));

    // ---- API tokens (only a hash of the secret is kept)
    public long CreateApiToken(long userId, string name, string secretHash, string scope) =>
        Insert("INSERT INTO api_tokens(user_id,name,secret_hash,scope,created_at) VALUES(@u,@n,@h,@s,@c)",
            ("@u", userId), ("@n", name), ("@h", secretHash), ("@s", scope), ("@c", Now()));
    public List<ApiToken> ListApiTokens(long userId) =>
        Query("SELECT id,user_id,name,scope,created_at,last_used_at FROM api_tokens WHERE user_id=@u ORDER BY id",
            r => new ApiToken(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetString(3), Date(r, 4), DateOrNull(r, 5)), ("@u", userId));
    public (long UserId, string SecretHash, string Scope)? GetApiTokenSecret(long id) =>
        Query("SELECT user_id,secret_hash,scope FROM api_tokens WHERE id=@id", r => (r.GetInt64(0), r.GetString(1), r.GetString(2)), ("@id", id))
            .Select(x => ((long, string, string)?)x).FirstOrDefault();
    public void TouchApiToken(long id) => Exec("UPDATE api_tokens SET last_used_at=@t WHERE id=@id", ("@t", Now()), ("@id", id));
    public bool DeleteApiToken(long id, long userId) => Exec("DELETE FROM api_tokens WHERE id=@id AND user_id=@u", ("@id", id), ("@u", userId)) > 0;

    public (long Users, long Hosts, long Vps, long Plans) Counts() =>
        (Count("SELECT COUNT(*) FROM users"), Count("SELECT COUNT(*) FROM hosts"), Count("SELECT COUNT(*) FROM vps"), Count("SELECT COUNT(*) FROM plans"));
}
