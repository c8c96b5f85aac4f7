using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using PrefPipe.Host.Pipelines;
using PrefPipe.Ingest;
using PrefPipe.Ranking;
using PrefPipe.Splitter;
using PrefPipe.Trainer;

namespace PrefPipe.Host.Service;

/// <summary>Builds the generic host behind <c>prefpipe serve</c>: triggers from the pipeline file, one background service each.</summary>
internal static class ServeHost
{
    /// <summary>
    /// Opens stores and queues (failing fast with the key at fault) and registers the services and the stages' options;
    /// the options are checked when the host starts (<c>ValidateOnStart</c>), so a bad one stops it before any trigger.
    /// </summary>
    /// <exception cref="ArgumentException">The triggers cannot be served; the message names the key.</exception>
    public static IHost Build(ServeSettings settings, Action<ILoggingBuilder>? logging = null)
    {
        var d = settings.Pipeline.Definition;
        var triggers = d.Triggers;
        if (triggers.Schedule is null && triggers.Blob is null)
            throw new ArgumentException($"{settings.Pipeline.File}: triggers: nothing to serve; set triggers.schedule (cron) and/or triggers.blob (container/prefix or location).");
        var runStore = RunCommands.OpenStore(settings.Pipeline.Resolve(d.Storage));
        bool wantBlob = settings.Trigger != "schedule", wantSchedule = settings.Trigger != "blob";
        if (settings.Trigger == "schedule" && triggers.Schedule is null)
            throw new ArgumentException($"{settings.Pipeline.File}: --trigger schedule but triggers.schedule is not set.");
        if (settings.Trigger == "blob" && triggers.Blob is null)
            throw new ArgumentException($"{settings.Pipeline.File}: --trigger blob but triggers.blob is not set.");
        var blobs = wantBlob && triggers.Blob is { } b ? BlobTriggerSource.Open(b, settings.Pipeline) : null;
        var queue = wantBlob && triggers.Blob is { Queue: { Length: > 0 } } q ? QueueSource.Open(q) : null;
        // --once takes a due occurrence only when asked to (or when there is no blob trigger): an event-driven job must
        // not also start the daily run that the cron job starts.
        bool scheduleHere = wantSchedule && triggers.Schedule is not null && (!settings.Once || settings.Trigger == "schedule" || blobs is null);
        var schedule = scheduleHere ? new ScheduleTrigger(triggers, d.Name) : null;

        // With --health-port, a Kestrel listener answers the probes beside the trigger loops; without it, the plain generic host.
        // Both builders start empty: the stages' options come from the pipeline file only, never from the environment.
        WebApplicationBuilder? web = settings.HealthPort is null ? null : WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [] });
        IHostApplicationBuilder builder = (IHostApplicationBuilder?)web ?? Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, Args = [] });
        builder.Logging.ClearProviders();
        if (logging is not null) logging(builder.Logging);
        else if (settings.JsonLogs) builder.Logging.AddJsonConsole(o => { o.TimestampFormat = "O"; o.UseUtcTimestamp = true; });
        else builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ "; o.UseUtcTimestamp = true; o.ColorBehavior = LoggerColorBehavior.Disabled; });
        // Log records also go to the OpenTelemetry exporters the environment configures (none by default).
        PrefPipe.Host.Telemetry.PipelineTelemetry.AddLogging(builder.Logging, new ConfigurationBuilder().AddEnvironmentVariables().Build());
        RedactingLoggerProvider.Wrap(builder.Logging); // no secret in a log line, whatever an SDK puts in its errors
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Services.Configure<HostOptions>(o =>
        {
            o.ShutdownTimeout = settings.ShutdownTimeout;
            // A failing trigger service is logged and the host stops; the exit code comes from ServiceState.
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        // Each run reloads the pipeline file; these are the options it was started with.
        builder.Configuration.AddInMemoryCollection(PipelineConfiguration.Stages(d));
        builder.Services.AddIngestStage(builder.Configuration.GetSection(nameof(PipelineDefinition.Ingest)));
        builder.Services.AddRankingStage(builder.Configuration.GetSection(nameof(PipelineDefinition.Ranking)));
        builder.Services.AddSplitterStage(builder.Configuration.GetSection(nameof(PipelineDefinition.Split)));
        builder.Services.AddTrainingStages(builder.Configuration.GetSection(nameof(PipelineDefinition.Training)));
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(new ServiceState());
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<IArtifactStore>(runStore);
        builder.Services.AddSingleton<RunLauncher>();
        builder.Services.AddSingleton(sp => new TriggerHandler(settings, sp.GetRequiredService<RunLauncher>(),
            sp.GetRequiredService<ILogger<TriggerHandler>>(), blobs, queue, schedule));
        if (settings.Once)
        {
            builder.Services.AddHostedService<OnceService>();
        }
        else
        {
            builder.Services.AddHostedService<RecoveryService>();
            if (schedule is not null) builder.Services.AddHostedService<ScheduleService>();
            if (blobs is not null) builder.Services.AddHostedService<BlobPollService>();
            if (queue is not null) builder.Services.AddHostedService<QueueService>();
        }
        if (web is null) return ((HostApplicationBuilder)builder).Build();
        return BuildWithHealth(web, settings.HealthPort!.Value);
    }

    /// <summary>Liveness and readiness paths (Kubernetes and Container Apps probes).</summary>
    public const string LivePath = "/healthz/live", ReadyPath = "/healthz/ready";

    /// <summary>
    /// The host with ASP.NET Core health checks on <paramref name="port"/> (0: any free port): <see cref="LivePath"/> reports the
    /// trigger loops (a stopped loop: restart), <see cref="ReadyPath"/> the trigger loops and the run store (unreachable: send no
    /// work). 200 when healthy, 503 otherwise, with a JSON body per check.
    /// </summary>
    private static WebApplication BuildWithHealth(WebApplicationBuilder web, int port)
    {
        web.WebHost.UseKestrelCore().ConfigureKestrel(o => o.ListenAnyIP(port));
        web.Services.AddRoutingCore();
        web.Services.AddHealthChecks()
            .AddCheck<TriggerLoopsHealthCheck>("trigger_loops", tags: ["live", "ready"])
            .AddCheck<StorageHealthCheck>("storage", tags: ["ready"], timeout: TimeSpan.FromSeconds(10));
        var app = web.Build();
        app.MapHealthChecks(LivePath, new HealthCheckOptions { Predicate = c => c.Tags.Contains("live"), ResponseWriter = WriteHealthAsync });
        app.MapHealthChecks(ReadyPath, new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = WriteHealthAsync });
        return app;
    }

    private static async Task WriteHealthAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        json.WriteString("status", report.Status.ToString());
        json.WriteStartObject("checks");
        foreach (var (name, entry) in report.Entries)
        {
            json.WriteStartObject(name);
            json.WriteString("status", entry.Status.ToString());
            json.WriteString("description", entry.Description);
            foreach (var (key, value) in entry.Data) json.WriteString(key, value?.ToString());
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
