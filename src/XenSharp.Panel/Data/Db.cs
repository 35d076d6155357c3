using Microsoft.Data.Sqlite;

namespace XenSharp.Panel.Data;

/// <summary>
/// Opens connections to the panel's SQLite database and keeps its schema current. SQLite is the default for a
/// single panel; a large install would move to PostgreSQL by swapping this class and the SQL dialect in
/// <see cref="Store"/> (the connection string is already configuration, ConnectionStrings:Panel).
/// </summary>
public sealed class Db
{
    public string ConnectionString { get; }

    public Db(string connectionString)
    {
        // A PostgreSQL connection string (Host=…;Database=…) is refused with the reason rather than SQLite's "keyword not supported".
        if (System.Text.RegularExpressions.Regex.IsMatch(connectionString, @"(^|;)\s*(Host|Server|Username|User ID)\s*=", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
            throw new ArgumentException("ConnectionStrings:Panel looks like a PostgreSQL connection string; this panel stores its data in SQLite only " +
                                        "(give \"Data Source=/path/panel.db\"). See src/XenSharp.Panel/README.md, Database.");
        // Pooling keeps the per-request open cheap; the busy timeout absorbs the sampler's short write bursts.
        var b = new SqliteConnectionStringBuilder(connectionString) { Pooling = true, DefaultTimeout = 30 };
        ConnectionString = b.ToString();
    }

    public SqliteConnection Open()
    {
        var c = new SqliteConnection(ConnectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";
        cmd.ExecuteNonQuery();
        return c;
    }

    /// <summary>Versioned schema steps, applied in order inside one transaction each; never edit a released step, add one.</summary>
    internal static readonly string[] Migrations =
    [
        // 1: the core model.
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE, password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin','client')), email TEXT NOT NULL DEFAULT '',
            totp_secret TEXT, totp_enabled INTEGER NOT NULL DEFAULT 0, failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT, disabled INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE hosts (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL, token TEXT NOT NULL,
            maintenance INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
        CREATE TABLE plans (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, memory_mib INTEGER NOT NULL, vcpus INTEGER NOT NULL,
            disk_gib INTEGER NOT NULL, cpu_weight INTEGER NOT NULL DEFAULT 256, cpu_cap INTEGER NOT NULL DEFAULT 0,
            traffic_gib INTEGER NOT NULL DEFAULT 0, rate_mbps INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE templates (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL CHECK (type IN ('pv','hvm')),
            kernel TEXT NOT NULL, ramdisk TEXT NOT NULL DEFAULT '', root_image TEXT NOT NULL DEFAULT '',
            extra TEXT NOT NULL DEFAULT '');
        CREATE TABLE ip_pools (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, cidr TEXT NOT NULL, gateway TEXT NOT NULL DEFAULT '',
            range_start TEXT NOT NULL, range_end TEXT NOT NULL, host_id INTEGER REFERENCES hosts(id));
        CREATE TABLE vps (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, owner_id INTEGER NOT NULL REFERENCES users(id),
            host_id INTEGER NOT NULL REFERENCES hosts(id), plan_id INTEGER NOT NULL REFERENCES plans(id),
            template_id INTEGER NOT NULL REFERENCES templates(id), memory_mib INTEGER NOT NULL, vcpus INTEGER NOT NULL,
            created_at TEXT NOT NULL);
        CREATE INDEX vps_owner ON vps(owner_id);
        CREATE TABLE ip_addresses (
            address TEXT PRIMARY KEY, pool_id INTEGER NOT NULL REFERENCES ip_pools(id),
            vps_id INTEGER NOT NULL REFERENCES vps(id) ON DELETE CASCADE);
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY, at TEXT NOT NULL, user_id INTEGER, username TEXT NOT NULL, ip TEXT NOT NULL,
            action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
        -- Append-only in the database itself, not just by convention in the code.
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, name TEXT NOT NULL,
            secret_hash TEXT NOT NULL, scope TEXT NOT NULL CHECK (scope IN ('read','write','admin')),
            created_at TEXT NOT NULL, last_used_at TEXT);
        """,
        // 2: monitoring: samples for graphs, monthly traffic accounting.
        """
        CREATE TABLE vps_samples (
            vps_id INTEGER NOT NULL REFERENCES vps(id) ON DELETE CASCADE, at TEXT NOT NULL,
            cpu_seconds REAL NOT NULL, memory_mib INTEGER NOT NULL, running INTEGER NOT NULL);
        CREATE INDEX vps_samples_by_vps ON vps_samples(vps_id, at);
        CREATE TABLE traffic (
            vps_id INTEGER NOT NULL REFERENCES vps(id) ON DELETE CASCADE, month TEXT NOT NULL,
            rx_bytes INTEGER NOT NULL DEFAULT 0, tx_bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (vps_id, month));
        """,
        // 3: disk and network I/O in the samples (the host's running byte counters; NULL when the host did not report
        // them), and the counters last seen per VPS, so traffic accounting survives a panel restart.
        """
        ALTER TABLE vps_samples ADD COLUMN net_rx_bytes INTEGER;
        ALTER TABLE vps_samples ADD COLUMN net_tx_bytes INTEGER;
        ALTER TABLE vps_samples ADD COLUMN disk_read_bytes INTEGER;
        ALTER TABLE vps_samples ADD COLUMN disk_write_bytes INTEGER;
        ALTER TABLE vps_samples ADD COLUMN domid INTEGER;
        CREATE TABLE traffic_counters (
            vps_id INTEGER PRIMARY KEY REFERENCES vps(id) ON DELETE CASCADE, domid INTEGER NOT NULL,
            rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL);
        """,
    ];

    /// <summary>Turns on WAL and applies the migrations the database has not seen (PRAGMA user_version counts them).</summary>
    public int Migrate()
    {
        using var c = Open();
        Exec(c, "PRAGMA journal_mode = WAL;");
        var version = Convert.ToInt32(Scalar(c, "PRAGMA user_version;"));
        for (var i = version; i < Migrations.Length; i++)
        {
            using var tx = c.BeginTransaction();
            Exec(c, Migrations[i], tx);
            Exec(c, $"PRAGMA user_version = {i + 1};", tx);
            tx.Commit();
        }
        return Migrations.Length;
    }

    /// <summary>Copies the live database to <paramref name="file"/> with SQLite's online backup API: readers and writers keep going.</summary>
    public void Backup(string file)
    {
        using var src = Open();
        using var dst = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString());
        dst.Open();
        src.BackupDatabase(dst);
    }

    internal static void Exec(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    internal static object? Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }
}
