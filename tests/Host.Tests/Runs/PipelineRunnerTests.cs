using System.Text.Json;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>The demo pipeline end to end through the CLI, shrunk with --set so it takes seconds.</summary>
public sealed class PipelineRunnerTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    internal static string Pipeline(string storage)
    {
        string yaml = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "pipelines", "demo.yaml"))
            // Relative, as users write them: resume and rerun must resolve them against this folder, not the saved copy's.
            .Replace("../assets/demo", Path.GetRelativePath(storage, Demo), StringComparison.Ordinal)
            .Replace("${PREFPIPE_STORAGE:-../runs}", storage, StringComparison.Ordinal);
        string path = Path.Combine(storage, "demo.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    internal static readonly string[] Small =
    [
        "--set", "ingest.candidates_per_prompt=2", "--set", "ingest.max_new_tokens=24",
        "--set", "training.dpo.num_train_epochs=1", "--set", "training.ppo.max_steps=2", "--set", "training.ppo.response_length=24",
        "--set", "evaluation.max_new_tokens=24", "--set", "evaluation.samples_per_prompt=1",
    ];

    private static async Task<(int Exit, string Output)> Cli(params string[] args)
    {
        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(args, console);
        return (exit, console.Output);
    }

    [Fact]
    public async Task Run_ThenRerunAndStatus_CachesUnchangedStagesAndReportsTheEvaluation()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-run-").FullName;
        string file = Pipeline(storage);

        var (exit, output) = await Cli(["run", file, "--run-id", "t1", .. Small]);
        Assert.True(exit == 0, output);
        Assert.Contains("win rate of the final policy over the start", output, StringComparison.Ordinal);

        var (again, second) = await Cli(["run", file, "--run-id", "t1", .. Small]);
        Assert.Equal(0, again);
        foreach (string stage in new[] { "ingest", "rank", "split", "dpo", "ppo", "evaluate" })
            Assert.Contains($"{stage}: unchanged since it completed (cached)", second, StringComparison.Ordinal);

        var (statusExit, json) = await Cli("status", "--run", "t1", "--storage", storage, "--json");
        Assert.Equal(0, statusExit);
        using var doc = JsonDocument.Parse(json);
        Assert.InRange(doc.RootElement.GetProperty("win_rate").GetDouble(), 0, 1);
        Assert.True(doc.RootElement.TryGetProperty("mean_reward_start", out _));
        var stages = doc.RootElement.GetProperty("run").GetProperty("stages").EnumerateArray().ToList();
        Assert.All(stages, s => Assert.Equal("completed", s.GetProperty("status").GetString()));
        Assert.All(stages, s => Assert.True(s.GetProperty("balanced").GetBoolean()));
        Assert.Equal(240, stages[0].GetProperty("rows_in").GetInt64());
        // Every stage reports its time inside model compute: some for the model stages, none for split, never more than the stage took.
        Assert.Contains("model compute", output, StringComparison.Ordinal);
        foreach (var s in stages)
        {
            double model = s.GetProperty("summary").GetProperty("model_seconds").GetDouble(), wall = s.GetProperty("seconds").GetDouble();
            string name = s.GetProperty("name").GetString()!;
            if (name == "split") Assert.Equal(0, model);
            else Assert.True(model > 0 && model <= wall, $"{name}: model {model} s of {wall} s");
        }

        var record = (await PrefPipe.Host.Runs.RunRecord.LoadAsync(new PrefPipe.Artifacts.Storage.LocalArtifactStore(storage), "t1", CancellationToken.None))!;
        Assert.Equal(6, record.Stages.Count);
        Assert.All(record.Stages, s => Assert.Equal(StageStatus.Completed, s.Status));
        Assert.All(record.Stages, s => Assert.True(s.Balanced && s.Method!.Length > 0, s.Name.Name()));
        Assert.All(record.Stages, s => Assert.NotEmpty(s.Inputs));
        // Lineage: what a stage read is, byte for byte, what the stage before it wrote.
        Assert.Equal(record.Stages[0].Outputs.Single(o => o.Name == "candidates"), record.Stages[1].Inputs.Single());
        Assert.False(File.Exists(Path.Combine(storage, "t1", "manifest.json"))); // one record, one file

        var (compareExit, table) = await Cli("compare", "--run", "t1", "--storage", storage, "--json");
        Assert.True(compareExit == 0, table);
        using var row = JsonDocument.Parse(table);
        Assert.Equal("mpo", row.RootElement.GetProperty("plan").GetString());
        Assert.Equal(doc.RootElement.GetProperty("win_rate").GetDouble(), row.RootElement.GetProperty("win_rate").GetDouble());
    }

    [Fact]
    public async Task Rerun_OneStage_RunsOnlyThatStage()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-rerun-").FullName;
        string file = Pipeline(storage);
        Assert.Equal(0, (await Cli(["run", file, "--run-id", "t2", "--until", "split", .. Small])).Exit);

        var (exit, output) = await Cli("rerun", "--run", "t2", "--stage", "rank", "--storage", storage);

        Assert.Equal(0, exit);
        Assert.Contains("rank: running", output, StringComparison.Ordinal);
        Assert.DoesNotContain("ingest: running", output, StringComparison.Ordinal);
        Assert.DoesNotContain("split: running", output, StringComparison.Ordinal);
    }

    private static async Task<PrefPipe.Host.Runs.RunRecord> Record(string storage, string runId) =>
        (await PrefPipe.Host.Runs.RunRecord.LoadAsync(new PrefPipe.Artifacts.Storage.LocalArtifactStore(storage), runId, CancellationToken.None))!;

    private static string ModelSha(PrefPipe.Host.Runs.RunRecord run, PipelineStage stage) => run.Stage(stage).Outputs.Single(o => o.Name == "model").Sha256;

    [Fact]
    public async Task Run_ChangedConfigOnExistingRun_RetrainsExactlyAsAFreshRunWould()
    {
        // Reproduction: a second run of r1 with another split quantile resumed the old checkpoint (global_step past
        // max_steps), kept the model's SHA-256 and the cached evaluation. Now every stage downstream of the change runs
        // again from nothing, and ends where a fresh run of the changed file ends.
        string storage = Directory.CreateTempSubdirectory("prefpipe-changed-").FullName;
        string file = Pipeline(storage);
        Assert.Equal(0, (await Cli(["run", file, "--run-id", "r1", .. Small])).Exit);
        var before = await Record(storage, "r1");

        var (exit, output) = await Cli(["run", file, "--run-id", "r1", .. Small, "--set", "split.quantile=0.3"]);
        var (freshExit, _) = await Cli(["run", file, "--run-id", "fresh", .. Small, "--set", "split.quantile=0.3"]);

        Assert.True(exit == 0, output);
        Assert.Equal(0, freshExit);
        Assert.Contains("ingest: unchanged since it completed (cached)", output, StringComparison.Ordinal);
        foreach (string stage in new[] { "split", "dpo", "ppo", "evaluate" })
            Assert.Contains($"{stage}: running", output, StringComparison.Ordinal);
        var after = await Record(storage, "r1");
        var fresh = await Record(storage, "fresh");
        Assert.NotEqual(ModelSha(before, PipelineStage.Dpo), ModelSha(after, PipelineStage.Dpo));
        Assert.NotEqual(ModelSha(before, PipelineStage.Ppo), ModelSha(after, PipelineStage.Ppo));
        foreach (var stage in new[] { PipelineStage.Dpo, PipelineStage.Ppo })
        {
            Assert.Equal(ModelSha(fresh, stage), ModelSha(after, stage));
            Assert.Equal(fresh.Stage(stage).Summary["steps"], after.Stage(stage).Summary["steps"]);
        }
        Assert.Equal(fresh.Stage(PipelineStage.Evaluate).Summary["win_rate"], after.Stage(PipelineStage.Evaluate).Summary["win_rate"]);
        // The run's pipeline.yaml is the configuration its outputs were made with.
        Assert.Contains("quantile: 0.3", File.ReadAllText(Path.Combine(storage, "r1", "pipeline.yaml")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rerun_TrainingStages_KeepTheirMetricsAndModels()
    {
        // Reproduction: rerun --stage train (now dpo) resumed the finished checkpoint, trained 0 steps and wrote metrics.parquet empty.
        string storage = Directory.CreateTempSubdirectory("prefpipe-rerun-train-").FullName;
        string file = Pipeline(storage);
        Assert.Equal(0, (await Cli(["run", file, "--run-id", "t3", .. Small])).Exit);
        var store = new PrefPipe.Artifacts.Storage.LocalArtifactStore(storage);
        var metricsBefore = await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.MetricRow>(store, "t3/dpo/metrics.parquet");
        var ppoBefore = await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.MetricRow>(store, "t3/ppo/metrics.parquet");
        var before = await Record(storage, "t3");

        var (exit, output) = await Cli("rerun", "--run", "t3", "--stage", "dpo", "--downstream", "--storage", storage);

        Assert.True(exit == 0, output);
        var after = await Record(storage, "t3");
        Assert.NotEmpty(metricsBefore);
        Assert.Equal(metricsBefore.Count, (await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.MetricRow>(store, "t3/dpo/metrics.parquet")).Count);
        Assert.Equal(ppoBefore.Count, (await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.MetricRow>(store, "t3/ppo/metrics.parquet")).Count);
        Assert.Equal(before.Stage(PipelineStage.Dpo).Summary["steps"], after.Stage(PipelineStage.Dpo).Summary["steps"]);
        // Trained again from the start policy with the same inputs: the same model.
        Assert.Equal(ModelSha(before, PipelineStage.Dpo), ModelSha(after, PipelineStage.Dpo));
        Assert.Equal(ModelSha(before, PipelineStage.Ppo), ModelSha(after, PipelineStage.Ppo));
    }

    [Fact]
    public async Task Run_BadPipelineValue_ExitsTwoBeforeAnyWork()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-bad-").FullName;
        string file = Pipeline(storage);
        await using var error = await StderrCapture.StartAsync();
        var (exit, _) = await Cli("run", file, "--set", "split.quantile=2");
        Assert.Equal(2, exit);
        Assert.Contains("split.quantile (value 2)", error.ToString(), StringComparison.Ordinal);
        Assert.Empty(Directory.GetDirectories(storage));
    }

    [Fact]
    public async Task Resume_RunCancelledMidTraining_ProducesTheArtifactsOfAnUninterruptedRun()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-resume-").FullName;
        string file = Pipeline(storage);
        string[] overrides = [.. Small.Where((_, i) => i % 2 == 1), "training.dpo.num_train_epochs=2"];
        var pipeline = PrefPipe.Host.Pipelines.PipelineLoader.Load(file, overrides);
        // Same run id in two stores: artifacts that name their source (rejects) compare equal too.
        string a = Path.Combine(storage, "a"), b = Path.Combine(storage, "b");
        var straight = await new PrefPipe.Host.Runs.PipelineRunner(pipeline, new PrefPipe.Artifacts.Storage.LocalArtifactStore(a), _ => { })
            .RunAsync("r", new PrefPipe.Host.Runs.RunScope());

        using var cts = new CancellationTokenSource();
        var store = new PrefPipe.Artifacts.Storage.LocalArtifactStore(b);
        var runner = new PrefPipe.Host.Runs.PipelineRunner(pipeline, store, line => { if (line.StartsWith("dpo: running", StringComparison.Ordinal)) cts.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runner.RunAsync("r", new PrefPipe.Host.Runs.RunScope(), cts.Token));
        Assert.Equal(StageStatus.Cancelled, (await PrefPipe.Host.Runs.RunRecord.LoadAsync(store, "r", CancellationToken.None))!.Stage(PipelineStage.Dpo).Status);
        var (exit, output) = await Cli("resume", "--run", "r", "--storage", b);
        Assert.True(exit == 0, output);

        var resumed = await PrefPipe.Host.Runs.RunRecord.LoadAsync(store, "r", CancellationToken.None);
        Assert.Equal(RunStatus.Completed, resumed!.Status);
        foreach (var stage in straight.Stages)
        {
            var other = resumed.Stage(stage.Name);
            Assert.Equal(stage.Status, other.Status);
            Assert.Equal(stage.RowsOut, other.RowsOut);
            // Metrics (tokens/s) and comparisons (judge latency) carry wall-clock figures; every other artifact, the
            // trained models included, must be identical.
            foreach (var artifact in stage.Outputs.Where(a => a.Name is not ("metrics" or "comparisons")))
                Assert.True(artifact.Sha256 == other.Outputs.Single(o => o.Name == artifact.Name).Sha256, $"{stage.Name}/{artifact.Name} differs after resume");
        }
    }

    [Fact]
    public async Task Resume_ProcessKilledMidIngest_ProducesTheArtifactsOfAnUninterruptedRun()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-kill-").FullName;
        string a = Directory.CreateDirectory(Path.Combine(root, "a")).FullName, b = Directory.CreateDirectory(Path.Combine(root, "b")).FullName;
        string fileA = Pipeline(a), fileB = Pipeline(b);
        // Training stays small; ingest keeps its 240 prompts so the kill lands between its part files.
        string[] small = [.. Small.Skip(4)];
        var (exitA, outputA) = await Cli(["run", fileA, "--run-id", "k", .. small]);
        Assert.True(exitA == 0, outputA);

        // SIGKILL: no cancellation, no finally blocks, run.json says "running" and the run lock names a dead process.
        string ingest = Path.Combine(b, "k", "ingest");
        int Parts() => Directory.Exists(ingest) ? Directory.GetDirectories(ingest, "parts-*").Sum(d => Directory.GetFiles(d, "batch-*.parquet").Length) : 0;
        using (var process = HostProcess.Start(["run", fileB, "--run-id", "k", .. small]))
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (Parts() < 2)
            {
                Assert.True(DateTime.UtcNow < deadline && !process.HasExited, "the run did not write two ingest batches in 2 minutes");
                await Task.Delay(10);
            }
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        var store = new PrefPipe.Artifacts.Storage.LocalArtifactStore(b);
        var killed = (await PrefPipe.Host.Runs.RunRecord.LoadAsync(store, "k", CancellationToken.None))!;
        Assert.Equal(StageStatus.Running, killed.Stage(PipelineStage.Ingest).Status);
        Assert.False(File.Exists(Path.Combine(b, "k", "ingest", "candidates.parquet")));
        Assert.True(await store.ExistsAsync(PrefPipe.Host.Runs.RunLock.PathOf("k")));

        var (exit, output) = await Cli("resume", "--run", "k", "--storage", b);
        Assert.True(exit == 0, output);
        Assert.Matches(@"\(([2-9]|\d\d+) batches kept from an earlier attempt\)", output);

        var straight = (await PrefPipe.Host.Runs.RunRecord.LoadAsync(new PrefPipe.Artifacts.Storage.LocalArtifactStore(a), "k", CancellationToken.None))!;
        var resumed = (await PrefPipe.Host.Runs.RunRecord.LoadAsync(store, "k", CancellationToken.None))!;
        Assert.Equal(RunStatus.Completed, resumed.Status);
        Assert.False(await store.ExistsAsync(PrefPipe.Host.Runs.RunLock.PathOf("k")));
        foreach (var stage in straight.Stages)
        {
            var other = resumed.Stage(stage.Name);
            Assert.Equal(stage.RowsOut, other.RowsOut);
            // Rejects name their source file, which differs between the two folders; metrics and comparisons carry wall-clock figures.
            foreach (var artifact in stage.Outputs.Where(o => o.Name is not ("metrics" or "comparisons" or "rejects")))
                Assert.True(artifact.Sha256 == other.Outputs.Single(o => o.Name == artifact.Name).Sha256, $"{stage.Name}/{artifact.Name} differs after the kill and resume");
        }
    }
}
