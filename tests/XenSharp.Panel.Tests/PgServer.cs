using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace XenSharp.Panel.Tests;

/// <summary>
/// A throwaway PostgreSQL server for the tests, started from Debian's binaries (/usr/lib/postgresql/N/bin): initdb
/// into a temp directory, listening on 127.0.0.1 at a free port with its unix socket in that directory, trust
/// authentication for the test role. Shared by the test classes that use it and stopped and deleted when the last
/// one releases it (or when the test process exits). Never touches a system cluster.
/// </summary>
internal sealed class PgServer
{
    private static readonly Lock Gate = new();
    private static PgServer? _shared;
    private static int _users;

    // A safety net: a test run that ends without releasing (a crash in a fixture) still stops the server.
    static PgServer() => AppDomain.CurrentDomain.ProcessExit += (_, _) => { lock (Gate) _shared?.Stop(); };

    public const string Role = "xsp";
    public string BinDir { get; }
    public int Port { get; }
    private readonly string _base;
    private readonly bool _asPostgresUser;

    /// <summary>Why PostgreSQL tests cannot run here, or null when they can.</summary>
    public static string? Unavailable()
    {
        if (FindBinDir() is null) return "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (scripts/setup.sh installs Debian's postgresql package)";
        if (Environment.IsPrivilegedProcess && !File.ReadLines("/etc/passwd").Any(l => l.StartsWith("postgres:", StringComparison.Ordinal)))
            return "running as root and there is no 'postgres' user to run the server as (PostgreSQL refuses to run as root)";
        return null;
    }

    private static string? FindBinDir() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Where(d => File.Exists(Path.Combine(d, "bin", "initdb")) && File.Exists(Path.Combine(d, "bin", "pg_ctl")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0)
                .Select(d => Path.Combine(d, "bin")).FirstOrDefault()
            : null;

    /// <summary>The shared server, started on first use; throws <see cref="SkipException"/> when it cannot exist here.</summary>
    public static PgServer Acquire()
    {
        var why = Unavailable();
        if (why is not null) throw new SkipException(why);
        lock (Gate)
        {
            _shared ??= new PgServer();
            _users++;
            return _shared;
        }
    }

    public static void Release()
    {
        lock (Gate)
        {
            if (--_users > 0 || _shared is null) return;
            _shared.Stop();
            _shared = null;
        }
    }

    private PgServer()
    {
        BinDir = FindBinDir()!;
        _asPostgresUser = Environment.IsPrivilegedProcess;
        _base = Path.Combine(Path.GetTempPath(), "xsp-pg-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(_base);
        if (_asPostgresUser) Run("chown", "postgres:", _base);
        Port = FreePort();
        RunAsServerUser("initdb", "-D", $"{_base}/data", "-U", Role, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync");
        RunAsServerUser("pg_ctl", "-D", $"{_base}/data", "-l", $"{_base}/server.log", "-w", "-t", "60", "-o",
            $"-c listen_addresses=127.0.0.1 -c port={Port} -c unix_socket_directories={_base} -c fsync=off -c max_connections=200", "start");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public string ConnectionString(string database) => $"Host=127.0.0.1;Port={Port};Username={Role};Database={database}";

    /// <summary>A new empty database on the server; its connection string.</summary>
    public string CreateDatabase()
    {
        var name = "xsp_" + Guid.NewGuid().ToString("N")[..12];
        Admin($"CREATE DATABASE {name}");
        return ConnectionString(name);
    }

    public void DropDatabase(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        NpgsqlConnection.ClearAllPools();
        Admin($"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    }

    private void Admin(string sql)
    {
        using var c = new NpgsqlConnection(ConnectionString("postgres") + ";Pooling=false");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private void Stop()
    {
        NpgsqlConnection.ClearAllPools();
        try { RunAsServerUser("pg_ctl", "-D", $"{_base}/data", "-m", "immediate", "-w", "stop"); }
        finally { try { Directory.Delete(_base, true); } catch (IOException) { } }
    }

    /// <summary>One of the server's binaries, as the postgres user when the tests run as root.</summary>
    public string RunAsServerUser(string tool, params string[] args) =>
        _asPostgresUser ? Run("runuser", ["-u", "postgres", "--", Path.Combine(BinDir, tool), .. args]) : Run(Path.Combine(BinDir, tool), args);

    public static string Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/" };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException($"{exe} {string.Join(' ', args)} did not finish"); }
        if (p.ExitCode != 0) throw new InvalidOperationException($"{exe} {string.Join(' ', args)} exited with {p.ExitCode}: {err.Result}{output}");
        return output;
    }
}

public enum DbKind { Sqlite, Postgres }

/// <summary>A fresh, empty panel database of either kind, and a scratch directory beside it; Dispose removes both.</summary>
public sealed class TestDatabase : IDisposable
{
    public DbKind Kind { get; }
    public string ConnectionString { get; }
    public string Directory { get; }
    private readonly PgServer? _server;

    private TestDatabase(DbKind kind, string cs, string dir, PgServer? server) => (Kind, ConnectionString, Directory, _server) = (kind, cs, dir, server);

    /// <summary>Throws <see cref="SkipException"/> for PostgreSQL when no server can be started here.</summary>
    public static TestDatabase Create(DbKind kind)
    {
        var dir = Path.Combine(Path.GetTempPath(), "xsp-panel-" + Guid.NewGuid().ToString("N")[..12]);
        if (kind == DbKind.Sqlite)
        {
            System.IO.Directory.CreateDirectory(dir);
            return new TestDatabase(kind, $"Data Source={dir}/panel.db", dir, null);
        }
        var server = PgServer.Acquire();
        try
        {
            var cs = server.CreateDatabase();
            System.IO.Directory.CreateDirectory(dir);
            return new TestDatabase(kind, cs, dir, server);
        }
        catch { PgServer.Release(); throw; }
    }

    public void Dispose()
    {
        if (_server is null) Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        else
        {
            try { _server.DropDatabase(ConnectionString); }
            finally { PgServer.Release(); }
        }
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
    }
}
