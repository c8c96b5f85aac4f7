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
    public async Task Run_LlmJudge_ReceiverGetsAJudgeBatchSpanPerSixteenPromptsUnderTheRankSpan_AndRetryMetrics()
    {
        const string KeyVariable = "PREFPIPE_TEST_OTEL_JUDGE_KEY";
        const string Secret = "sk-otel-judge-5d1e-secret";
        Environment.SetEnvironmentVariable(KeyVariable, Secret);
        await using var receiver = await OtlpReceiver.StartAsync();
        // The first judge request gets a 503: the retry shows in the metrics.
        await using var judge = new PrefPipe.Tests.Remote.OpenAIReferenceServer { Faults = r => r.Number == 1 ? new PrefPipe.Tests.Remote.OpenAIReferenceServer.Fault(503) : null };
        string storage = Directory.CreateTempSubdirectory("prefpipe-otel-judge-").FullName;
        string file = PipelineRunnerTests.Pipeline(storage);
        string runId = $"otelj-{Guid.NewGuid():N}"[..16];

        using (PipelineTelemetry.Start(Settings(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.Endpoint), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))))
        {
            int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(["run", file, "--run-id", runId, "--until", "rank", .. PipelineRunnerTests.Small,
                "--set", "ranking.judge=llm", "--set", $"ranking.llm.endpoint={judge.V1}", "--set", "ranking.llm.model=policy",
                "--set", $"ranking.llm.api_key_variable={KeyVariable}", "--set", "ranking.llm.retry_base_delay=10ms"], new TestConsole().Width(250));
            Assert.Equal(0, exit);
        }

        var rank = Assert.Single(receiver.Spans, s => s.Name == "stage rank" && s.Attributes.GetValueOrDefault("prefpipe.run_id") as string == runId);
        var batches = receiver.Spans.Where(s => s.Name == "judge batch" && s.TraceId == rank.TraceId).OrderBy(s => (long)s.Attributes["prefpipe.batch.index"]).ToList();
        Assert.Equal(15, batches.Count); // 240 prompts, 16 per batch
        Assert.All(batches, b => Assert.Equal(rank.SpanId, b.ParentSpanId));
        Assert.Equal(Enumerable.Range(0, 15).Select(i => (long)i), batches.Select(b => (long)b.Attributes["prefpipe.batch.index"]));
        Assert.All(batches, b => Assert.Equal(("llm", "policy", 16L), ((string)b.Attributes["prefpipe.judge.kind"], (string)b.Attributes["prefpipe.judge.model"], (long)b.Attributes["prefpipe.batch.prompts"])));
        // The batches' comparisons add up to the judge calls run.json records: one HTTP call each (the retried one counted once).
        var record = (await RunRecord.LoadAsync(new PrefPipe.Artifacts.Storage.LocalArtifactStore(storage), runId, CancellationToken.None))!;
        double calls = record.Stages.Single(r => r.Name == PipelineStage.Rank).Summary["judge_calls"];
        Assert.InRange(calls, 2, 480); // 2 candidates a prompt: asked in both orders (the worst pass reuses them)
        Assert.Equal(calls, batches.Sum(b => (long)b.Attributes["prefpipe.batch.comparisons"]));
        Assert.Equal(calls + 1, judge.Requests.Count);
        // Never the endpoint, its port or the key.
        Assert.All(batches.SelectMany(b => b.Attributes.Values).OfType<string>(), v =>
        {
            Assert.DoesNotContain(Secret, v, StringComparison.Ordinal);
            Assert.DoesNotContain("127.0.0.1", v, StringComparison.Ordinal);
            Assert.DoesNotContain(judge.V1.AbsolutePath, v, StringComparison.Ordinal);
        });
        Assert.Contains("prefpipe.judge.calls", receiver.MetricNames);
        Assert.Contains("prefpipe.remote.requests", receiver.MetricNames);
        Assert.Contains("prefpipe.remote.retries", receiver.MetricNames);
    }

    [Fact]
    public async Task Worker_RankShard_ReceiverGetsTheShardSpanWithItsJudgeBatches()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        string root = Directory.CreateTempSubdirectory("prefpipe-otel-shard-").FullName;
        string storage = Path.Combine(root, "runs");
        string file = PrefPipe.Host.Tests.Workers.WorkerTestPipeline.Write(root, storage, prompts: 40);
        string runId = $"otels-{Guid.NewGuid():N}"[..16];
        Assert.Equal(0, (await PrefPipe.Host.Tests.Workers.WorkerTestPipeline.Cli("run", file, "--run-id", runId, "--until", "ingest")).Exit);

        using (PipelineTelemetry.Start(Settings(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.Endpoint), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))))
        {
            var (exit, output) = await PrefPipe.Host.Tests.Workers.WorkerTestPipeline.Cli("worker", "--run", runId, "--stage", "rank", "--shard", "0/2", "--storage", storage);
            Assert.True(exit == 0, output);
        }

        var shard = Assert.Single(receiver.Spans, s => s.Name == "shard" && s.Attributes.GetValueOrDefault("prefpipe.run_id") as string == runId);
        Assert.Equal(("rank", "0/2"), ((string)shard.Attributes["prefpipe.stage"], (string)shard.Attributes["prefpipe.shard"]));
        var batches = receiver.Spans.Where(s => s.Name == "judge batch" && s.ParentSpanId == shard.SpanId).ToList();
        // The shard's prompts (those hashing to shard 0 of 2), 16 per batch; the demo's reward judge.
        var candidates = await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.CandidateRow>(
            new PrefPipe.Artifacts.Storage.LocalArtifactStore(storage), $"{runId}/ingest/candidates.parquet");
        int mine = candidates.Select(c => c.PromptId).Distinct().Count(id => new PrefPipe.Artifacts.Sharding.Shard(0, 2).Contains(id));
        Assert.InRange(mine, 1, 39);
        Assert.Equal((mine + 15) / 16, batches.Count);
        Assert.Equal(mine, batches.Sum(b => (long)b.Attributes["prefpipe.batch.prompts"]));
        Assert.All(batches, b => Assert.Equal("reward", b.Attributes["prefpipe.judge.kind"]));
        Assert.All(batches, b => Assert.False(b.Attributes.ContainsKey("prefpipe.judge.model")));
    }

    [Fact]
    public void Start_NeitherOtlpNorApplicationInsightsConfigured_ExportsNothing()
    {
        using var session = PipelineTelemetry.Start(Settings(("OTEL_SERVICE_NAME", "x")));

        Assert.False(session.Exporting);
    }
}
