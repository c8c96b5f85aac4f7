using System.Diagnostics;
using System.Diagnostics.Metrics;
using Azure.Monitor.OpenTelemetry.Exporter;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Telemetry;

/// <summary>
/// prefpipe's traces and metrics (<see cref="ActivitySource"/> and <see cref="Meter"/> named <c>PrefPipe</c>): a span per
/// run and per stage (its rows, status and key as attributes), and counters of rows in, out and rejected, judge calls,
/// stage seconds and training tokens per second. Attributes carry ids, names and counts only; error messages are redacted
/// (<see cref="Artifacts.Storage.Secrets.Redact"/>); no storage location, path or credential is ever an attribute.
/// </summary>
internal static class PipelineTelemetry
{
    public const string Name = "PrefPipe";

    public static readonly ActivitySource Source = new(Name, CodeVersion.Current);

    public static readonly Meter Meter = new(Name, CodeVersion.Current);

    public static readonly Counter<long> RowsIn = Meter.CreateCounter<long>("prefpipe.stage.rows_in", "{row}", "Rows a stage read.");
    public static readonly Counter<long> RowsOut = Meter.CreateCounter<long>("prefpipe.stage.rows_out", "{row}", "Rows a stage wrote.");
    public static readonly Counter<long> RowsRejected = Meter.CreateCounter<long>("prefpipe.stage.rows_rejected", "{row}", "Rows a stage set aside (its rejects).");
    public static readonly Counter<long> JudgeCalls = Meter.CreateCounter<long>("prefpipe.rank.judge_calls", "{call}", "Judge calls the rank stage made.");
    public static readonly Histogram<double> StageDuration = Meter.CreateHistogram<double>("prefpipe.stage.duration", "s", "Wall time of a stage attempt.");
    public static readonly Histogram<double> TokensPerSecond = Meter.CreateHistogram<double>("prefpipe.train.tokens_per_second", "{token}/s", "Training throughput at the last logged step.");

    /// <summary>Records a finished stage attempt on its span and in the metrics.</summary>
    public static void StageEnded(Activity? span, StageRecord rec)
    {
        var stage = new KeyValuePair<string, object?>("prefpipe.stage", rec.Name.Name());
        var status = new KeyValuePair<string, object?>("prefpipe.status", rec.Status.Name());
        StageDuration.Record(rec.Seconds, stage, status);
        if (rec.Status == StageStatus.Completed)
        {
            RowsIn.Add(rec.RowsIn, stage);
            RowsOut.Add(rec.RowsOut, stage);
            RowsRejected.Add(rec.RowsRejected, stage);
            if (rec.Summary.TryGetValue("judge_calls", out double calls)) JudgeCalls.Add((long)calls, stage);
            if (rec.Summary.TryGetValue("tokens_per_second", out double tps)) TokensPerSecond.Record(tps, stage);
        }
        if (span is null) return;
        span.SetTag("prefpipe.status", rec.Status.Name());
        span.SetTag("prefpipe.rows_in", rec.RowsIn);
        span.SetTag("prefpipe.rows_out", rec.RowsOut);
        span.SetTag("prefpipe.rows_rejected", rec.RowsRejected);
        if (rec.Error is not null) span.SetStatus(ActivityStatusCode.Error, rec.Error); // already redacted by the runner
    }

    /// <summary>
    /// Starts exporting when configured, from the standard variables in <paramref name="configuration"/> (the environment in
    /// the CLI): the OTLP exporter when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (or a per-signal endpoint) is set, configured by
    /// the <c>OTEL_*</c> variables (protocol, headers, timeout, …); the Azure Monitor exporter when
    /// <c>APPLICATIONINSIGHTS_CONNECTION_STRING</c> is set; nothing otherwise (no listener, no cost).
    /// </summary>
    public static TelemetrySession Start(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var exporters = Exporters.Of(configuration);
        if (exporters is { Otlp: false, AzureMonitor: null }) return new TelemetrySession(null, null);
        var resource = ResourceBuilder.CreateDefault().AddService("prefpipe", serviceVersion: CodeVersion.Current);
        var tracing = Sdk.CreateTracerProviderBuilder()
            .ConfigureServices(s => s.AddSingleton(configuration))
            .SetResourceBuilder(resource)
            .AddSource(Name);
        var metrics = Sdk.CreateMeterProviderBuilder()
            .ConfigureServices(s => s.AddSingleton(configuration))
            .SetResourceBuilder(resource)
            .AddMeter(Name);
        if (exporters.Otlp)
        {
            tracing.AddOtlpExporter();
            metrics.AddOtlpExporter();
        }
        if (exporters.AzureMonitor is { } connection)
        {
            tracing.AddAzureMonitorTraceExporter(o => o.ConnectionString = connection);
            metrics.AddAzureMonitorMetricExporter(o => o.ConnectionString = connection);
        }
        return new TelemetrySession(tracing.Build(), metrics.Build());
    }

    /// <summary>Sends <c>serve</c>'s log records through the configured exporters too (none when neither is configured).</summary>
    public static void AddLogging(ILoggingBuilder logging, IConfiguration configuration)
    {
        var exporters = Exporters.Of(configuration);
        if (exporters is { Otlp: false, AzureMonitor: null }) return;
        logging.Services.AddSingleton(configuration);
        logging.AddOpenTelemetry(o =>
        {
            o.SetResourceBuilder(ResourceBuilder.CreateDefault().AddService("prefpipe", serviceVersion: CodeVersion.Current));
            if (exporters.Otlp) o.AddOtlpExporter();
            if (exporters.AzureMonitor is { } connection) o.AddAzureMonitorLogExporter(a => a.ConnectionString = connection);
        });
    }

    private sealed record Exporters(bool Otlp, string? AzureMonitor)
    {
        private static readonly string[] OtlpEndpoints = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"];

        public static Exporters Of(IConfiguration c) => new(
            OtlpEndpoints.Any(k => !string.IsNullOrWhiteSpace(c[k])),
            string.IsNullOrWhiteSpace(c["APPLICATIONINSIGHTS_CONNECTION_STRING"]) ? null : c["APPLICATIONINSIGHTS_CONNECTION_STRING"]);
    }
}

/// <summary>The exporting providers of one process; disposing flushes what is buffered and stops exporting.</summary>
internal sealed class TelemetrySession(TracerProvider? tracing, MeterProvider? metrics) : IDisposable
{
    /// <summary>Whether anything is exported.</summary>
    public bool Exporting => tracing is not null;

    public void Dispose()
    {
        tracing?.Dispose();
        metrics?.Dispose();
    }
}
