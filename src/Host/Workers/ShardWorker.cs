using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Sharding;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;
using PrefPipe.Ingest;
using PrefPipe.Ranking;

namespace PrefPipe.Host.Workers;

/// <summary>What a worker does: one stage of one run, either one shard or every shard it can claim.</summary>
/// <param name="Stage">ingest or rank.</param>
/// <param name="Shards">How many shards the stage is split into.</param>
/// <param name="Only">The one shard to process, or null to claim free shards until none is left.</param>
/// <param name="Lease">How long a claim lasts without renewal (Azure Blob: 15 to 60 s).</param>
/// <param name="Poll">How often a worker looks again while every open shard is claimed by others.</param>
internal sealed record WorkerPlan(PipelineStage Stage, int Shards, Shard? Only, TimeSpan Lease, TimeSpan Poll);

/// <summary>One line of a worker's log (a JSON line with --json).</summary>
internal sealed record WorkerEvent(
    [property: JsonPropertyName("event")] string Event,
    [property: JsonPropertyName("stage")] PipelineStage Stage,
    [property: JsonPropertyName("shard"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Shard = null,
    [property: JsonPropertyName("rows"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? Rows = null,
    [property: JsonPropertyName("seconds"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Seconds = null,
    [property: JsonPropertyName("detail"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Detail = null);

/// <summary>The commit marker of a finished shard: <c>{run}/{stage}/shards/{KEY}-{N}/shard-{i:D4}.done</c>.</summary>
internal sealed record ShardMarker(
    [property: JsonPropertyName("shard")] string Shard,
    [property: JsonPropertyName("rows")] long Rows,
    [property: JsonPropertyName("started")] DateTimeOffset Started,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("worker")] string Worker,
    [property: JsonPropertyName("folder")] string? Folder = null);

/// <summary>What one worker did.</summary>
/// <param name="ShardsDone">Shards this worker processed and committed.</param>
/// <param name="Merged">Whether the stage is complete (merged by this worker or another).</param>
internal sealed record WorkerResult(IReadOnlyList<int> ShardsDone, bool Merged);

/// <summary>
/// Runs the ingest (generation) or rank stage of an existing run as shards, possibly many workers at once. A prompt
/// belongs to shard <see cref="Shard.Of"/> (SHA-256 of its id, mod N). Each shard writes its artifacts under
/// <c>{run}/{stage}/shards/{KEY}-{N}/shard-{i:D4}/</c> (KEY: a hash of the stage's config, input and code) and is done when its commit marker <c>shard-{i:D4}.done</c> exists
/// (create-if-absent). Workers claim shards with <see cref="StoreClaim"/> (blob leases; lock files locally); a worker
/// that dies loses its claim when it expires and another takes the shard over. When every shard is committed, one worker
/// (holding the merge claim) merges the parts into the stage's usual artifacts, in the unsharded stage's order, records
/// the stage as completed in run.json with the key <see cref="PipelineRunner"/> computes, and writes <c>merged.json</c>;
/// <c>prefpipe resume</c> then continues with split and training.
/// </summary>
internal sealed class ShardWorker(LoadedPipeline pipeline, IArtifactStore store, string runId, Action<WorkerEvent> report)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };
    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };
    private readonly string _worker = string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}");

    private PipelineDefinition D => pipeline.Definition;

    /// <summary>Identifies this worker in markers: host:pid:random.</summary>
    public string WorkerId => _worker;

    /// <summary>
    /// Creates the run as <see cref="PipelineRunner"/> does (pipeline.yaml, then run.json with every stage pending) unless
    /// it exists; create-if-absent, so many workers starting at once create it once.
    /// </summary>
    public static async Task CreateRunAsync(LoadedPipeline pipeline, IArtifactStore store, string runId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(store);
        ArtifactPath.ValidateName(runId, "run id");
        var run = new RunRecord
        {
            RunId = runId, Pipeline = pipeline.Definition.Name, Plan = pipeline.Definition.Training.Plan, PipelineDirectory = pipeline.Directory,
            ConfigHash = StageTable.Hash(pipeline.CanonicalYaml), CodeVersion = CodeVersion.Current,
            Created = DateTimeOffset.UtcNow, Status = RunStatus.Created, Stages = [.. Stages.All.Select(s => new StageRecord { Name = s })],
        };
        await store.TryCreateAsync($"{runId}/pipeline.yaml", System.Text.Encoding.UTF8.GetBytes(pipeline.CanonicalYaml), cancellationToken).ConfigureAwait(false);
        await store.TryCreateAsync(RunRecord.PathOf(runId), JsonSerializer.SerializeToUtf8Bytes(run, IndentedJson), cancellationToken).ConfigureAwait(false);
    }

    public async Task<WorkerResult> RunAsync(WorkerPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Stage is not (PipelineStage.Ingest or PipelineStage.Rank))
            throw new ArgumentException($"stage '{plan.Stage.Name()}' cannot be sharded; expected ingest or rank");
        var run = await RunRecord.LoadAsync(store, runId, cancellationToken).ConfigureAwait(false)
            ?? throw new ArgumentException($"run '{runId}' not found in {store.Location} (no {RunRecord.PathOf(runId)}); start it with 'prefpipe run … --until ingest' first");
        if (plan.Stage == PipelineStage.Rank)
        {
            string candidates = $"{runId}/ingest/candidates.parquet";
            if (run.Stage(PipelineStage.Ingest).Status != StageStatus.Completed || !await store.ExistsAsync(candidates, cancellationToken).ConfigureAwait(false))
                throw new InvalidOperationException($"run '{runId}': the ingest stage is not completed ({store.UriOf(candidates)} is missing); finish ingest before ranking");
        }

        string prefix = $"{runId}/{plan.Stage.Name()}";
        // The stage's config, input and code name the shards' folder, so shards of older inputs are never merged. Unlike
        // the run.json key (which hashes model folders by file times), it is the same on every machine.
        string key = StageKey(run, plan.Stage);
        string shardsRoot = string.Create(CultureInfo.InvariantCulture, $"{prefix}/shards/{ShardsKey(run, plan.Stage)}-{plan.Shards}");
        string mergedMarker = $"{shardsRoot}/merged.json";
        if (await store.ExistsAsync(mergedMarker, cancellationToken).ConfigureAwait(false))
        {
            report(new WorkerEvent("complete", plan.Stage, Detail: "already merged"));
            return new WorkerResult([], true);
        }

        var mine = new List<int>();
        IEnumerable<int> wanted = plan.Only is { } only ? [only.Index] : Enumerable.Range(0, plan.Shards);
        bool waiting = false;
        while (true)
        {
            var open = new List<int>();
            foreach (int i in wanted)
                if (!await store.ExistsAsync(Marker(new Shard(i, plan.Shards), shardsRoot), cancellationToken).ConfigureAwait(false)) open.Add(i);
            if (open.Count == 0) break;
            // Start at a different shard per worker so racing workers rarely contend for the same claim.
            int offset = Random.Shared.Next(open.Count);
            bool progressed = false;
            foreach (int i in open.Skip(offset).Concat(open.Take(offset)))
            {
                var shard = new Shard(i, plan.Shards);
                if (await TryProcessAsync(plan, shard, shardsRoot, cancellationToken).ConfigureAwait(false))
                {
                    mine.Add(i);
                    progressed = true;
                    waiting = false;
                }
            }
            if (!progressed)
            {
                if (!waiting) report(new WorkerEvent("waiting", plan.Stage, Detail: string.Create(CultureInfo.InvariantCulture, $"{open.Count} shard(s) claimed by other workers")));
                waiting = true;
                await Task.Delay(plan.Poll, cancellationToken).ConfigureAwait(false);
            }
        }

        // Every wanted shard is committed; merge once all N are.
        while (!await store.ExistsAsync(mergedMarker, cancellationToken).ConfigureAwait(false))
        {
            for (int i = 0; i < plan.Shards; i++)
            {
                if (!await store.ExistsAsync(Marker(new Shard(i, plan.Shards), shardsRoot), cancellationToken).ConfigureAwait(false))
                {
                    report(new WorkerEvent("done", plan.Stage, Detail: "other shards are still open; the worker that commits the last one merges"));
                    return new WorkerResult(mine, false);
                }
            }
            await using (var claim = await StoreClaim.TryAcquireAsync(store, $"{shardsRoot}/merge.lease", plan.Lease, cancellationToken).ConfigureAwait(false))
            {
                if (claim is not null && !await store.ExistsAsync(mergedMarker, cancellationToken).ConfigureAwait(false))
                {
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, claim.Lost);
                    await MergeAsync(plan, prefix, shardsRoot, key, linked.Token).ConfigureAwait(false);
                    break;
                }
            }
            await Task.Delay(plan.Poll, cancellationToken).ConfigureAwait(false);
        }
        report(new WorkerEvent("complete", plan.Stage));
        return new WorkerResult(mine, true);
    }

    private static string Marker(Shard shard, string shardsRoot) => shard.Folder(shardsRoot) + ".done";

    /// <summary>Claims, processes and commits one shard; false when it is claimed by another worker or already done.</summary>
    private async Task<bool> TryProcessAsync(WorkerPlan plan, Shard shard, string shardsRoot, CancellationToken cancellationToken)
    {
        string folder = shard.Folder(shardsRoot);
        await using var claim = await StoreClaim.TryAcquireAsync(store, folder + ".lease", plan.Lease, cancellationToken).ConfigureAwait(false);
        if (claim is null) return false;
        // Its last holder may have committed it just before releasing.
        if (await store.ExistsAsync(Marker(shard, shardsRoot), cancellationToken).ConfigureAwait(false)) return false;
        report(new WorkerEvent("claimed", plan.Stage, shard.ToString()));
        using var span = PrefPipe.Host.Telemetry.PipelineTelemetry.Source.StartActivity("shard");
        span?.SetTag("prefpipe.run_id", runId);
        span?.SetTag("prefpipe.stage", plan.Stage.Name());
        span?.SetTag("prefpipe.shard", shard.ToString());
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, claim.Lost);
        // Ranking writes each attempt to a folder of its own and the marker names it, so a stalled holder that finishes
        // after a takeover can never mix its files into the committed ones (an LLM judge need not answer the same twice).
        // Ingest attempts share the shard's folder: generation is seeded, and a takeover resumes at the first missing batch.
        string output = plan.Stage == PipelineStage.Rank ? $"{folder}/attempt-{Guid.NewGuid():N}" : folder;
        long rows;
        try
        {
            rows = await ProcessAsync(plan.Stage, shard, output, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (claim.Lost.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            report(new WorkerEvent("lost", plan.Stage, shard.ToString(), Detail: "the claim expired or was taken over; another worker finishes this shard"));
            return false;
        }
        if (claim.Lost.IsCancellationRequested)
        {
            report(new WorkerEvent("lost", plan.Stage, shard.ToString(), Detail: "the claim expired before the commit; another worker finishes this shard"));
            return false;
        }
        var marker = new ShardMarker(shard.ToString(), rows, started, clock.Elapsed.TotalSeconds, _worker, output);
        // Create-if-absent: of a stalled holder and its successor, exactly one commits; the marker names the folder merged.
        if (!await store.TryCreateAsync(Marker(shard, shardsRoot), JsonSerializer.SerializeToUtf8Bytes(marker, Json), cancellationToken).ConfigureAwait(false))
        {
            report(new WorkerEvent("superseded", plan.Stage, shard.ToString(), Detail: "another worker committed this shard first; its output is the one merged"));
            return false;
        }
        report(new WorkerEvent("committed", plan.Stage, shard.ToString(), rows, Math.Round(clock.Elapsed.TotalSeconds, 3)));
        return true;
    }

    private async Task<long> ProcessAsync(PipelineStage stage, Shard shard, string folder, CancellationToken cancellationToken)
    {
        if (stage == PipelineStage.Rank)
        {
            var r = await new RankingStage(RankingOptions()).RunShardAsync(store, $"{runId}/ingest/candidates.parquet",
                pipeline.Resolve(D.Models.Reward), folder, shard, null, cancellationToken).ConfigureAwait(false);
            return r.PromptsIn;
        }
        string prompts = pipeline.Resolve(D.Inputs.Prompts);
        var (count, _) = await new IngestStage(D.Ingest).RunShardAsync(PromptSource.ReadAsync(prompts, cancellationToken: cancellationToken), prompts,
            pipeline.Resolve(D.Models.Policy), store, folder, shard, null, cancellationToken).ConfigureAwait(false);
        return count;
    }

    private RankingOptions RankingOptions() => D.Ranking;

    private async Task MergeAsync(WorkerPlan plan, string prefix, string shardsRoot, string key, CancellationToken cancellationToken)
    {
        string mergedMarker = $"{shardsRoot}/merged.json";
        report(new WorkerEvent("merging", plan.Stage, Detail: string.Create(CultureInfo.InvariantCulture, $"{plan.Shards} shards")));
        var markers = new List<ShardMarker>();
        for (int i = 0; i < plan.Shards; i++)
        {
            await using var stream = await store.OpenReadAsync(Marker(new Shard(i, plan.Shards), shardsRoot), cancellationToken).ConfigureAwait(false);
            markers.Add(await JsonSerializer.DeserializeAsync<ShardMarker>(stream, cancellationToken: cancellationToken).ConfigureAwait(false)
                ?? throw new InvalidDataException($"{store.UriOf(Marker(new Shard(i, plan.Shards), shardsRoot))} is empty"));
        }
        var folders = Enumerable.Range(0, plan.Shards).Select(i => new Shard(i, plan.Shards).Folder(shardsRoot)).ToList();
        var clock = Stopwatch.StartNew();
        // run.json has one writer at a time: a runner (run/resume/rerun) holding the run fails this merge, naming itself;
        // the shards stay committed and the next worker or a rerun merges them.
        await using var runLock = await RunLock.AcquireAsync(store, runId, cancellationToken).ConfigureAwait(false);
        // A merge whose lock is taken over (it stalled past the lock's lifetime) stops before it writes run.json.
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, runLock.Lost);
        cancellationToken = linked.Token;
        var run = await RunRecord.LoadAsync(store, runId, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"{RunRecord.PathOf(runId)} disappeared from {store.Location}");
        var rec = run.Stage(plan.Stage);
        rec.Summary.Clear();
        if (plan.Stage == PipelineStage.Rank)
        {
            string reward = pipeline.Resolve(D.Models.Reward);
            var r = await new RankingStage(RankingOptions()).MergeShardsAsync(store, $"{runId}/ingest/candidates.parquet", reward,
                s => markers[s.Index].Folder ?? s.Folder(shardsRoot), plan.Shards, prefix, cancellationToken).ConfigureAwait(false);
            StageOutcome.From(r).ApplyTo(rec);
        }
        else
        {
            string prompts = pipeline.Resolve(D.Inputs.Prompts), policy = pipeline.Resolve(D.Models.Policy);
            var r = await new IngestStage(D.Ingest).MergeShardsAsync(PromptSource.ReadAsync(prompts, cancellationToken: cancellationToken), prompts, policy, store, folders, prefix, cancellationToken).ConfigureAwait(false);
            StageOutcome.From(r).ApplyTo(rec);
        }
        if (!rec.Balanced) throw new InvalidOperationException($"{plan.Stage.Name()}: rows in ({rec.RowsIn}) ≠ rows out ({rec.RowsOut}) + rejected ({rec.RowsRejected}) after merging {plan.Shards} shards");
        rec.Inputs = StageTable.InputRecords(pipeline, run, plan.Stage);
        rec.Method = StageTable.Of(plan.Stage).Accounting;
        rec.Summary["shards"] = plan.Shards;
        rec.Summary["shard_seconds"] = Math.Round(markers.Sum(m => m.Seconds), 3);
        rec.Summary["workers"] = markers.Select(m => m.Worker).Distinct(StringComparer.Ordinal).Count();
        rec.Started = markers.Min(m => m.Started);
        rec.Finished = DateTimeOffset.UtcNow;
        rec.Seconds = (rec.Finished.Value - rec.Started.Value).TotalSeconds;
        rec.Status = StageStatus.Completed;
        rec.Key = key;
        rec.Error = null;
        await run.SaveAsync(store, cancellationToken).ConfigureAwait(false);
        await store.TryCreateAsync(mergedMarker, JsonSerializer.SerializeToUtf8Bytes(new { worker = _worker, finished = rec.Finished }, Json), cancellationToken).ConfigureAwait(false);
        report(new WorkerEvent("merged", plan.Stage, Rows: rec.RowsOut, Seconds: Math.Round(clock.Elapsed.TotalSeconds, 3)));
    }

    /// <summary>Names the shards' folder: the stage's key with model folders named by path (the same on every machine).</summary>
    private string ShardsKey(RunRecord run, PipelineStage stage) => StageTable.Key(pipeline, run, stage, portable: true);

    /// <summary>The key PipelineRunner gives the stage, so resume treats a merged stage as done.</summary>
    private string StageKey(RunRecord run, PipelineStage stage) => StageTable.Key(pipeline, run, stage);
}
