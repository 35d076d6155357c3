using XenSharp.Panel.Data;
using XenSharp.Panel.Services;

namespace XenSharp.Panel.Tests;

public sealed class StoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "xsp-store-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly Store _s;
    private readonly long _owner, _host, _tpl;
    private readonly Plan _plan;

    public StoreTests()
    {
        Directory.CreateDirectory(_dir);
        var db = new Db($"Data Source={_dir}/p.db");
        db.Migrate();
        _s = new Store(db);
        _owner = _s.CreateUser("owner", "x", Roles.Client, "");
        _host = _s.CreateHost("h1", "http://127.0.0.1:9", "t", false);
        _plan = _s.GetPlan(_s.CreatePlan(new Plan(0, "p", 64, 1, 1, 256, 0, 10, 0)))!;
        _tpl = _s.CreateTemplate(new OsTemplate(0, "t", "hvm", "/k", "", "", ""));
    }

    [Fact]
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

    [Fact]
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

    [Fact]
    public void Samples_keep_the_io_counters_and_older_rows_read_back_without_them()
    {
        var id = _s.CreateVps("io", _owner, _host, _plan, _tpl);
        _s.AddSamples([(id, 1.0, 64L, true)]);
        _s.AddSamples([(id, 2.0, 64L, true, (IoCounters?)new IoCounters(7, 100, 200, 300, 400))]);
        var samples = _s.Samples(id, 10);
        Assert.Null(samples[0].Io);
        Assert.Equal(new IoCounters(7, 100, 200, 300, 400), samples[1].Io);
    }

    [Fact]
    public void Committed_memory_counts_each_vps_at_its_plans_memory_the_most_a_live_resize_may_reach()
    {
        long before = _s.HostCommittedMiB(_host);
        var plan = _plan;
        var id = _s.CreateVps("committed", _owner, _host, plan, _tpl);
        Assert.Equal(before + plan.MemoryMiB, _s.HostCommittedMiB(_host));
        _s.ResizeVps(id, plan.Id, 16, 1);
        Assert.Equal(before + plan.MemoryMiB, _s.HostCommittedMiB(_host));
    }

    [Fact]
    public void A_PostgreSQL_connection_string_is_refused_with_the_reason()
    {
        var e = Assert.Throws<ArgumentException>(() => new Db("Host=db.example;Database=panel;Username=panel;Password=x"));
        Assert.Contains("SQLite only", e.Message);
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

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
