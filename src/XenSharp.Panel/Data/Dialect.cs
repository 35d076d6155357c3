using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace XenSharp.Panel.Data;

/// <summary>
/// What differs between the two databases the panel runs on. The SQL in <see cref="Store"/> and the migrations in
/// <see cref="Db"/> are written once; a dialect opens connections, fills in the type tokens of the schema
/// (<c>{id}</c>, <c>{int}</c>, …), converts parameter values, keeps the schema version and makes backups.
/// </summary>
public abstract partial class SqlDialect
{
    public abstract string Name { get; }
    internal abstract DbConnection Open();

    /// <summary>The expansion of each schema token; a migration may use only these.</summary>
    protected abstract IReadOnlyDictionary<string, string> Tokens { get; }

    internal string Expand(string sql) =>
        TokenPattern().Replace(sql, m => Tokens.TryGetValue(m.Groups[1].Value, out var s) ? s : throw new InvalidOperationException($"unknown schema token {m.Value}"));

    [GeneratedRegex(@"\{(\w+)\}")]
    private static partial Regex TokenPattern();

    /// <summary>Session-wide setup before the migrations (SQLite: WAL journaling).</summary>
    internal virtual void BeforeMigrations(DbConnection c) { }

    /// <summary>Inside <paramref name="tx"/>: keeps other panels out of the migrations until commit and returns the schema version.</summary>
    internal abstract int LockSchemaVersion(DbConnection c, DbTransaction tx);
    internal abstract void SetSchemaVersion(DbConnection c, DbTransaction tx, int version);

    /// <summary>The column that orders rows of an append-mostly table by insertion (vps_samples).</summary>
    internal abstract string InsertionOrder { get; }
    /// <summary>LIKE as SQLite does it: ASCII case-insensitive.</summary>
    internal abstract string CaseInsensitiveLike { get; }

    /// <summary>Turns a .NET value into what the provider stores: times are always UTC.</summary>
    internal virtual object Param(object? value) => value switch
    {
        null => DBNull.Value,
        DateTime d => d.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(d, DateTimeKind.Utc) : d.ToUniversalTime(),
        uint u => (long)u, // Npgsql would send a uint as PostgreSQL's oid type
        _ => value,
    };

    public abstract void Backup(string file);
    /// <summary>Drops pooled connections (tests delete the database afterwards).</summary>
    public abstract void ClearPool();

    internal static void Exec(DbConnection c, string sql, DbTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    internal static object? Scalar(DbConnection c, string sql, DbTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    /// <summary>A PostgreSQL (Npgsql) connection string names a host; a SQLite one names a data source.</summary>
    public static bool IsPostgres(string connectionString) =>
        Regex.IsMatch(connectionString, @"(^|;)\s*(Host|Server)\s*=", RegexOptions.IgnoreCase);

    public static SqlDialect For(string connectionString) =>
        IsPostgres(connectionString) ? new PostgresDialect(connectionString) : new SqliteDialect(connectionString);
}

/// <summary>The embedded default: one file, WAL journaling, the version in PRAGMA user_version, online backup.</summary>
public sealed class SqliteDialect : SqlDialect
{
    private readonly string _cs;

    public SqliteDialect(string connectionString) =>
        // Pooling keeps the per-request open cheap; the busy timeout absorbs the sampler's short write bursts.
        _cs = new SqliteConnectionStringBuilder(connectionString) { Pooling = true, DefaultTimeout = 30 }.ToString();

    public override string Name => "SQLite";

    internal override DbConnection Open()
    {
        var c = new SqliteConnection(_cs);
        c.Open();
        Exec(c, "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;");
        return c;
    }

    protected override IReadOnlyDictionary<string, string> Tokens { get; } = new Dictionary<string, string>
    {
        ["prelude"] = "",
        ["id"] = "INTEGER PRIMARY KEY", // the rowid alias
        ["int"] = "INTEGER",
        ["real"] = "REAL",
        ["time"] = "TEXT", // ISO 8601 UTC, written by Param
        ["nocase"] = "COLLATE NOCASE",
        ["seq"] = "", // SQLite's rowid already orders by insertion
        ["audit_append_only"] = """
            CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
            CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
            """,
    };

    internal override void BeforeMigrations(DbConnection c) => Exec(c, "PRAGMA journal_mode = WAL;");

    // Microsoft.Data.Sqlite begins transactions IMMEDIATE, so holding tx already excludes other writers.
    internal override int LockSchemaVersion(DbConnection c, DbTransaction tx) => Convert.ToInt32(Scalar(c, "PRAGMA user_version;", tx), CultureInfo.InvariantCulture);
    internal override void SetSchemaVersion(DbConnection c, DbTransaction tx, int version) => Exec(c, $"PRAGMA user_version = {version};", tx);

    internal override string InsertionOrder => "rowid";
    internal override string CaseInsensitiveLike => "LIKE";

    internal override object Param(object? value)
    {
        var v = base.Param(value);
        return v is DateTime d ? d.ToString("O", CultureInfo.InvariantCulture) : v;
    }

    /// <summary>Copies the live database with SQLite's online backup API: readers and writers keep going.</summary>
    public override void Backup(string file)
    {
        using var src = (SqliteConnection)Open();
        using var dst = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString());
        dst.Open();
        src.BackupDatabase(dst);
    }

    public override void ClearPool() => SqliteConnection.ClearAllPools();
}

/// <summary>
/// PostgreSQL through Npgsql, for one panel managing many hosts. The schema version lives in a table
/// (schema_version) guarded by an advisory lock, so panels starting together migrate once.
/// </summary>
public sealed class PostgresDialect(string connectionString) : SqlDialect
{
    private readonly NpgsqlConnectionStringBuilder _cs = new(connectionString);
    private const long MigrationLock = 0x78656e5f70616e; // any constant; only the panel takes it

    public override string Name => "PostgreSQL";

    internal override DbConnection Open()
    {
        var c = new NpgsqlConnection(_cs.ConnectionString);
        c.Open();
        return c;
    }

    protected override IReadOnlyDictionary<string, string> Tokens { get; } = new Dictionary<string, string>
    {
        // SQLite's NOCASE as a column collation: equality, uniqueness and ORDER BY ignore case, and a plain text
        // parameter compares under it (citext would silently compare case-sensitively against a text parameter).
        ["prelude"] = "CREATE COLLATION IF NOT EXISTS xsp_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);",
        ["id"] = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        ["int"] = "BIGINT", // SQLite's INTEGER is 64-bit
        ["real"] = "DOUBLE PRECISION",
        ["time"] = "TIMESTAMPTZ",
        ["nocase"] = "COLLATE xsp_nocase",
        ["seq"] = "seq BIGINT GENERATED ALWAYS AS IDENTITY,",
        // Statement-level, so even an UPDATE or DELETE that matches no row, and TRUNCATE, are refused.
        ["audit_append_only"] = """
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$;
            CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
                FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
            """,
    };

    internal override int LockSchemaVersion(DbConnection c, DbTransaction tx)
    {
        Exec(c, $"SELECT pg_advisory_xact_lock({MigrationLock})", tx);
        Exec(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", tx);
        return Convert.ToInt32(Scalar(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", tx), CultureInfo.InvariantCulture);
    }

    internal override void SetSchemaVersion(DbConnection c, DbTransaction tx, int version) =>
        Exec(c, $"DELETE FROM schema_version; INSERT INTO schema_version(version) VALUES ({version});", tx);

    internal override string InsertionOrder => "seq";
    internal override string CaseInsensitiveLike => "ILIKE";

    /// <summary>
    /// Runs pg_dump (custom format, restore with pg_restore) against the configured database; the password goes
    /// through PGPASSWORD, never the command line. Without pg_dump on PATH it refuses and says what to install.
    /// </summary>
    public override void Backup(string file)
    {
        var pgDump = FindOnPath("pg_dump", SearchPath) ?? throw new InvalidOperationException(
            "backup: pg_dump was not found on PATH. For a PostgreSQL panel database install the PostgreSQL client tools " +
            "(Debian: apt-get install postgresql-client) and run the backup again, or back the database up with pg_dump directly.");
        var psi = new ProcessStartInfo(pgDump) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "--format=custom", "--no-password", "--file", file }) psi.ArgumentList.Add(a);
        SetEnv(psi, "PGHOST", _cs.Host);
        SetEnv(psi, "PGPORT", _cs.Port.ToString(CultureInfo.InvariantCulture));
        SetEnv(psi, "PGDATABASE", _cs.Database);
        SetEnv(psi, "PGUSER", _cs.Username);
        SetEnv(psi, "PGPASSWORD", _cs.Password);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"backup: pg_dump exited with {p.ExitCode}: {err.Result.Trim()}");
    }

    private static void SetEnv(ProcessStartInfo psi, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value)) psi.Environment[name] = value;
    }

    /// <summary>Where Backup looks for pg_dump: PATH.</summary>
    internal string SearchPath { get; init; } = Environment.GetEnvironmentVariable("PATH") ?? "";

    internal static string? FindOnPath(string exe, string searchPath) =>
        searchPath.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, exe)).FirstOrDefault(File.Exists);

    public override void ClearPool() => NpgsqlConnection.ClearAllPools();
}
