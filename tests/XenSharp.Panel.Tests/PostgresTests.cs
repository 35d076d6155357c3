using Npgsql;
using XenSharp.Panel.Data;

namespace XenSharp.Panel.Tests;

/// <summary>What only PostgreSQL has: its schema types, the version table, the audit trigger, pg_dump backups.</summary>
public sealed class PostgresTests : IDisposable
{
    private readonly TestDatabase _t = TestDatabase.Create(DbKind.Postgres);
    private readonly Db _db;

    public PostgresTests() => _db = new Db(_t.ConnectionString);

    private object? Scalar(string sql, string? cs = null)
    {
        using var c = new NpgsqlConnection(cs ?? _t.ConnectionString);
        c.Open();
        using var cmd = new NpgsqlCommand(sql, c);
        return cmd.ExecuteScalar();
    }

    [SkippableFact]
    public void Migrations_are_versioned_idempotent_and_run_once_when_panels_start_together()
    {
        Parallel.For(0, 4, _ => new Db(_t.ConnectionString).Migrate());
        Assert.Equal(Db.Migrations.Length, _db.Migrate());
        Assert.Equal((long)Db.Migrations.Length, Convert.ToInt64(Scalar("SELECT version FROM schema_version")));
        Assert.Equal(1L, Scalar("SELECT COUNT(*) FROM schema_version"));
        Assert.Equal("timestamp with time zone", Scalar("SELECT data_type FROM information_schema.columns WHERE table_name='users' AND column_name='created_at'"));
        Assert.Equal("YES", Scalar("SELECT is_identity FROM information_schema.columns WHERE table_name='audit_log' AND column_name='id'"));
        Assert.Equal("bigint", Scalar("SELECT data_type FROM information_schema.columns WHERE table_name='traffic' AND column_name='rx_bytes'"));
        Assert.Equal("xsp_nocase", Scalar("SELECT collation_name FROM information_schema.columns WHERE table_name='users' AND column_name='username'"));
    }

    [SkippableFact]
    public void The_audit_log_refuses_update_delete_and_truncate()
    {
        _db.Migrate();
        var store = new Store(_db);
        store.Audit(null, "test", "127.0.0.1", "test.entry", "x");
        foreach (var sql in new[] { "UPDATE audit_log SET action='forged'", "DELETE FROM audit_log", "TRUNCATE audit_log", "DELETE FROM audit_log WHERE id < 0" })
        {
            var e = Assert.Throws<PostgresException>(() => Scalar(sql));
            Assert.Contains("append-only", e.MessageText);
        }
        Assert.Equal("test.entry", store.PageAudit(1, 10).Items.Single().Action);
    }

    [SkippableFact]
    public void Backup_runs_pg_dump_and_the_dump_restores_with_its_data_and_trigger()
    {
        Skip.If(PostgresDialect.FindOnPath("pg_dump", Environment.GetEnvironmentVariable("PATH") ?? "") is null, "pg_dump is not on PATH (Debian: postgresql-client)");
        _db.Migrate();
        var store = new Store(_db);
        store.CreateUser("ivan", "x", Roles.Client, "");
        store.Audit(null, "test", "127.0.0.1", "test.entry", "x");
        var file = Path.Combine(_t.Directory, "panel.dump");
        _db.Backup(file);

        var server = PgServer.Acquire();
        var restored = server.CreateDatabase();
        try
        {
            var b = new NpgsqlConnectionStringBuilder(restored);
            PgServer.Run(Path.Combine(server.BinDir, "pg_restore"), "--no-owner", "-h", b.Host!, "-p", b.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "-U", b.Username!, "-d", b.Database!, file);
            Assert.Equal(1L, Scalar("SELECT COUNT(*) FROM users WHERE username='IVAN'", restored));
            var e = Assert.Throws<PostgresException>(() => Scalar("DELETE FROM audit_log", restored));
            Assert.Contains("append-only", e.MessageText);
            Assert.Equal(Db.Migrations.Length, new Db(restored).Migrate()); // a restored database is current: nothing re-runs
        }
        finally
        {
            server.DropDatabase(restored);
            PgServer.Release();
        }
    }

    public void Dispose() => _t.Dispose();
}
