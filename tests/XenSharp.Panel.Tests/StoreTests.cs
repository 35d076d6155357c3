using XenSharp.Panel.Data;
using XenSharp.Panel.Services;

namespace XenSharp.Panel.Tests;

public sealed class SqliteStoreTests() : StoreTests(DbKind.Sqlite);

/// <summary>Skipped, with the reason, where no PostgreSQL server can be started (see <see cref="PgServer"/>).</summary>
public sealed class PostgresStoreTests() : StoreTests(DbKind.Postgres);

/// <summary>The store's SQL, run against each database (a fresh one per test).</summary>
public abstract class StoreTests : IDisposable
{
    private readonly TestDatabase _db;
    private readonly Store _s;
    private readonly long _owner, _host, _tpl;
    private readonly Plan _plan;

    // A SkipException thrown here reports every test of the class as skipped with its reason.
    protected StoreTests(DbKind kind)
    {
        _db = TestDatabase.Create(kind);
        var db = new Db(_db.ConnectionString);
        db.Migrate();
        _s = new Store(db);
        _owner = _s.CreateUser("owner", "x", Roles.Client, "");
        _host = _s.CreateHost("h1", "http://127.0.0.1:9", "t", false);
        _plan = _s.GetPlan(_s.CreatePlan(new Plan(0, "p", 64, 1, 1, 256, 0, 10, 0)))!;
        _tpl = _s.CreateTemplate(new OsTemplate(0, "t", "hvm", "/k", "", "", ""));
    }

    [SkippableFact]
    public void Addresses_come_from_the_hosts_pool_first_then_a_shared_one_and_are_freed_with_the_vps()
    {
        _s.CreatePool(new IpPool(0, "shared", "198.51.100.0/24", "", "198.51.100.10", "198.51.100.10", null));
        _s.CreatePool(new IpPool(0, "own", "192.0.2.0/30", "", "192.0.2.1", "192.0.2.2", _host));
        var ips = Enumerable.Range(0, 4).Select(i => _s.GetVps(_s.CreateVps($"v{i}x", _owner, _host, _plan, _tpl), new User(0, "", "", Roles.Admin, "", null, false, 0, null, false, DateTime.UtcNow))!.Ip).ToList();
        Assert.Equal(["192.0.2.1", "192.0.2.2", "198.51.100.10", null], ips);
        var first = _s.AllVps().First(v => v.Ip == "192.0.2.1");
        _s.DeleteVps(first.Id);
        var again = _s.CreateVps("reuse", _owner, _host, _plan, _tpl);
        Assert.Equal("192.0.2.1", _s.AllVps().Single(v => v.Id == again).Ip);
    }

    [SkippableFact]
    public void Traffic_accounting_adds_counter_deltas_per_month_and_survives_counter_resets_and_panel_restarts()
    {
        var id = _s.CreateVps("traffic", _owner, _host, _plan, _tpl);
        var month = TrafficAccounting.MonthOf(DateTime.UtcNow);
        var t = new TrafficAccounting(_s);
        t.Observe(id, domid: 5, 1000, 500);
        t.Observe(id, domid: 5, 1500, 700);
        Assert.Equal(new Traffic(month, 1500, 700), _s.GetTraffic(id, month));
        t.Observe(id, domid: 5, 200, 100); // the counters went down: the domain was rebuilt, these are all new bytes
        Assert.Equal(new Traffic(month, 1700, 800), _s.GetTraffic(id, month));
        t.Observe(id, domid: 6, 4000, 900); // a new domain id: a restart, even though the counters grew past the old ones
        Assert.Equal(new Traffic(month, 5700, 1700), _s.GetTraffic(id, month));
        // The panel restarts: the last counters come from the database, so nothing is counted twice.
        var again = new TrafficAccounting(_s);
        again.Observe(id, domid: 6, 4100, 950);
        Assert.Equal(new Traffic(month, 5800, 1750), _s.GetTraffic(id, month));
        again.Observe(id, domid: 6, 4100, 950);
        Assert.Equal(new Traffic(month, 5800, 1750), _s.GetTraffic(id, month));
    }

    [SkippableFact]
    public void Samples_keep_the_io_counters_and_older_rows_read_back_without_them()
    {
        var id = _s.CreateVps("io", _owner, _host, _plan, _tpl);
        _s.AddSamples([(id, 1.0, 64L, true)]);
        _s.AddSamples([(id, 2.0, 64L, true, (IoCounters?)new IoCounters(7, 100, 200, 300, 400))]);
        var samples = _s.Samples(id, 10);
        Assert.Null(samples[0].Io);
        Assert.Equal(new IoCounters(7, 100, 200, 300, 400), samples[1].Io);
    }

    [SkippableFact]
    public void Committed_memory_counts_each_vps_at_its_plans_memory_the_most_a_live_resize_may_reach()
    {
        long before = _s.HostCommittedMiB(_host);
        var plan = _plan;
        var id = _s.CreateVps("committed", _owner, _host, plan, _tpl);
        Assert.Equal(before + plan.MemoryMiB, _s.HostCommittedMiB(_host));
        _s.ResizeVps(id, plan.Id, 16, 1);
        Assert.Equal(before + plan.MemoryMiB, _s.HostCommittedMiB(_host));
    }

    [SkippableFact]
    public void Usernames_are_unique_and_found_regardless_of_case_other_names_are_case_sensitive()
    {
        var id = _s.CreateUser("Carol", "x", Roles.Client, "");
        Assert.Equal(id, _s.FindUser("cAROL")?.Id);
        Assert.ThrowsAny<System.Data.Common.DbException>(() => _s.CreateUser("CAROL", "x", Roles.Client, ""));
        _s.CreateHost("H1", "http://127.0.0.1:9", "t", false); // "h1" exists: host names compare exactly
        Assert.Equal(["H1", "h1"], _s.ListHosts().Select(h => h.Name).Order(StringComparer.Ordinal));
    }

    [SkippableFact]
    public void Times_round_trip_as_utc_and_old_samples_are_pruned()
    {
        var before = DateTime.UtcNow.AddSeconds(-1);
        var user = _s.GetUser(_owner)!;
        Assert.Equal(DateTimeKind.Utc, user.CreatedAt.Kind);
        Assert.InRange(user.CreatedAt, before, DateTime.UtcNow.AddSeconds(1));
        _s.RecordLoginFailure(_owner, 1, TimeSpan.FromMinutes(15));
        Assert.InRange(_s.GetUser(_owner)!.LockedUntil!.Value, before.AddMinutes(15), DateTime.UtcNow.AddMinutes(15).AddSeconds(1));
        var id = _s.CreateVps("prune", _owner, _host, _plan, _tpl);
        _s.AddSamples([(id, 1.0, 64L, true)]);
        _s.PruneSamples(before);
        Assert.Single(_s.Samples(id, 10));
        _s.PruneSamples(DateTime.UtcNow.AddSeconds(1));
        Assert.Empty(_s.Samples(id, 10));
    }

    [SkippableFact]
    public void Samples_come_back_in_insertion_order_the_newest_last()
    {
        var id = _s.CreateVps("order", _owner, _host, _plan, _tpl);
        for (var i = 0; i < 5; i++) _s.AddSamples([(id, i, 64L, true)]);
        Assert.Equal([2.0, 3.0, 4.0], _s.Samples(id, 3).Select(x => x.CpuSeconds));
    }

    [SkippableFact]
    public void The_vps_filter_matches_names_ignoring_case_like_sqlite_does()
    {
        var admin = new User(0, "", "", Roles.Admin, "", null, false, 0, null, false, DateTime.UtcNow);
        _s.CreateVps("WebOne", _owner, _host, _plan, _tpl);
        _s.CreateVps("db-two", _owner, _host, _plan, _tpl);
        var (items, total) = _s.PageVps(admin, "name", false, 1, 10, "webo");
        Assert.Equal(1, total);
        Assert.Equal("WebOne", items.Single().Name);
        Assert.Equal(2, _s.PageVps(admin, "name", false, 1, 10, null).Total);
    }

    public void Dispose()
    {
        _db.Dispose();
        GC.SuppressFinalize(this);
    }
}

public sealed class DatabaseChoiceTests
{
    [Fact]
    public void The_connection_string_picks_the_database_without_connecting()
    {
        Assert.IsType<PostgresDialect>(new Db("Host=db.example;Database=panel;Username=panel;Password=x").Dialect);
        Assert.IsType<PostgresDialect>(new Db("Server=/run/postgresql;Database=panel").Dialect);
        Assert.IsType<SqliteDialect>(new Db("Data Source=/var/lib/xensharp/panel.db").Dialect);
    }

    [Fact]
    public void Every_schema_token_expands_in_both_dialects_and_nothing_is_left_over()
    {
        foreach (var d in new SqlDialect[] { new SqliteDialect("Data Source=:memory:"), new PostgresDialect("Host=localhost") })
            foreach (var step in Db.Migrations)
                Assert.DoesNotContain("{", d.Expand(step));
    }

    [Fact]
    public void Without_pg_dump_the_backup_command_refuses_and_says_what_to_use()
    {
        var d = new PostgresDialect("Host=127.0.0.1;Database=panel") { SearchPath = "/nonexistent" };
        var e = Assert.Throws<InvalidOperationException>(() => d.Backup("/tmp/never-written.dump"));
        Assert.Contains("pg_dump was not found", e.Message);
        Assert.Contains("postgresql-client", e.Message);
    }

    [Theory]
    [InlineData("10.0.0.0/24", "10.0.0.10", "10.0.0.20", true)]
    [InlineData("10.0.0.0/24", "10.0.1.10", "10.0.1.20", false)]
    [InlineData("10.0.0.5/24", "10.0.0.10", "10.0.0.20", false)]
    [InlineData("10.0.0.0/24", "10.0.0.30", "10.0.0.20", false)]
    [InlineData("10.0.0.0/40", "10.0.0.1", "10.0.0.2", false)]
    [InlineData("::1/128", "::1", "::1", false)]
    public void Pool_ranges_must_lie_in_their_cidr(string cidr, string start, string end, bool ok) =>
        Assert.Equal(ok, IpRange.Validate(cidr, start, end) is null);
}
