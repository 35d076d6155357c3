using Microsoft.AspNetCore.Builder;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;

namespace XenSharp.Panel.Tests;

/// <summary>The real panel on Kestrel, 127.0.0.1 and a random port, with its own SQLite file.</summary>
public sealed class PanelServer : IAsyncDisposable
{
    public WebApplication App { get; }
    public string Directory { get; }
    public string Url { get; private set; } = "";
    public Store Store { get; }

    private PanelServer(WebApplication app, string dir)
    {
        App = app;
        Directory = dir;
        Store = app.Services.GetRequiredService<Store>();
    }

    public static async Task<PanelServer> StartAsync(double sampleSeconds = 1, int loginPerMinute = 1000, bool sampler = true)
    {
        var dir = Path.Combine(Path.GetTempPath(), "xsp-panel-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(dir);
        var app = PanelApp.Build([
            "--urls", "http://127.0.0.1:0",
            $"--ConnectionStrings:Panel=Data Source={dir}/panel.db",
            $"--Panel:SampleSeconds={sampleSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            $"--Panel:LoginAttemptsPerMinute={loginPerMinute}",
            $"--Panel:Sampler={sampler}",
            "--Logging:LogLevel:Default=Warning",
        ]);
        var s = new PanelServer(app, dir);
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
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
    }
}
