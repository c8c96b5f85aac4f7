using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;
using PrefPipe.Tests.Remote;
using static PrefPipe.Host.Tests.Workers.WorkerTestPipeline;

namespace PrefPipe.Host.Tests.Workers;

/// <summary>Ingest shard workers generating through an OpenAI-compatible server, a failing prompt included.</summary>
public sealed class ExternalGeneratorWorkerTests
{
    static ExternalGeneratorWorkerTests() => Environment.SetEnvironmentVariable("PREFPIPE_GENERATOR_API_KEY", Stages.ExternalGeneratorPipelineTests.SecretKey);

    [Fact]
    public async Task Worker_IngestShardsWithExternalGenerator_MergeToWhatTheUnshardedStageWrites()
    {
        string failing = JsonDocument.Parse(File.ReadLines(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "prompts.jsonl")).ElementAt(6))
            .RootElement.GetProperty("prompt").GetString()!;
        await using var server = new OpenAIReferenceServer
        {
            Faults = r => r.PromptText == failing ? new OpenAIReferenceServer.Fault(503, Message: "overloaded") : null,
        };
        string root = Directory.CreateTempSubdirectory("prefpipe-extworkers-").FullName;
        string storage = Path.Combine(root, "runs");
        string file = Write(root, storage);
        File.WriteAllText(file, File.ReadAllText(file).Replace("  seed: 1234\n", $"""
              seed: 1234
              generator:
                type: openai
                base_url: {server.V1}
                model: policy
                max_retries: 1
                retry_base_delay: 10ms

            """, StringComparison.Ordinal));

        var (refExit, refOutput) = await Cli("run", file, "--run-id", "unsharded", "--until", "ingest");
        Assert.True(refExit == 0, refOutput);
        foreach (int i in new[] { 1, 3, 0, 2 })
        {
            var (exit, output) = await Cli("worker", "--run", "sharded", "--stage", "ingest", "--shard", $"{i}/4", "--storage", storage, "--pipeline", file, "--json");
            Assert.True(exit == 0, output);
        }

        var store = new LocalArtifactStore(storage);
        foreach (string name in new[] { "prompts", "candidates", "rejects" })
            Assert.Equal(await Sha256Async(store, $"unsharded/ingest/{name}.parquet"), await Sha256Async(store, $"sharded/ingest/{name}.parquet"));
        var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "sharded/ingest/rejects.parquet");
        Assert.Contains(rejects, r => r.Reason.Contains("overloaded", StringComparison.Ordinal) && r.Row == 6);
        var ingest = (await RunRecord.LoadAsync(store, "sharded", default))!.Stage(PipelineStage.Ingest);
        Assert.Equal(StageStatus.Completed, ingest.Status);
        Assert.True(ingest.Balanced);
        Assert.Equal(32, ingest.RowsIn);
        Assert.Equal(rejects.Count, ingest.RowsRejected);
    }
}
