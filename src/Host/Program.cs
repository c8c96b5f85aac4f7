using PrefPipe.Host.Commands;
using Spectre.Console;

// prefpipe: the CLI and hosted service. Exit codes: 0 success, 1 a check or stage failed, 2 bad usage or input.
// Piped or logged output has no terminal width: use a wide one so tables are not folded into unreadable columns.
if (Console.IsOutputRedirected) AnsiConsole.Console.Profile.Width = 160;
return await Cli.InvokeAsync(args).ConfigureAwait(false);
