using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Sharding;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;
using PrefPipe.Ranking;
using static PrefPipe.Host.Tests.Workers.WorkerTestPipeline;

namespace PrefPipe.Host.Tests.Workers;

/// <summary>Sharded stages on a local folder (lock-file claims), through the CLI in this process.</summary>
public sealed class ShardWorkerTests
{
    [Fact]
    public async Task Worker_RankShardIOfN_MergesToTheUnshardedArtifactsAndResumeContinues()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-workers-").FullName;
        string storage = Path.Combine(root, "runs");
        string file = Write(root, storage);
        var (ingestExit, ingestOutput) = await Cli("run", file, "--run-id", "w1", "--until", "ingest");
        Assert.True(ingestExit == 0, ingestOutput);

        // The single-worker reference: the unsharded stage on the same candidates.
        var store = new LocalArtifactStore(storage);
        var d = PipelineLoader.Load(file).Definition;
        string reward = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "reward");
        var reference = await new RankingStage(new RankingOptions { Judge = d.Ranking.Judge, TieEpsilon = d.Ranking.TieEpsilon, Reward = d.Ranking.Reward })
            .RunAsync(store, "w1/ingest/candidates.parquet", reward, "ref/rank");

        var outputs = new List<string>();
        foreach (int i in new[] { 2, 0, 3, 1 })
        {
            var (exit, output) = await Cli("worker", "--run", "w1", "--stage", "rank", "--shard", $"{i}/4", "--storage", storage, "--json");
            Assert.True(exit == 0, output);
            outputs.Add(output);
        }

        // Only the worker that committed the last shard merges.
        Assert.All(outputs.Take(3), o => Assert.Contains("other shards are still open", o, StringComparison.Ordinal));
        Assert.Contains("\"event\":\"merged\"", outputs[3], StringComparison.Ordinal);
        await AssertSameRankingAsync(store, "ref/rank", store, "w1/rank");

        // Any number of workers on the same N writes the same bytes: one worker claiming all four shards of an identical run.
        Assert.Equal(0, (await Cli("run", file, "--run-id", "w1b", "--until", "ingest")).Exit);
        var (oneExit, oneOutput) = await Cli("worker", "--run", "w1b", "--stage", "rank", "--claim", "--shards", "4", "--storage", storage);
        Assert.True(oneExit == 0, oneOutput);
        foreach (string name in RankArtifacts)
            Assert.Equal(await Sha256Async(store, $"w1/rank/{name}.parquet"), await Sha256Async(store, $"w1b/rank/{name}.parquet"));
        await AssertSameComparisonsAsync(store, "w1/rank/comparisons.parquet", store, "w1b/rank/comparisons.parquet");
        var pairs = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, "w1/rank/preferences.parquet");
        Assert.Equal(reference.Preferences.Rows, pairs.Count);
        Assert.Equal(pairs.Count, pairs.Select(p => p.PromptId).Distinct().Count());
        // Every shard holds its own prompts only, and all four shards hold some.
        Assert.Equal(4, pairs.Select(p => Shard.Of(p.PromptId, 4)).Distinct().Count());

        var run = (await RunRecord.LoadAsync(store, "w1", default))!;
        var rank = run.Stage(PipelineStage.Rank);
        Assert.Equal(StageStatus.Completed, rank.Status);
        Assert.True(rank.Balanced);
        Assert.Equal(32, rank.RowsIn);
        Assert.Equal(4, rank.Summary["shards"]);
        Assert.Equal(await Sha256Async(store, "w1/rank/preferences.parquet"), rank.Outputs.Single(o => o.Name == "preferences").Sha256);

        // The runner sees the merged stage as done and continues with split.
        var (splitExit, splitOutput) = await Cli("run", file, "--run-id", "w1", "--until", "split");
        Assert.True(splitExit == 0, splitOutput);
        Assert.Contains("rank: unchanged since it completed (cached)", splitOutput, StringComparison.Ordinal);
        Assert.Contains("split: done", splitOutput, StringComparison.Ordinal);

        // A late worker finds nothing to do.
        var (lateExit, late) = await Cli("worker", "--run", "w1", "--stage", "rank", "--shard", "1/4", "--storage", storage, "--json");
        Assert.Equal(0, lateExit);
        Assert.Contains("already merged", late, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_MergeWhileAnotherWriterHoldsTheRun_FailsNamingItAndTheNextWorkerMerges()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-workers-").FullName;
        string storage = Path.Combine(root, "runs");
        string file = Write(root, storage);
        Assert.Equal(0, (await Cli("run", file, "--run-id", "w4", "--until", "ingest")).Exit);
        var store = new LocalArtifactStore(storage);
        // Another machine's runner holds the run (its lock is fresh).
        string holder = $$"""{"host":"trainer-node-3","pid":4242,"since":"{{DateTimeOffset.UtcNow:O}}","expires":"{{DateTimeOffset.UtcNow.AddMinutes(4):O}}"}""";
        Assert.True(await store.TryCreateAsync(RunLock.PathOf("w4"), System.Text.Encoding.UTF8.GetBytes(holder)));

        var (exit, output) = await Cli("worker", "--run", "w4", "--stage", "rank", "--shard", "0/1", "--storage", storage);

        Assert.NotEqual(0, exit);
        Assert.Contains("trainer-node-3 (process 4242)", output, StringComparison.Ordinal);
        var run = (await RunRecord.LoadAsync(store, "w4", default))!;
        Assert.NotEqual(StageStatus.Completed, run.Stage(PipelineStage.Rank).Status);

        // Once the holder is gone, the next worker finds the shard committed and merges it.
        await store.DeleteAsync(RunLock.PathOf("w4"));
        var (again, againOutput) = await Cli("worker", "--run", "w4", "--stage", "rank", "--shard", "0/1", "--storage", storage, "--json");
        Assert.True(again == 0, againOutput);
        Assert.Contains("\"event\":\"merged\"", againOutput, StringComparison.Ordinal);
        run = (await RunRecord.LoadAsync(store, "w4", default))!;
        Assert.Equal(StageStatus.Completed, run.Stage(PipelineStage.Rank).Status);
        Assert.False(await store.ExistsAsync(RunLock.PathOf("w4")));
    }

    [Fact]
    public async Task Worker_IngestClaimWithPipeline_GeneratesTheCandidatesOneWorkerGenerates()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-workers-ingest-").FullName;
        string storage = Path.Combine(root, "runs");
        string file = Write(root, storage, prompts: 24);
        string other = Path.Combine(root, "single");
        string singleFile = Path.Combine(root, "single.yaml");
        File.WriteAllText(singleFile, File.ReadAllText(file).Replace(storage, other, StringComparison.Ordinal));
        var (refExit, refOutput) = await Cli("run", singleFile, "--run-id", "single", "--until", "ingest");
        Assert.True(refExit == 0, refOutput);

        var (exit, output) = await Cli("worker", "--pipeline", file, "--run", "w2", "--stage", "ingest", "--claim", "--shards", "3", "--lease-seconds", "2", "--json");

        Assert.True(exit == 0, output);
        var events = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, events.Count(e => e.GetProperty("event").GetString() == "committed"));
        Assert.Equal(24, events.Where(e => e.GetProperty("event").GetString() == "committed").Sum(e => e.GetProperty("rows").GetInt64()));
        var store = new LocalArtifactStore(storage);
        var single = new LocalArtifactStore(other);
        foreach (string name in new[] { "prompts", "rejects" })
            Assert.Equal(await Sha256Async(single, $"single/ingest/{name}.parquet"), await Sha256Async(store, $"w2/ingest/{name}.parquet"));
        // The same candidates in the same order: text, tokens, seeds; the log-probability sums agree up to float rounding
        // (a batch of other prompts pads differently, which moves the last bits of the logits).
        var expected = await ParquetArtifacts.ReadAllAsync<CandidateRow>(single, "single/ingest/candidates.parquet");
        var actual = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "w2/ingest/candidates.parquet");
        Assert.Equal(72, actual.Count);
        Assert.Equal(expected.Select(c => c with { LogprobSum = 0, PromptInputIds = null, ResponseInputIds = null }), actual.Select(c => c with { LogprobSum = 0, PromptInputIds = null, ResponseInputIds = null }));
        Assert.All(expected.Zip(actual), x => { Assert.Equal(x.First.PromptInputIds, x.Second.PromptInputIds); Assert.Equal(x.First.ResponseInputIds, x.Second.ResponseInputIds); });
        Assert.All(expected.Zip(actual), x =>
        {
            // The local engine always records the log-probs (null only where an external server returned none).
            Assert.True(x.First.LogprobSum is not null && x.Second.LogprobSum is not null, $"{x.Second.PromptId}/{x.Second.CandidateIndex}: no logprob_sum from the local engine");
            Assert.Equal(x.First.LogprobSum.Value, x.Second.LogprobSum.Value, 1e-4);
        });
        var run = (await RunRecord.LoadAsync(store, "w2", default))!;
        Assert.Equal(StageStatus.Completed, run.Stage(PipelineStage.Ingest).Status);
        Assert.Equal(72, run.Stage(PipelineStage.Ingest).Summary["candidates"]);

        // The rank stage of the same run, one worker claiming all shards.
        var (rankExit, rankOutput) = await Cli("worker", "--run", "w2", "--stage", "rank", "--claim", "--shards", "2", "--storage", storage);
        Assert.True(rankExit == 0, rankOutput);
        Assert.Equal(StageStatus.Completed, (await RunRecord.LoadAsync(store, "w2", default))!.Stage(PipelineStage.Rank).Status);
    }

    /// <summary>
    /// The sharded stage against the unsharded one: the same rows in the same order and the same pairs; rewards agree up
    /// to float rounding (the reward model pads each batch to its longest sequence, so other batch members move the last bits).
    /// </summary>
    internal static async Task AssertSameRankingAsync(IArtifactStore expectedStore, string expectedPrefix, IArtifactStore actualStore, string actualPrefix)
    {
        var es = await ParquetArtifacts.ReadAllAsync<ScoredCandidateRow>(expectedStore, $"{expectedPrefix}/scored_candidates.parquet");
        var scored = await ParquetArtifacts.ReadAllAsync<ScoredCandidateRow>(actualStore, $"{actualPrefix}/scored_candidates.parquet");
        Assert.Equal(es.Select(r => (r.PromptId, r.CandidateIndex, r.Reason)), scored.Select(r => (r.PromptId, r.CandidateIndex, r.Reason)));
        Assert.All(es.Zip(scored), x => Assert.Equal(x.First.Reward!.Value, x.Second.Reward!.Value, 1e-5));
        var ep = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(expectedStore, $"{expectedPrefix}/preferences.parquet");
        var pairs = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(actualStore, $"{actualPrefix}/preferences.parquet");
        Assert.Equal(ep.Select(p => (p.PromptId, p.ChosenIndex, p.RejectedIndex, p.Chosen, p.Rejected)), pairs.Select(p => (p.PromptId, p.ChosenIndex, p.RejectedIndex, p.Chosen, p.Rejected)));
        var ec = await ParquetArtifacts.ReadAllAsync<ComparisonRow>(expectedStore, $"{expectedPrefix}/comparisons.parquet");
        var comparisons = await ParquetArtifacts.ReadAllAsync<ComparisonRow>(actualStore, $"{actualPrefix}/comparisons.parquet");
        Assert.Equal(ec.Select(c => (c.PromptId, c.A, c.B, c.Order, c.Verdict)), comparisons.Select(c => (c.PromptId, c.A, c.B, c.Order, c.Verdict)));
        var eu = await ParquetArtifacts.ReadAllAsync<RejectRow>(expectedStore, $"{expectedPrefix}/unpaired.parquet");
        var unpaired = await ParquetArtifacts.ReadAllAsync<RejectRow>(actualStore, $"{actualPrefix}/unpaired.parquet");
        Assert.Equal(eu, unpaired);
    }

    [Fact]
    public async Task Worker_StaleLocalLock_IsTakenOverAfterItsHeartbeatExpires()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-workers-stale-").FullName;
        string storage = Path.Combine(root, "runs");
        string file = Write(root, storage, prompts: 12);
        Assert.Equal(0, (await Cli("run", file, "--run-id", "w3", "--until", "ingest")).Exit);
        // Hold shard 0's claim the way a worker does, then let it die: its heartbeat stops and the lock goes stale.
        var (first, _) = await Cli("worker", "--run", "w3", "--stage", "rank", "--shard", "1/2", "--storage", storage);
        Assert.Equal(0, first);
        string shardsRoot = Directory.GetDirectories(Path.Combine(storage, "w3", "rank", "shards")).Single();
        string lockFile = Path.Combine(shardsRoot, "shard-0000.lease");
        File.WriteAllText(lockFile, "dead-host:1:0");
        File.SetLastWriteTimeUtc(lockFile, DateTime.UtcNow.AddSeconds(-1));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (exit, output) = await Cli("worker", "--run", "w3", "--stage", "rank", "--claim", "--shards", "2", "--storage", storage, "--lease-seconds", "3", "--json");

        Assert.True(exit == 0, output);
        Assert.Contains("\"event\":\"waiting\"", output, StringComparison.Ordinal);
        Assert.Contains("\"event\":\"claimed\",\"stage\":\"rank\",\"shard\":\"0/2\"", output, StringComparison.Ordinal);
        Assert.Contains("\"event\":\"merged\"", output, StringComparison.Ordinal);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 30);
    }

    [Theory]
    [InlineData("--stage split --claim --shards 2", "--stage 'split' cannot be sharded")]
    [InlineData("--stage rank --claim --shards 0", "--claim needs --shards N")]
    [InlineData("--stage rank --claim --shards 5000", "--claim needs --shards N")]
    [InlineData("--stage rank --shard 4/4", "expected i/N")]
    [InlineData("--stage rank --shard 1/4 --shards 3", "--shards is 3")]
    [InlineData("--stage rank --shard 1/4 --claim", "either --shard i/N or --claim")]
    [InlineData("--stage rank", "give --shard i/N")]
    public async Task Worker_BadOptions_ExitsTwoNamingTheOption(string options, string message)
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-workers-bad-").FullName;
        await using var error = await StderrCapture.StartAsync();
        int exit;
        (exit, _) = await Cli(["worker", "--run", "r", "--storage", storage, .. options.Split(' ')]);
        Assert.Equal(2, exit);
        Assert.Contains(message, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Worker_UnknownRun_ExitsTwoSayingHowToStartIt()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-workers-none-").FullName;
        await using var error = await StderrCapture.StartAsync();
        int exit;
        (exit, _) = await Cli("worker", "--run", "missing", "--stage", "rank", "--claim", "--shards", "2", "--storage", storage);
        Assert.Equal(2, exit);
        Assert.Contains("run 'missing' not found", error.ToString(), StringComparison.Ordinal);
    }
}
