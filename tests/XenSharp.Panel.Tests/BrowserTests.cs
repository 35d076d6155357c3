using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace XenSharp.Panel.Tests;

/// <summary>
/// Real-browser tests: Debian's headless Chromium driven by Playwright against the panel and the real xld.
/// Every page visited is saved as a PNG under the test output's artifacts/ folder.
/// </summary>
[Collection("e2e")]
public sealed class BrowserTests(E2eFixture f, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<IBrowserContext> _contexts = [];

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Closes this test's pages, so none of their events fire into a finished test's output.</summary>
    public async Task DisposeAsync()
    {
        foreach (var c in _contexts) await c.CloseAsync();
    }

    private void Log(string line)
    {
        try { output.WriteLine(line); } catch (InvalidOperationException) { }
    }

    private async Task<IPage> LoginAsync(string user)
    {
        var ctx = await f.Browser!.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        _contexts.Add(ctx);
        var page = await ctx.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        page.Console += (_, m) => { if (m.Type == "error") Log($"[browser {user}] {m.Text}"); };
        await page.GotoAsync(f.Panel.Url + "/login");
        await Shot(page, $"login-{user}");
        await page.FillAsync("#f-username", user);
        await page.FillAsync("#f-password", E2eFixture.Password);
        await page.ClickAsync("#login");
        // The dashboard's HTML is what the next steps read; its deferred scripts need not have run yet.
        await page.WaitForURLAsync(f.Panel.Url + "/", new PageWaitForURLOptions { WaitUntil = WaitUntilState.DOMContentLoaded });
        return page;
    }

    private static async Task Shot(IPage page, string name)
    {
        Directory.CreateDirectory(Repo.Artifacts);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Repo.Artifacts, $"{name}.png"), FullPage = true });
    }

    /// <summary>The text xterm.js holds in its buffer (what the user sees on the console, scrollback included).</summary>
    private static Task<string> ConsoleText(IPage page) => page.EvaluateAsync<string>(
        "() => { const t = window.panelConsole; if (!t) return ''; const b = t.buffer.active; let s = ''; for (let i = 0; i < b.length; i++) { const l = b.getLine(i); if (l) s += l.translateToString(true) + '\\n'; } return s; }");

    private static async Task WaitFor(Func<Task<bool>> cond, TimeSpan timeout, Func<Task<string>> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await cond())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(await describe());
            await Task.Delay(250);
        }
    }

    private static async Task<int> GraphPoints(IPage page) => int.Parse(await page.GetAttributeAsync("#cpu-graph", "data-points") ?? "0");

    [SkippableFact]
    public async Task Client_creates_a_vps_sees_its_console_reboots_it_and_graphs_move_while_another_client_cannot_see_it()
    {
        Skip.If(f.SkipReason is not null, f.SkipReason);
        Skip.If(f.Browser is null, f.BrowserSkipReason);

        var page = await LoginAsync("alice");
        await Shot(page, "dashboard-alice");

        // Create from a plan and a template.
        await page.ClickAsync("#new-vps");
        await page.FillAsync("#f-name", "alice-www");
        await page.SelectOptionAsync("#f-planId", f.PlanId.ToString());
        await page.SelectOptionAsync("#f-templateId", f.TemplateId.ToString());
        await Shot(page, "vps-new");
        await page.ClickAsync("#create");
        await page.WaitForURLAsync(new Regex(@"/vps/\d+$"));
        var vpsUrl = page.Url;
        Assert.Contains("Server alice-www created.", await page.InnerTextAsync("main"));

        // Console output in the page: the guest's banner and "ready", then typed input answered.
        await WaitFor(async () => (await ConsoleText(page)).Contains("ready"), TimeSpan.FromSeconds(120),
            async () => $"no 'ready' on the console: {await ConsoleText(page)}\nxld: {f.Xld.Output}");
        Assert.Contains("XenSharp HVM test guest", await ConsoleText(page));
        await page.ClickAsync("#console");
        await page.Keyboard.TypeAsync("hello");
        await page.Keyboard.PressAsync("Enter");
        await WaitFor(async () => (await ConsoleText(page)).Contains("hello from the guest"), TimeSpan.FromSeconds(60),
            async () => $"no answer to 'hello': {await ConsoleText(page)}");

        // Graphs: the CPU graph gains points as the sampler polls xld.
        await WaitFor(async () => await GraphPoints(page) >= 2, TimeSpan.FromSeconds(30), async () => $"CPU graph has {await GraphPoints(page)} points");
        var before = await GraphPoints(page);
        await WaitFor(async () => await GraphPoints(page) > before, TimeSpan.FromSeconds(30), async () => $"CPU graph stuck at {await GraphPoints(page)} points");
        Assert.NotEmpty(await page.InnerTextAsync("#mem-now"));
        // Disk and network graphs from xld's stats counters, drawn beside them.
        Assert.True(int.Parse(await page.GetAttributeAsync("#net-graph", "data-points") ?? "0") >= 2);
        Assert.True(int.Parse(await page.GetAttributeAsync("#disk-graph", "data-points") ?? "0") >= 2);
        Assert.EndsWith("KiB/s", await page.InnerTextAsync("#net-now"));
        await Shot(page, "vps-detail");

        // Reboot: the guest comes back and prints its banner again.
        var uptimeBefore = await page.InnerTextAsync(".status-line");
        await page.ClickAsync("#act-reboot");
        await page.WaitForURLAsync(vpsUrl);
        Assert.Contains("Reboot requested.", await page.InnerTextAsync("main"));
        // A fresh page's console replays the current boot's history: once it has "ready" but not our earlier "hello", the guest restarted.
        await WaitFor(async () =>
        {
            await page.ReloadAsync();
            await Task.Delay(1500);
            var text = await ConsoleText(page);
            return text.Contains("ready") && !text.Contains("hello from the guest");
        }, TimeSpan.FromSeconds(120), async () => $"no fresh boot on the console: {await ConsoleText(page)}");
        Assert.Contains("XenSharp HVM test guest", await ConsoleText(page));
        var pointsAfterReboot = await GraphPoints(page);
        await WaitFor(async () => await GraphPoints(page) > pointsAfterReboot, TimeSpan.FromSeconds(30), async () => "graph did not move after the reboot");
        await Shot(page, "vps-after-reboot");
        Log($"status before reboot: {uptimeBefore}; after: {await page.InnerTextAsync(".status-line")}");

        // The list shows it; the rebuild page asks for confirmation.
        await page.GotoAsync(f.Panel.Url + "/vps");
        Assert.Contains("alice-www", await page.InnerTextAsync("table"));
        await Shot(page, "vps-list-alice");
        await page.GotoAsync(vpsUrl + "/rebuild");
        await Shot(page, "vps-rebuild-confirm");
        await page.ClickAsync("#rebuild"); // without typing the name: refused by the browser's required check or the server
        Assert.Contains("/rebuild", page.Url);

        // Another client: not in the list, and the detail page is a 404.
        var bob = await LoginAsync("bob");
        await bob.GotoAsync(f.Panel.Url + "/vps");
        Assert.DoesNotContain("alice-www", await bob.ContentAsync());
        var resp = await bob.GotoAsync(vpsUrl);
        Assert.Equal(404, resp!.Status);
        Assert.DoesNotContain("alice-www", await bob.ContentAsync());
        await Shot(bob, "vps-detail-bob-404");
        var stats = await bob.GotoAsync(vpsUrl.Replace("/vps/", "/api/v1/vps/") + "/stats");
        Assert.Equal(404, stats!.Status);
    }

    [SkippableFact]
    public async Task Admin_pages_render_and_list_every_object()
    {
        Skip.If(f.SkipReason is not null, f.SkipReason);
        Skip.If(f.Browser is null, f.BrowserSkipReason);
        var page = await LoginAsync("root");
        await Shot(page, "dashboard-admin");
        foreach (var (path, expect) in new[]
                 {
                     ("/admin/hosts", "local"), ("/admin/plans", "tiny"), ("/admin/templates", "hello-hvm"), ("/admin/pools", "192.0.2.0/24"),
                     ("/admin/users", "alice"), ("/admin/audit", "login"), ("/admin/settings", "two-factor"), ("/vps", "Servers"), ("/account", "API tokens"),
                 })
        {
            var r = await page.GotoAsync(f.Panel.Url + path);
            Assert.Equal(200, r!.Status);
            Assert.Contains(expect, await page.InnerTextAsync("main"), StringComparison.OrdinalIgnoreCase);
            await Shot(page, "admin" + path.Replace('/', '-'));
        }
        // Host health comes from the real xld's version/info.
        await page.GotoAsync(f.Panel.Url + "/admin/hosts");
        Assert.Contains("up", await page.InnerTextAsync("table"));

        // An admin adds a plan through the form (antiforgery token included by the page).
        await page.GotoAsync(f.Panel.Url + "/admin/plans");
        await page.FillAsync("#f-name", "medium");
        await page.FillAsync("#f-memoryMiB", "32");
        await page.ClickAsync("text=Add plan");
        Assert.Contains("Plan added.", await page.InnerTextAsync("main"));
        Assert.Contains("medium", await page.InnerTextAsync("table"));

        // The admin sees clients' VPSes with their owner.
        var clientToken = f.Panel.Token(f.BobId, "write");
        using var req = new HttpRequestMessage(HttpMethod.Post, f.Panel.Url + "/api/v1/vps")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { name = "bob-db", planId = f.PlanId, templateId = f.TemplateId, boot = false }),
        };
        req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", clientToken);
        Assert.True((await ApiFixture.Http.SendAsync(req)).IsSuccessStatusCode);
        await page.GotoAsync(f.Panel.Url + "/vps?sort=owner");
        var table = await page.InnerTextAsync("table");
        Assert.Contains("bob-db", table);
        Assert.Contains("bob", table);
        await Shot(page, "vps-list-admin");
    }
}
