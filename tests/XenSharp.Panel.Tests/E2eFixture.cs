using System.Diagnostics;
using Microsoft.Playwright;
using XenSharp.Panel.Data;

namespace XenSharp.Panel.Tests;

/// <summary>
/// The whole stack for end-to-end tests: the real xld (HTTP API, token from the real xl), the panel on a loopback
/// port with that host, a plan and the HVM test guest as a template, and Debian's Chromium driven by Playwright.
/// </summary>
public sealed class E2eFixture : IAsyncLifetime
{
    public const string Password = "correct horse battery";
    public string? SkipReason { get; private set; }
    public RealXld Xld { get; private set; } = null!;
    public PanelServer Panel { get; private set; } = null!;
    public IPlaywright? Playwright { get; private set; }
    public IBrowser? Browser { get; private set; }
    public string? BrowserSkipReason { get; private set; }
    public long PlanId, TemplateId, HostId, AliceId, BobId, AdminId;

    public async Task InitializeAsync()
    {
        SkipReason = Repo.XldUnavailable();
        if (SkipReason is not null) return;
        Xld = new RealXld();
        Panel = await PanelServer.StartAsync(sampleSeconds: 1);
        var s = Panel.Store;
        AdminId = Panel.User("root", Roles.Admin, Password);
        AliceId = Panel.User("alice", Roles.Client, Password);
        BobId = Panel.User("bob", Roles.Client, Password);
        HostId = s.CreateHost("local", Xld.Url, Xld.Token, false);
        PlanId = s.CreatePlan(new Plan(0, "tiny", 16, 1, 1, 256, 0, 50, 100));
        TemplateId = s.CreateTemplate(new OsTemplate(0, "hello-hvm", "hvm", Repo.HvmGuest, "", "", ""));
        s.CreatePool(new IpPool(0, "test-net", "192.0.2.0/24", "192.0.2.1", "192.0.2.50", "192.0.2.99", null));
        await StartBrowserAsync();
    }

    private async Task StartBrowserAsync()
    {
        const string chromium = "/usr/bin/chromium";
        if (!File.Exists(chromium) && Environment.GetEnvironmentVariable("CI_NO_APT") is null)
        {
            // Test set-up installs Debian's Chromium when it is missing (root on these machines).
            foreach (var args in new[] { "update", "install -y chromium" })
                using (var p = Process.Start(new ProcessStartInfo("apt-get", args) { RedirectStandardOutput = true, RedirectStandardError = true })!)
                    p.WaitForExit(600_000);
        }
        if (!File.Exists(chromium)) { BrowserSkipReason = "Debian's chromium could not be installed (apt-get install -y chromium failed)"; return; }
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        Playwright?.Dispose();
        if (SkipReason is not null) return;
        // Guests are destroyed with xld; the panel goes first so its sampler stops polling.
        await Panel.DisposeAsync();
        Xld.Dispose();
    }
}

/// <summary>
/// One xld, one panel and one browser for all end-to-end classes, which then run one after another, and alone: beside
/// the other test classes (a PostgreSQL server starting, stores migrating) a cold first page load in Chromium has
/// overrun its minute on a 2-core machine.
/// </summary>
[CollectionDefinition("e2e", DisableParallelization = true)]
public sealed class E2eCollection : ICollectionFixture<E2eFixture>;
