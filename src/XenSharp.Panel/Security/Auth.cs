using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using XenSharp.Panel.Data;
using XenSharp.Panel.Services;

namespace XenSharp.Panel.Security;

public static class PanelClaims
{
    public const string Scope = "xsp:scope";      // "session" for a browser login, else the API token's scope
    public const string Enroll = "xsp:enroll";    // set while a mandatory TOTP enrolment is pending
    public const string Stamp = "xsp:stamp";      // password hash prefix: a password change ends old sessions
}

/// <summary>Authenticates "Authorization: Bearer xsp_…" panel API tokens.</summary>
public sealed class BearerHandler(IOptionsMonitor<AuthenticationSchemeOptions> o, ILoggerFactory l, UrlEncoder e, Store store)
    : AuthenticationHandler<AuthenticationSchemeOptions>(o, l, e)
{
    public const string SchemeName = "Bearer";
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<long, long> LastTouched = new();

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal)) return Task.FromResult(AuthenticateResult.NoResult());
        if (!ApiTokens.TryParse(header["Bearer ".Length..].Trim(), out var id, out var secret)
            || store.GetApiTokenSecret(id) is not { } t || !ApiTokens.Matches(secret, t.SecretHash)
            || store.GetUser(t.UserId) is not { Disabled: false } user)
            return Task.FromResult(AuthenticateResult.Fail("invalid token"));
        // last-used is informational: a write per request would cost more than the request, so once a minute will do.
        var now = Environment.TickCount64;
        if (now - LastTouched.GetValueOrDefault(id, long.MinValue / 2) > 60_000)
        {
            LastTouched[id] = now;
            store.TouchApiToken(id);
        }
        // An admin-scoped token of a user who is no longer admin gets no admin power: the role claim follows the user.
        var claims = new[] { new Claim(ClaimTypes.NameIdentifier, user.Id.ToString()), new Claim(ClaimTypes.Name, user.Username),
            new Claim(ClaimTypes.Role, user.Role), new Claim(PanelClaims.Scope, t.Scope) };
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName)), SchemeName)));
    }
}

/// <summary>Resolves the signed-in user per request from the database, so a disabled or deleted account stops at once.</summary>
public static class CurrentUser
{
    public static User? Get(HttpContext ctx)
    {
        if (ctx.Items.TryGetValue("xsp:user", out var cached)) return cached as User;
        User? user = null;
        if (ctx.User.Identity?.IsAuthenticated == true && long.TryParse(ctx.User.FindFirstValue(ClaimTypes.NameIdentifier), out var id))
        {
            var store = ctx.RequestServices.GetRequiredService<Store>();
            user = store.GetUser(id);
            if (user is { Disabled: true }) user = null;
            var stamp = ctx.User.FindFirstValue(PanelClaims.Stamp);
            if (user is not null && stamp is not null && stamp != StampOf(user)) user = null;
        }
        ctx.Items["xsp:user"] = user;
        return user;
    }

    public static string Scope(HttpContext ctx) => ctx.User.FindFirstValue(PanelClaims.Scope) ?? "session";
    public static bool EnrollPending(HttpContext ctx) => ctx.User.HasClaim(c => c.Type == PanelClaims.Enroll);
    public static string StampOf(User u) => u.PasswordHash[^12..];
    public static string Ip(HttpContext ctx) => ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";
    public static Actor Actor(HttpContext ctx, User u) => new(u, Ip(ctx));
}

public enum LoginOutcome { Ok, NeedTotp, BadCredentials, Locked }

/// <summary>Password check with lock-out after repeated failures; the TOTP step is checked here too.</summary>
public sealed class LoginService(Store store, IConfiguration config)
{
    private int MaxFailures => config.GetValue("Panel:MaxLoginFailures", 5);
    private TimeSpan LockFor => TimeSpan.FromMinutes(config.GetValue("Panel:LockoutMinutes", 15.0));

    public (LoginOutcome Outcome, User? User) CheckPassword(string? username, string? password, string ip)
    {
        var user = string.IsNullOrEmpty(username) ? null : store.FindUser(username);
        if (user is null)
        {
            Passwords.Verify(password ?? "", Passwords.Dummy);
            store.Audit(null, username ?? "", ip, "login.fail", $"user:?:{Trunc(username)}", "unknown user");
            return (LoginOutcome.BadCredentials, null);
        }
        if (user.LockedUntil is { } until && until > DateTime.UtcNow)
        {
            store.Audit(user.Id, user.Username, ip, "login.locked", $"user:{user.Id}:{user.Username}");
            return (LoginOutcome.Locked, null);
        }
        if (user.Disabled || !Passwords.Verify(password ?? "", user.PasswordHash))
        {
            store.RecordLoginFailure(user.Id, MaxFailures, LockFor);
            store.Audit(user.Id, user.Username, ip, "login.fail", $"user:{user.Id}:{user.Username}", user.Disabled ? "disabled" : "bad password");
            return (LoginOutcome.BadCredentials, null);
        }
        return (user.TotpEnabled ? LoginOutcome.NeedTotp : LoginOutcome.Ok, user);
    }

    public bool CheckTotp(User user, string? code, string ip)
    {
        if (user.TotpSecret is { } s && Totp.Verify(s, code, DateTimeOffset.UtcNow)) return true;
        store.RecordLoginFailure(user.Id, MaxFailures, LockFor);
        store.Audit(user.Id, user.Username, ip, "login.fail", $"user:{user.Id}:{user.Username}", "bad TOTP code");
        return false;
    }

    public void Succeeded(User user, string ip)
    {
        store.RecordLoginSuccess(user.Id);
        store.Audit(user.Id, user.Username, ip, "login", $"user:{user.Id}:{user.Username}");
    }

    private static string Trunc(string? s) => s is null ? "" : s.Length > 40 ? s[..40] : s;
}
