using System.Data.Common;

namespace XenSharp.Panel.Data;

/// <summary>
/// Opens connections to the panel's database and keeps its schema current. The connection string
/// (ConnectionStrings:Panel) decides the database: a PostgreSQL one (Host=…;Database=…) uses PostgreSQL through
/// Npgsql, anything else is a SQLite file. Both get the same schema from the same versioned steps.
/// </summary>
public sealed class Db(string connectionString)
{
    public SqlDialect Dialect { get; } = SqlDialect.For(connectionString);

    public DbConnection Open() => Dialect.Open();

    /// <summary>
    /// Versioned schema steps, applied in order inside one transaction each; never change what a released step means,
    /// add one. The {tokens} are the only places the databases differ (see <see cref="SqlDialect"/>).
    /// </summary>
    internal static readonly string[] Migrations =
    [
        // 1: the core model.
        """
        {prelude}
        CREATE TABLE users (
            id {id}, username TEXT {nocase} NOT NULL UNIQUE, password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin','client')), email TEXT NOT NULL DEFAULT '',
            totp_secret TEXT, totp_enabled {int} NOT NULL DEFAULT 0, failed_logins {int} NOT NULL DEFAULT 0,
            locked_until {time}, disabled {int} NOT NULL DEFAULT 0, created_at {time} NOT NULL);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE hosts (
            id {id}, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL, token TEXT NOT NULL,
            maintenance {int} NOT NULL DEFAULT 0, created_at {time} NOT NULL);
        CREATE TABLE plans (
            id {id}, name TEXT NOT NULL UNIQUE, memory_mib {int} NOT NULL, vcpus {int} NOT NULL,
            disk_gib {int} NOT NULL, cpu_weight {int} NOT NULL DEFAULT 256, cpu_cap {int} NOT NULL DEFAULT 0,
            traffic_gib {int} NOT NULL DEFAULT 0, rate_mbps {int} NOT NULL DEFAULT 0);
        CREATE TABLE templates (
            id {id}, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL CHECK (type IN ('pv','hvm')),
            kernel TEXT NOT NULL, ramdisk TEXT NOT NULL DEFAULT '', root_image TEXT NOT NULL DEFAULT '',
            extra TEXT NOT NULL DEFAULT '');
        CREATE TABLE ip_pools (
            id {id}, name TEXT NOT NULL UNIQUE, cidr TEXT NOT NULL, gateway TEXT NOT NULL DEFAULT '',
            range_start TEXT NOT NULL, range_end TEXT NOT NULL, host_id {int} REFERENCES hosts(id));
        CREATE TABLE vps (
            id {id}, name TEXT NOT NULL UNIQUE, owner_id {int} NOT NULL REFERENCES users(id),
            host_id {int} NOT NULL REFERENCES hosts(id), plan_id {int} NOT NULL REFERENCES plans(id),
            template_id {int} NOT NULL REFERENCES templates(id), memory_mib {int} NOT NULL, vcpus {int} NOT NULL,
            created_at {time} NOT NULL);
        CREATE INDEX vps_owner ON vps(owner_id);
        CREATE TABLE ip_addresses (
            address TEXT PRIMARY KEY, pool_id {int} NOT NULL REFERENCES ip_pools(id),
            vps_id {int} NOT NULL REFERENCES vps(id) ON DELETE CASCADE);
        CREATE TABLE audit_log (
            id {id}, at {time} NOT NULL, user_id {int}, username TEXT NOT NULL, ip TEXT NOT NULL,
            action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
        -- Append-only in the database itself, not just by convention in the code.
        {audit_append_only}
        CREATE TABLE api_tokens (
            id {id}, user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE, name TEXT NOT NULL,
            secret_hash TEXT NOT NULL, scope TEXT NOT NULL CHECK (scope IN ('read','write','admin')),
            created_at {time} NOT NULL, last_used_at {time});
        """,
        // 2: monitoring: samples for graphs, monthly traffic accounting.
        """
        CREATE TABLE vps_samples (
            {seq} vps_id {int} NOT NULL REFERENCES vps(id) ON DELETE CASCADE, at {time} NOT NULL,
            cpu_seconds {real} NOT NULL, memory_mib {int} NOT NULL, running {int} NOT NULL);
        CREATE INDEX vps_samples_by_vps ON vps_samples(vps_id, at);
        CREATE TABLE traffic (
            vps_id {int} NOT NULL REFERENCES vps(id) ON DELETE CASCADE, month TEXT NOT NULL,
            rx_bytes {int} NOT NULL DEFAULT 0, tx_bytes {int} NOT NULL DEFAULT 0, PRIMARY KEY (vps_id, month));
        """,
        // 3: disk and network I/O in the samples (the host's running byte counters; NULL when the host did not report
        // them), and the counters last seen per VPS, so traffic accounting survives a panel restart.
        """
        ALTER TABLE vps_samples ADD COLUMN net_rx_bytes {int};
        ALTER TABLE vps_samples ADD COLUMN net_tx_bytes {int};
        ALTER TABLE vps_samples ADD COLUMN disk_read_bytes {int};
        ALTER TABLE vps_samples ADD COLUMN disk_write_bytes {int};
        ALTER TABLE vps_samples ADD COLUMN domid {int};
        CREATE TABLE traffic_counters (
            vps_id {int} PRIMARY KEY REFERENCES vps(id) ON DELETE CASCADE, domid {int} NOT NULL,
            rx_bytes {int} NOT NULL, tx_bytes {int} NOT NULL);
        """,
        // 4: the VPS's own disk on its host (made by xld's disk-create from the template's root image); '' for none.
        """
        ALTER TABLE vps ADD COLUMN disk_path TEXT NOT NULL DEFAULT '';
        """,
    ];

    /// <summary>Applies the steps the database has not seen yet; running it again, or from a second panel, is a no-op.</summary>
    public int Migrate()
    {
        using var c = Open();
        Dialect.BeforeMigrations(c);
        while (true)
        {
            using var tx = c.BeginTransaction();
            var version = Dialect.LockSchemaVersion(c, tx);
            if (version >= Migrations.Length) { tx.Commit(); break; }
            SqlDialect.Exec(c, Dialect.Expand(Migrations[version]), tx);
            Dialect.SetSchemaVersion(c, tx, version + 1);
            tx.Commit();
        }
        return Migrations.Length;
    }

    /// <summary>SQLite: an online copy to <paramref name="file"/>. PostgreSQL: pg_dump's custom format into it.</summary>
    public void Backup(string file) => Dialect.Backup(file);
}
