using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.RateLimiting;
using XenSharp.Panel.Api;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;
using XenSharp.Panel.Services;
using XenSharp.Panel.Ui;
using XenSharp.Panel.Xld;

namespace XenSharp.Panel;

/// <summary>Builds the panel's web application; Program and the tests both start it through here.</summary>
public static class PanelApp
{
    public const string SmartScheme = "Smart";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
            WebRootPath = Path.Combine(AppContext.BaseDirectory, "wwwroot"),
        });
        configure?.Invoke(builder);
        var s = builder.Services;
        var cs = builder.Configuration.GetConnectionString("Panel") ?? "Data Source=panel.db";
        s.AddSingleton(new Db(cs));
        s.AddSingleton<Store>();
        s.AddSingleton<LoginService>();
        s.AddSingleton<VpsDisks>();
        s.AddSingleton<VpsService>();
        s.AddSingleton<AdminService>();
        s.AddSingleton<TrafficAccounting>();
        s.AddSingleton<XldClients>();
        s.AddSingleton<Sampler>();
        if (builder.Configuration.GetValue("Panel:Sampler", true)) s.AddHostedService(sp => sp.GetRequiredService<Sampler>());
        s.AddHttpClient("xld", c => c.Timeout = TimeSpan.FromSeconds(90))
            .ConfigurePrimaryHttpMessageHandler(() =>
            {
                var h = new HttpClientHandler();
                // A host with a self-signed certificate is allowed only when the admin says so.
                if (builder.Configuration.GetValue("Panel:AcceptAnyHostCertificate", false))
                    h.ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator;
                return h;
            });
        s.AddProblemDetails();
        s.AddOpenApi("v1", o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info.Title = "XenSharp Panel API";
            doc.Info.Description = "Manage VPSes, hosts, plans, templates, IP pools, users and API tokens. Authenticate with 'Authorization: Bearer xsp_…'.";
            return Task.CompletedTask;
        }));
        s.AddAntiforgery(o => { o.Cookie.Name = "xsp.af"; o.Cookie.SameSite = SameSiteMode.Strict; o.FormFieldName = "__af"; });
        s.AddAuthentication(SmartScheme)
            .AddPolicyScheme(SmartScheme, SmartScheme, o => o.ForwardDefaultSelector = ctx =>
                ctx.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.Ordinal) ? BearerHandler.SchemeName : CookieAuthenticationDefaults.AuthenticationScheme)
            .AddCookie(o =>
            {
                o.Cookie.Name = "xsp.session";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Strict;
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest; // Secure whenever the panel is served over TLS
                o.ExpireTimeSpan = TimeSpan.FromHours(8);
                o.SlidingExpiration = true;
                o.LoginPath = "/login";
                o.Events.OnRedirectToLogin = ctx =>
                {
                    if (ctx.Request.Path.StartsWithSegments("/api")) ctx.Response.StatusCode = 401;
                    else ctx.Response.Redirect(ctx.RedirectUri);
                    return Task.CompletedTask;
                };
            })
            .AddScheme<AuthenticationSchemeOptions, BearerHandler>(BearerHandler.SchemeName, null);
        s.AddAuthorization();
        s.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = 429;
            // Per client address: slows password guessing across many usernames; lock-out handles one username.
            o.AddPolicy("login", ctx => RateLimitPartition.GetFixedWindowLimiter(CurrentUser.Ip(ctx), _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = builder.Configuration.GetValue("Panel:LoginAttemptsPerMinute", 20), Window = TimeSpan.FromMinutes(1), QueueLimit = 0,
            }));
        });

        var app = builder.Build();
        app.Services.GetRequiredService<Db>().Migrate();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.Use(SecurityHeaders);
        app.UseStaticFiles();
        app.UseWebSockets();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.Use(EnrollmentGate);
        app.UseAntiforgery();
        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous();
        ApiEndpoints.Map(app);
        Pages.Map(app);
        return app;
    }

    private static Task SecurityHeaders(HttpContext ctx, Func<Task> next)
    {
        var h = ctx.Response.Headers;
        // Scripts only from the panel itself; xterm.js sets inline styles on its elements, so styles allow them.
        h.ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
                                  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
        h.XContentTypeOptions = "nosniff";
        h["Referrer-Policy"] = "no-referrer";
        h.XFrameOptions = "DENY";
        h["Cross-Origin-Opener-Policy"] = "same-origin";
        if (ctx.Request.IsHttps) h.StrictTransportSecurity = "max-age=31536000";
        return next();
    }

    /// <summary>While a mandatory TOTP enrolment is pending, a session can reach only the enrolment page and logout.</summary>
    private static Task EnrollmentGate(HttpContext ctx, Func<Task> next)
    {
        if (CurrentUser.EnrollPending(ctx))
        {
            var p = ctx.Request.Path;
            if (!p.StartsWithSegments("/account/totp") && !p.StartsWithSegments("/logout") && !p.StartsWithSegments("/css") && !p.StartsWithSegments("/js"))
            {
                if (p.StartsWithSegments("/api")) { ctx.Response.StatusCode = 403; return Task.CompletedTask; }
                ctx.Response.Redirect("/account/totp");
                return Task.CompletedTask;
            }
        }
        return next();
    }
}
