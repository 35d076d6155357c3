using XenSharp.Panel;
using XenSharp.Panel.Data;
using XenSharp.Panel.Security;
using XenSharp.Panel.Services;

// Commands besides serving: create-admin USER (password on stdin), create-token USER NAME [read|write|admin], backup FILE, migrate.
var command = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "serve";
if (command == "serve") { await PanelApp.Build(args).RunAsync(); return 0; }

var rest = args.Skip(1).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
var config = new ConfigurationBuilder().SetBasePath(AppContext.BaseDirectory).AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables().AddCommandLine(args.Skip(1).Where(a => a.StartsWith("--", StringComparison.Ordinal)).ToArray()).Build();
var db = new Db(config.GetConnectionString("Panel") ?? "Data Source=panel.db");
db.Migrate();
var store = new Store(db);
switch (command)
{
    case "migrate":
        Console.WriteLine($"{db.Dialect.Name} schema at version {Db.Migrations.Length}");
        return 0;
    case "backup" when rest.Length == 1:
        try { db.Backup(rest[0]); }
        catch (InvalidOperationException e) { Console.Error.WriteLine(e.Message); return 1; }
        Console.WriteLine($"backed up to {rest[0]}");
        return 0;
    case "create-admin" when rest.Length == 1:
    {
        var password = Console.IsInputRedirected ? Console.In.ReadLine() : ReadHidden("password: ");
        try
        {
            var id = new AdminService(store, null!).CreateUser(null, rest[0], password, Roles.Admin, "");
            Console.WriteLine($"admin {rest[0]} created (id {id})");
            return 0;
        }
        catch (PanelProblem e) { Console.Error.WriteLine($"create-admin: {e.Message}"); return 1; }
    }
    case "create-token" when rest.Length is 2 or 3:
    {
        var user = store.FindUser(rest[0]);
        var scope = rest.Length == 3 ? rest[2] : "write";
        if (user is null || !ApiTokens.Scopes.Contains(scope)) { Console.Error.WriteLine("create-token: no such user or bad scope (read|write|admin)"); return 1; }
        var (secret, hash) = ApiTokens.NewSecret();
        var id = store.CreateApiToken(user.Id, rest[1], hash, scope);
        store.Audit(null, "cli", "local", "token.create", $"user:{user.Id}:{user.Username}", $"name={rest[1]} scope={scope}");
        Console.WriteLine(ApiTokens.Format(id, secret));
        return 0;
    }
    default:
        Console.Error.WriteLine("usage: XenSharp.Panel [serve] [--urls URL] | create-admin USER | create-token USER NAME [SCOPE] | backup FILE | migrate");
        return 2;
}

static string ReadHidden(string prompt)
{
    Console.Write(prompt);
    var sb = new System.Text.StringBuilder();
    for (var k = Console.ReadKey(true); k.Key != ConsoleKey.Enter; k = Console.ReadKey(true))
        if (k.Key == ConsoleKey.Backspace) { if (sb.Length > 0) sb.Length--; } else sb.Append(k.KeyChar);
    Console.WriteLine();
    return sb.ToString();
}
