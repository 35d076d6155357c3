using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Antiforgery;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;

namespace XenSharp.Panel.Ui;

/// <summary>Small HTML building blocks. Every dynamic value goes through <see cref="E"/>; there is no inline script anywhere.</summary>
public static class Html
{
    public static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
    public static string E(long v) => v.ToString(CultureInfo.InvariantCulture);

    public static string Af(HttpContext ctx)
    {
        var t = ctx.RequestServices.GetRequiredService<IAntiforgery>().GetAndStoreTokens(ctx);
        return $"<input type=\"hidden\" name=\"{E(t.FormFieldName)}\" value=\"{E(t.RequestToken)}\">";
    }

    /// <summary>A POST form carrying the antiforgery token; <paramref name="confirm"/> asks the browser before submitting.</summary>
    public static string Form(HttpContext ctx, string action, string inner, string cls = "", string? confirm = null) =>
        $"<form method=\"post\" action=\"{E(action)}\" class=\"{cls}\"{(confirm is null ? "" : $" data-confirm=\"{E(confirm)}\"")}>{Af(ctx)}{inner}</form>";

    public static string Button(string label, string cls = "", string? id = null) =>
        $"<button type=\"submit\" class=\"btn {cls}\"{(id is null ? "" : $" id=\"{id}\"")}>{E(label)}</button>";

    public static string Input(string name, string label, string type = "text", string? value = null, bool required = true, string extra = "") =>
        $"<label>{E(label)}<input type=\"{type}\" name=\"{name}\" id=\"f-{name}\"{(value is null ? "" : $" value=\"{E(value)}\"")}{(required ? " required" : "")} {extra}></label>";

    public static string Select(string name, string label, IEnumerable<(string Value, string Text)> options, string? selected = null) =>
        $"<label>{E(label)}<select name=\"{name}\" id=\"f-{name}\">" +
        string.Concat(options.Select(o => $"<option value=\"{E(o.Value)}\"{(o.Value == selected ? " selected" : "")}>{E(o.Text)}</option>")) + "</select></label>";

    public static string Check(string name, string label, bool on) =>
        $"<label class=\"check\"><input type=\"checkbox\" name=\"{name}\" value=\"1\"{(on ? " checked" : "")}> {E(label)}</label>";

    public static string Mib(long mib) => mib >= 1024 ? $"{mib / 1024.0:0.#} GiB" : $"{mib} MiB";
    public static string Ago(DateTime t) => t.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);

    public static string Badge(string state) =>
        $"<span class=\"badge st-{E(state.Replace(' ', '-'))}\">{E(state)}</span>";

    public static void Flash(HttpContext ctx, string message, bool error = false) =>
        ctx.Response.Cookies.Append("xsp.flash", (error ? "!" : "") + Uri.EscapeDataString(message),
            new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = ctx.Request.IsHttps, Path = "/" });

    public static IResult Page(HttpContext ctx, string title, string body, User? user = null, int status = 200)
    {
        var flash = "";
        if (ctx.Request.Cookies.TryGetValue("xsp.flash", out var f) && f.Length > 0)
        {
            var err = f.StartsWith('!');
            flash = $"<div class=\"flash {(err ? "err" : "ok")}\" role=\"status\">{E(Uri.UnescapeDataString(err ? f[1..] : f))}</div>";
            ctx.Response.Cookies.Delete("xsp.flash");
        }
        var sb = new StringBuilder(8192);
        sb.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
        sb.Append("<title>").Append(E(title)).Append(" · XenSharp Panel</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/lib/xterm/xterm.css\"><link rel=\"stylesheet\" href=\"/css/site.css\"></head><body>");
        sb.Append("<header class=\"top\"><a class=\"brand\" href=\"/\">XenSharp<span>Panel</span></a>");
        if (user is not null && !CurrentUser.EnrollPending(ctx))
        {
            sb.Append("<nav><a href=\"/\">Dashboard</a><a href=\"/vps\">Servers</a>");
            if (user.IsAdmin)
                sb.Append("<a href=\"/admin/hosts\">Hosts</a><a href=\"/admin/plans\">Plans</a><a href=\"/admin/templates\">Templates</a><a href=\"/admin/pools\">IP pools</a><a href=\"/admin/users\">Users</a><a href=\"/admin/audit\">Audit</a><a href=\"/admin/settings\">Settings</a>");
            sb.Append("</nav>");
        }
        if (user is not null)
            sb.Append("<div class=\"who\"><a href=\"/account\">").Append(E(user.Username)).Append("</a> <small>").Append(E(user.Role)).Append("</small>")
              .Append(Form(ctx, "/logout", Button("Log out", "link"), "inline")).Append("</div>");
        sb.Append("</header><main>").Append(flash).Append("<h1>").Append(E(title)).Append("</h1>").Append(body).Append("</main>");
        sb.Append("<script src=\"/lib/xterm/xterm.js\" defer></script><script src=\"/js/app.js\" defer></script></body></html>");
        return Results.Content(sb.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    public static string Table(IEnumerable<string> heads, IEnumerable<IEnumerable<string>> rows, string cls = "") =>
        $"<table class=\"{cls}\"><thead><tr>{string.Concat(heads.Select(h => $"<th>{h}</th>"))}</tr></thead><tbody>" +
        string.Concat(rows.Select(r => "<tr>" + string.Concat(r.Select(c => $"<td>{c}</td>")) + "</tr>")) + "</tbody></table>";
}
