using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Service;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe serve --config FILE [--once] [--set k=v]</c>: the hosted service (scheduled and blob-triggered runs).</summary>
internal static class ServeCommand
{
    public static Command Create(IAnsiConsole? console)
    {
        _ = console; // The service logs through Microsoft.Extensions.Logging, not the console renderer.
        var config = new Option<string>("--config") { Description = "Pipeline file with a triggers section (schedule and/or blob).", Required = true };
        var once = new Option<bool>("--once") { Description = "Handle one queue message, new blob or due schedule, then exit (KEDA ScaledJob, event-driven jobs)." };
        var set = new Option<string[]>("--set") { Description = "Override a value for every run: key.path=value (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var json = new Option<bool>("--json-logs") { Description = "Write logs as JSON lines." };
        var trigger = new Option<string>("--trigger") { Description = "Which triggers to serve: all, schedule or blob (--once takes a due schedule only with schedule, or when there is no blob trigger).", DefaultValueFactory = _ => "all" };
        trigger.AcceptOnlyFromAmong("all", "schedule", "blob");
        var healthPort = new Option<int?>("--health-port")
        {
            Description = "Answer liveness (/healthz/live: trigger loops running) and readiness (/healthz/ready: also the run store reachable) over HTTP on this port " +
                "(default: $PREFPIPE_HEALTH_PORT; none when unset).",
            DefaultValueFactory = _ => int.TryParse(Environment.GetEnvironmentVariable("PREFPIPE_HEALTH_PORT"), System.Globalization.CultureInfo.InvariantCulture, out int p) ? p : null,
        };
        healthPort.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is { } p && (p < 0 || p > 65535)) r.AddError($"--health-port {p}: expected a TCP port, 0–65535");
        });
        var command = new Command("serve", "Run the pipeline as a service: on its cron schedule and for each new prompts blob (polled, and from Event Grid queue messages); " +
            "each trigger runs exactly once across restarts and instances.") { config, once, set, json, trigger, healthPort };
        command.SetAction(async (parse, ct) =>
        {
            ServeSettings settings;
            IHost host;
            try
            {
                var overrides = parse.GetValue(set) ?? [];
                var pipeline = PipelineLoader.Load(parse.GetValue(config)!, overrides);
                settings = new ServeSettings(pipeline, overrides, parse.GetValue(once), parse.GetValue(json)) { Trigger = parse.GetValue(trigger)!, HealthPort = parse.GetValue(healthPort) };
                host = ServeHost.Build(settings);
            }
            catch (Exception ex) when (CliErrors.IsExpected(ex))
            {
                return CliErrors.Report("serve", ex);
            }
            // RunAsync disposes the host: take the state first.
            var state = host.Services.GetRequiredService<ServiceState>();
            await host.RunAsync(ct).ConfigureAwait(false);
            return state.ExitCode;
        });
        return command;
    }
}
