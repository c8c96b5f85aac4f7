using Microsoft.Extensions.Configuration;
using PrefPipe.Host.Commands;
using PrefPipe.Host.Telemetry;
using Spectre.Console;

// prefpipe: the CLI and hosted service. Exit codes (README, "Exit codes"; Cli.ExitCodes): 0 success, 1 a run, stage or check
// failed, 2 bad usage or input, 3 a bug.
// Piped or logged output has no terminal width: use a wide one so tables are not folded into unreadable columns.
if (Console.IsOutputRedirected) AnsiConsole.Console.Profile.Width = 160;
// Traces, metrics and logs go out only when OTEL_EXPORTER_OTLP_ENDPOINT or APPLICATIONINSIGHTS_CONNECTION_STRING says where.
using var telemetry = PipelineTelemetry.Start(new ConfigurationBuilder().AddEnvironmentVariables().Build());
return await Cli.InvokeAsync(args).ConfigureAwait(false);
