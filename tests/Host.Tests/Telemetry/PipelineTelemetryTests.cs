using Microsoft.Extensions.Configuration;
using PrefPipe.Host.Runs;
using PrefPipe.Host.Telemetry;
using PrefPipe.Host.Tests.Runs;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Telemetry;

/// <summary>A run's spans and metrics, exported by the OpenTelemetry SDK over OTLP/HTTP to a receiver in the test.</summary>
public sealed class PipelineTelemetryTests
{
    private static IConfiguration Settings(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    [Fact]
    public async Task Run_OtlpEndpointConfigured_ReceiverGetsTheRunSpanWithAStageSpanPerStage()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        string storage = Directory.CreateTempSubdirectory("prefpipe-otel-").FullName;
        string file = PipelineRunnerTests.Pipeline(storage);
        string runId = $"otel-{Guid.NewGuid():N}"[..16];

        using (var session = PipelineTelemetry.Start(Settings(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.Endpoint), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))))
        {
            Assert.True(session.Exporting);
            int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(["run", file, "--run-id", runId, "--until", "split", .. PipelineRunnerTests.Small], new TestConsole().Width(250));
            Assert.Equal(0, exit);
        } // disposing flushes the batch exporter

        var spans = receiver.Spans.Where(s => s.Attributes.GetValueOrDefault("prefpipe.run_id") as string == runId).ToList();
        var run = Assert.Single(spans, s => s.Name == "run");
        Assert.Equal("demo", run.Attributes["prefpipe.pipeline"]);
        Assert.Equal("completed", run.Attributes["prefpipe.status"]);
        var stages = spans.Where(s => s.Name.StartsWith("stage ", StringComparison.Ordinal)).ToList();
        Assert.Equal(["stage ingest", "stage rank", "stage split"], stages.Select(s => s.Name).Order(StringComparer.Ordinal));
        Assert.All(stages, s => Assert.Equal((run.TraceId, run.SpanId), (s.TraceId, s.ParentSpanId)));
        // The counts on the spans are run.json's.
        var record = (await RunRecord.LoadAsync(new PrefPipe.Artifacts.Storage.LocalArtifactStore(storage), runId, CancellationToken.None))!;
        foreach (var s in stages)
        {
            var rec = record.Stages.Single(r => "stage " + r.Name.Name() == s.Name);
            Assert.Equal((rec.RowsIn, rec.RowsOut, rec.RowsRejected, "completed"),
                ((long)s.Attributes["prefpipe.rows_in"], (long)s.Attributes["prefpipe.rows_out"], (long)s.Attributes["prefpipe.rows_rejected"], (string)s.Attributes["prefpipe.status"]));
        }
        Assert.Equal(240L, stages.Single(s => s.Name == "stage ingest").Attributes["prefpipe.rows_in"]);
        // No path, location or credential among the attributes: ids, names, counts and keys only.
        Assert.All(spans.SelectMany(s => s.Attributes.Values).OfType<string>(), v => Assert.DoesNotContain(storage, v, StringComparison.Ordinal));
        Assert.Contains("prefpipe.stage.rows_in", receiver.MetricNames);
        Assert.Contains("prefpipe.rank.judge_calls", receiver.MetricNames);
    }

    [Fact]
    public void Start_NeitherOtlpNorApplicationInsightsConfigured_ExportsNothing()
    {
        using var session = PipelineTelemetry.Start(Settings(("OTEL_SERVICE_NAME", "x")));

        Assert.False(session.Exporting);
    }
}
