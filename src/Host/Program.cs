using PrefPipe.Host.Commands;
using Spectre.Console;

// prefpipe: the CLI and hosted service. Exit codes (README, "Exit codes"; Cli.ExitCodes): 0 success, 1 a run, stage or check
// failed, 2 bad usage or input, 3 a bug.
// Piped or logged output has no terminal width: use a wide one so tables are not folded into unreadable columns.
if (Console.IsOutputRedirected) AnsiConsole.Console.Profile.Width = 160;
return await Cli.InvokeAsync(args).ConfigureAwait(false);
