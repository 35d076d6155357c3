using Microsoft.AspNetCore.Builder;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;

namespace XenSharp.Panel.Tests;

/// <summary>The real panel on Kestrel, 127.0.0.1 and a random port, with its own fresh database (SQLite by default).</summary>
public sealed class PanelServer : IAsyncDisposable
{
    public WebApplication App { get; }
    public string Directory => _db.Directory;
    public string Url { get; private set; } = "";
    public Store Store { get; }
    private readonly TestDatabase _db;

    private PanelServer(WebApplication app, TestDatabase db)
    {
        App = app;
        _db = db;
        Store = app.Services.GetRequiredService<Store>();
    }

    /// <summary>Throws <see cref="SkipException"/> when <paramref name="kind"/> is PostgreSQL and no server can run here.</summary>
    public static async Task<PanelServer> StartAsync(double sampleSeconds = 1, int loginPerMinute = 1000, bool sampler = true, DbKind kind = DbKind.Sqlite)
    {
        var db = TestDatabase.Create(kind);
        var app = PanelApp.Build([
            "--urls", "http://127.0.0.1:0",
            $"--ConnectionStrings:Panel={db.ConnectionString}",
            $"--Panel:SampleSeconds={sampleSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            $"--Panel:LoginAttemptsPerMinute={loginPerMinute}",
            $"--Panel:Sampler={sampler}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        var s = new PanelServer(app, db);
        await app.StartAsync();
        s.Url = app.Urls.First().TrimEnd('/');
        return s;
    }

    public long User(string name, string role, string password = "correct horse battery") =>
        Store.CreateUser(name, Passwords.Hash(password), role, $"{name}@example.test");

    public string Token(long userId, string scope)
    {
        var (secret, hash) = ApiTokens.NewSecret();
        return ApiTokens.Format(Store.CreateApiToken(userId, $"t-{scope}-{Guid.NewGuid():N}"[..20], hash, scope), secret);
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        _db.Dispose();
    }
}
