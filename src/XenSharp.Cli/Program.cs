using XenSharp.Api;
using XenSharp.Cli;

// xl: the command-line front end. It holds no logic of its own: every verb is a call to xld.
return await XlCommands.RunAsync(args, Console.Out, Console.Error);
