using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Ingest;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.Tokenizers;
using PrefPipe.Ranking;
using PrefPipe.Splitter;
using PrefPipe.Trainer;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Evaluation;
using PrefPipe.Trainer.Ppo;

namespace PrefPipe.Host.Runs;

/// <summary>Stage names in order.</summary>
internal static class Stages
{
    public const string Ingest = "ingest", Rank = "rank", Split = "split", Train = "train", Ppo = "ppo", Evaluate = "evaluate";

    public static readonly IReadOnlyList<string> All = [Ingest, Rank, Split, Train, Ppo, Evaluate];
}

/// <summary>Progress of a long stage: <paramref name="Done"/> of <paramref name="Total"/> prompts (ingest) or steps (training).</summary>
internal sealed record RunProgress(string Stage, long Done, long Total);

/// <summary>Which part of the pipeline to run.</summary>
/// <param name="From">First stage to (re)run; earlier ones are reused from the run.</param>
/// <param name="Until">Last stage to run.</param>
/// <param name="Force">Stages to rerun even when their inputs and config are unchanged.</param>
internal sealed record RunScope(string? From = null, string? Until = null, IReadOnlySet<string>? Force = null);

/// <summary>
/// Runs a pipeline's stages in order under one run id, with Parquet artifacts between them and run.json recording
/// lineage (config hash, code version, artifact hashes) and the counts that prove nothing was lost. A stage whose config
/// and inputs are unchanged since it last completed in this run is skipped; a crashed run resumes where it stopped.
/// </summary>
internal sealed class PipelineRunner(LoadedPipeline pipeline, IArtifactStore store, Action<string> log)
{
    private PipelineDefinition D => pipeline.Definition;

    private CancellationToken _lockLost;

    /// <summary>Every progress report of the long stages (ingest batches, training steps), unthrottled, for progress bars.</summary>
    public IProgress<RunProgress>? Progress { get; init; }

    private void Report(string stage, long done, long total) => Progress?.Report(new RunProgress(stage, done, total));

    public static string CodeVersion() =>
        typeof(PipelineRunner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    public static string NewRunId(string pipelineName) =>
        $"{pipelineName}-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{RandomNumberGenerator.GetHexString(4, lowercase: true)}";

    public async Task<RunRecord> RunAsync(string runId, RunScope scope, CancellationToken cancellationToken = default)
    {
        ArtifactPath.ValidateName(runId, "run id");
        CheckScope(scope);
        await using var runLock = await RunLock.AcquireAsync(store, runId, cancellationToken).ConfigureAwait(false);
        // A writer whose lock was taken over (it stalled past the lock's lifetime) stops, and writes nothing more.
        _lockLost = runLock.Lost;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, runLock.Lost);
        cancellationToken = linked.Token;
        RemoveLeftoverPartials(runId);
        string configHash = Hash(pipeline.CanonicalYaml);
        var run = await RunRecord.LoadAsync(store, runId, cancellationToken).ConfigureAwait(false);
        if (run is null)
        {
            run = new RunRecord
            {
                RunId = runId, Pipeline = D.Name, Plan = D.Training.Plan, PipelineDirectory = pipeline.Directory, ConfigHash = configHash, CodeVersion = CodeVersion(), Created = DateTimeOffset.UtcNow,
                Stages = [.. Stages.All.Select(s => new StageRecord { Name = s })],
            };
        }
        if (run.ConfigHash != configHash || !await store.ExistsAsync($"{runId}/pipeline.yaml", cancellationToken).ConfigureAwait(false))
        {
            // The run's pipeline.yaml is the configuration its outputs are made with: a run of a changed file records the
            // new one (stages whose options or inputs changed run again), so resume and rerun continue with what ran last.
            await store.WriteTextAsync($"{runId}/pipeline.yaml", pipeline.CanonicalYaml, cancellationToken).ConfigureAwait(false);
            (run.ConfigHash, run.Plan, run.PipelineDirectory) = (configHash, D.Training.Plan, pipeline.Directory);
        }
        run.CodeVersion = CodeVersion();
        run.Status = "running";
        run.ManifestInputs = (pipeline.Resolve(D.Inputs.Prompts), D.Inputs.EvalPrompts is { } ev ? pipeline.Resolve(ev) : null);
        await SaveAsync(run, failing: false).ConfigureAwait(false);
        string prefix = runId;
        string work = WorkDirectory(runId);
        int from = scope.From is null ? 0 : Stages.All.ToList().IndexOf(scope.From);
        int until = scope.Until is null ? Stages.All.Count - 1 : Stages.All.ToList().IndexOf(scope.Until);
        bool Selected(string s) { int i = Stages.All.ToList().IndexOf(s); return i >= from && i <= until; }
        string plan = D.Training.Plan;

        try
        {
            // 1. Ingest
            string policy = pipeline.Resolve(D.Models.Policy);
            string rewardDir = pipeline.Resolve(D.Models.Reward);
            string promptsPath = pipeline.Resolve(D.Inputs.Prompts);
            await StageAsync(run, Stages.Ingest, Selected(Stages.Ingest), DataStageKeyParts(pipeline, run, Stages.Ingest), scope, async (rec, ct) =>
            {
                var progress = new Throttled<IngestProgress>(p => log($"  ingest: {p.PromptsDone}/{p.PromptsTotal} prompts, {p.Candidates} candidates"), p => Report(Stages.Ingest, p.PromptsDone, p.PromptsTotal));
                var r = await new IngestStage(D.Ingest).RunAsync(PromptSource.ReadAsync(promptsPath, cancellationToken: ct), promptsPath, policy, store, $"{prefix}/ingest", progress, ct).ConfigureAwait(false);
                rec.RowsIn = r.RowsIn; rec.RowsOut = r.Prompts.Rows; rec.RowsRejected = r.Rejects.Rows;
                rec.Outputs = [ArtifactRecord.From("prompts", r.Prompts), ArtifactRecord.From("candidates", r.Candidates), ArtifactRecord.From("rejects", r.Rejects)];
                rec.Summary["candidates"] = r.Candidates.Rows;
                log($"  {IngestStage.Describe(r)}");
            }, cancellationToken).ConfigureAwait(false);

            // 2. Rank
            await StageAsync(run, Stages.Rank, Selected(Stages.Rank), DataStageKeyParts(pipeline, run, Stages.Rank), scope, async (rec, ct) =>
            {
                var options = D.Ranking;
                var r = await new RankingStage(options).RunAsync(store, $"{prefix}/ingest/candidates.parquet", rewardDir, $"{prefix}/rank", null, ct).ConfigureAwait(false);
                rec.RowsIn = r.PromptsIn; rec.RowsOut = r.Preferences.Rows; rec.RowsRejected = r.Unpaired.Rows;
                rec.Outputs = [ArtifactRecord.From("scored_candidates", r.Scored), ArtifactRecord.From("comparisons", r.Comparisons), ArtifactRecord.From("preferences", r.Preferences), ArtifactRecord.From("unpaired", r.Unpaired)];
                rec.Summary["judge_calls"] = r.JudgeCalls;
                log($"  {r.PromptsIn} prompts → {r.Preferences.Rows} pairs, {r.Unpaired.Rows} unpaired, {r.JudgeCalls} judge calls");
            }, cancellationToken).ConfigureAwait(false);

            // 3. Split
            await StageAsync(run, Stages.Split, Selected(Stages.Split), [Json(D.Split), Output(run, Stages.Rank, "preferences")], scope, async (rec, ct) =>
            {
                var r = await new SplitterStage(D.Split).RunAsync(store, $"{prefix}/rank/preferences.parquet", $"{prefix}/split", Path.Combine(work, "split"), ct).ConfigureAwait(false);
                rec.RowsIn = r.PairsIn; rec.RowsOut = r.Easy.Rows + r.Difficult.Rows; rec.RowsRejected = r.Dropped.Rows;
                rec.Outputs = [ArtifactRecord.From("easy", r.Easy), ArtifactRecord.From("difficult", r.Difficult), ArtifactRecord.From("dropped", r.Dropped)];
                rec.Summary["easy_fraction"] = r.Report.EasyFraction;
                rec.Summary["difficult_fraction"] = r.Report.DifficultFraction;
                log($"  {r.PairsIn} pairs → easy {r.Easy.Rows}, difficult {r.Difficult.Rows}, dropped {r.Dropped.Rows} (threshold {r.Report.Threshold:G4})");
            }, cancellationToken).ConfigureAwait(false);

            // 4. Stage 1: DPO family (mpo: easy pairs; dpo: all pairs).
            string reference = D.Models.Reference is { } refDir ? pipeline.Resolve(refDir) : policy;
            string stage1Out = Path.Combine(work, "train");
            bool trains = plan is "mpo" or "dpo";
            string pairsArtifact = plan == "dpo" ? $"{prefix}/rank/preferences.parquet" : $"{prefix}/split/easy.parquet";
            await StageAsync(run, Stages.Train, Selected(Stages.Train) && trains, [Json(D.Training.Stage1), plan, Output(run, plan == "dpo" ? Stages.Rank : Stages.Split, plan == "dpo" ? "preferences" : "easy"), DirHash(reference)], scope, async (rec, ct) =>
            {
                var rows = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, pairsArtifact, ct).ConfigureAwait(false);
                var encoder = new PairEncoder(PolicyPrompts(policy).Completions(), D.Training.Stage1.MaxLength, D.Training.Stage1.MaxPromptLength, D.Training.Stage1.TruncationMode);
                var pairs = new List<EncodedPair>();
                var rejects = new List<RejectRow>();
                foreach (var row in rows)
                {
                    var (pair, rejection) = encoder.Encode(row); // the ids ingest generated and scored
                    if (pair is not null) pairs.Add(pair);
                    else rejects.Add(new RejectRow { Stage = "train", Source = pairsArtifact, Key = rejection!.Key, Reason = rejection.Reason });
                }
                var rejectInfo = await ParquetArtifacts.WriteAsync(store, $"{prefix}/train/rejects.parquet", rejects, cancellationToken: ct).ConfigureAwait(false);
                rec.RowsIn = rows.Count; rec.RowsOut = pairs.Count; rec.RowsRejected = rejects.Count;
                if (pairs.Count == 0) throw new InvalidOperationException($"stage 1 has no trainable pairs in {pairsArtifact} ({rejects.Count} rejected); lower split.threshold or raise ingest.candidates_per_prompt.");
                var (refRows, reused, refPath) = await ReferencePass.ComputeOrReuseAsync(store, $"{prefix}/train", pairs, reference, D.Training.Stage1.PerDeviceTrainBatchSize, D.Training.Stage1.Dtype, null, ct).ConfigureAwait(false);
                log($"  reference log-probs for {pairs.Count} pairs {(reused ? "reused" : "computed")}: {refPath}");
                var progress = new Throttled<TrainProgress>(p => { if (p.Metrics.Count > 0) log($"  step {p.Step}/{p.TotalSteps}  {DpoTrainer.Describe(p.Metrics)}"); }, p => Report(Stages.Train, p.Step, p.TotalSteps));
                var result = new DpoTrainer(D.Training.Stage1).Train(policy, pairs, refRows, stage1Out, progress, ct);
                var metrics = await ParquetArtifacts.WriteAsync(store, $"{prefix}/train/metrics.parquet", result.Metrics, cancellationToken: ct).ConfigureAwait(false);
                rec.Outputs = [ArtifactRecord.From("metrics", metrics), ArtifactRecord.From("rejects", rejectInfo), await KeepModelAsync(result.FinalCheckpoint, $"{prefix}/train/model", ct).ConfigureAwait(false)];
                rec.Summary["steps"] = result.Steps;
                foreach (var m in result.Metrics.Where(m => m.Step == result.Steps)) rec.Summary[m.Name] = m.Value;
            }, cancellationToken, clear: ct => ClearTrainingAsync(stage1Out, $"{prefix}/train/model", ct)).ConfigureAwait(false);

            // 5. Stage 2: PPO (mpo: difficult prompts from the stage-1 model, referenced to it; ppo: all prompts from the SFT model).
            string Stage1Model() => trains ? Checkpoint.Latest(stage1Out) ?? throw new InvalidOperationException($"stage 1 has no checkpoint in {stage1Out}; run the train stage first") : policy;
            bool ppo = plan is "mpo" or "ppo";
            string ppoOut = Path.Combine(work, "ppo");
            string ppoSource = plan == "ppo" ? $"{prefix}/ingest/prompts.parquet" : $"{prefix}/split/difficult.parquet";
            await StageAsync(run, Stages.Ppo, Selected(Stages.Ppo) && ppo, [Json(D.Training.Stage2), plan, Output(run, plan == "ppo" ? Stages.Ingest : Stages.Split, plan == "ppo" ? "prompts" : "difficult"), Output(run, Stages.Train, "model"), DirHash(rewardDir)], scope, async (rec, ct) =>
            {
                await ModelSync.RestoreAsync(store, $"{prefix}/train/model", stage1Out, ct).ConfigureAwait(false);
                string stage1Model = Stage1Model();
                var promptEncoder = PolicyPrompts(policy);
                var prompts = plan == "ppo"
                    ? (await ParquetArtifacts.ReadAllAsync<PromptRow>(store, ppoSource, ct).ConfigureAwait(false)).Select(p => TrainingPrompt.From(p, promptEncoder)).ToList()
                    : (await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, ppoSource, ct).ConfigureAwait(false)).Select(p => TrainingPrompt.From(p, promptEncoder)).ToList();
                rec.RowsIn = prompts.Count; rec.RowsOut = prompts.Count;
                if (prompts.Count == 0) throw new InvalidOperationException($"stage 2 has no prompts in {ppoSource}.");
                var progress = new Throttled<TrainProgress>(p => { if (p.Metrics.Count > 0) log($"  ppo step {p.Step}/{p.TotalSteps}  {PpoTrainer.Describe(p.Metrics)}"); }, p => Report(Stages.Ppo, p.Step, p.TotalSteps));
                var result = new PpoTrainer(D.Training.Stage2).Train(stage1Model, stage1Model, rewardDir, prompts, ppoOut, progress, ct);
                var metrics = await ParquetArtifacts.WriteAsync(store, $"{prefix}/ppo/metrics.parquet", result.Metrics, cancellationToken: ct).ConfigureAwait(false);
                rec.Outputs = [ArtifactRecord.From("metrics", metrics), await KeepModelAsync(result.FinalCheckpoint, $"{prefix}/ppo/model", ct).ConfigureAwait(false)];
                rec.Summary["steps"] = result.Steps;
                foreach (var m in result.Metrics.Where(m => m.Step == result.Steps)) rec.Summary[m.Name] = m.Value;
            }, cancellationToken, clear: ct => ClearTrainingAsync(ppoOut, $"{prefix}/ppo/model", ct)).ConfigureAwait(false);

            // 6. Evaluate the final policy against the start on held-out prompts.
            string FinalModel() => ppo ? Checkpoint.Latest(ppoOut) ?? Stage1Model() : Stage1Model();
            bool evaluate = D.Inputs.EvalPrompts is not null && plan != "none";
            await StageAsync(run, Stages.Evaluate, Selected(Stages.Evaluate) && evaluate, [Json(D.Evaluation), Json(D.Ingest), D.Inputs.EvalPrompts is { } evalFile ? FileHash(pipeline.Resolve(evalFile)) : "", Output(run, ppo ? Stages.Ppo : Stages.Train, "model"), DirHash(policy), DirHash(rewardDir)], scope, async (rec, ct) =>
            {
                await ModelSync.RestoreAsync(store, $"{prefix}/train/model", stage1Out, ct).ConfigureAwait(false);
                await ModelSync.RestoreAsync(store, $"{prefix}/ppo/model", ppoOut, ct).ConfigureAwait(false);
                string finalModel = FinalModel();
                var promptEncoder = PolicyPrompts(policy);
                var prompts = new List<TrainingPrompt>();
                await foreach (var p in PromptSource.ReadAsync(pipeline.Resolve(D.Inputs.EvalPrompts!), cancellationToken: ct).ConfigureAwait(false))
                {
                    if (p.IsRejected) continue;
                    prompts.Add(TrainingPrompt.Encode($"eval-{p.Row}", p.Prompt, p.Messages?.Select(m => new Turn(m.Role, m.Content)).ToList(), promptEncoder));
                }
                if (prompts.Count == 0)
                    throw new InvalidDataException($"{pipeline.Resolve(D.Inputs.EvalPrompts!)}: no usable evaluation prompts (every row is empty or invalid); expected a prompt or messages per line/row.");
                var e = D.Evaluation;
                string chart = Path.Combine(work, "evaluate", "reward_distributions.png");
                var (summary, rows) = PolicyEvaluator.Evaluate(policy, finalModel, rewardDir, prompts,
                    new EvaluationOptions(e.SamplesPerPrompt, e.MaxNewTokens, e.Temperature, e.Seed), chart, ct);
                var info = await ParquetArtifacts.WriteAsync(store, $"{prefix}/evaluate/samples.parquet", rows, cancellationToken: ct).ConfigureAwait(false);
                await store.CommitAsync($"{prefix}/evaluate/reward_distributions.png", chart, ct).ConfigureAwait(false);
                rec.RowsIn = prompts.Count; rec.RowsOut = prompts.Count;
                rec.Outputs = [ArtifactRecord.From("samples", info)];
                rec.Summary["win_rate"] = summary.WinRate;
                rec.Summary["mean_reward_start"] = summary.MeanRewardStart;
                rec.Summary["mean_reward_final"] = summary.MeanRewardFinal;
                rec.Summary["mean_kl"] = summary.MeanKl;
                log(string.Create(CultureInfo.InvariantCulture, $"  win rate {summary.WinRate:P1}, mean reward {summary.MeanRewardStart:F3} → {summary.MeanRewardFinal:F3}, KL {summary.MeanKl:F3}"));
            }, cancellationToken).ConfigureAwait(false);

            run.Status = "completed";
        }
        catch (OperationCanceledException) when (_lockLost.IsCancellationRequested)
        {
            throw new InvalidOperationException($"run {runId}: another process took over its run lock (this one stalled past the lock's lifetime); stopped without writing more");
        }
        catch (OperationCanceledException)
        {
            run.Status = "cancelled";
            throw;
        }
        catch
        {
            run.Status = "failed";
            throw;
        }
        finally
        {
            await SaveAsync(run, failing: run.Status != "completed").ConfigureAwait(false);
        }
        return run;
    }

    /// <summary>
    /// Saves run.json. While a failure is on its way out (a full disk, say) a failed save is logged, not thrown: the
    /// failure is the error to report, and run.json keeps its last saved state.
    /// </summary>
    private async Task SaveAsync(RunRecord run, bool failing)
    {
        if (_lockLost.IsCancellationRequested) return; // the run is another writer's now
        try
        {
            await run.SaveAsync(store, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (failing && ex is IOException or UnauthorizedAccessException or Azure.RequestFailedException)
        {
            log($"run.json could not be saved: {ex.Message}");
        }
    }

    /// <summary>
    /// Staging files (<c>*.partial</c>) a stopped run left in its local folder (a full disk, a killed process) are removed
    /// when the run starts again under its lock. Shard workers write without the run lock: theirs go only once older than
    /// a lock's lifetime.
    /// </summary>
    private void RemoveLeftoverPartials(string runId)
    {
        if (store is not LocalArtifactStore local) return;
        var removed = local.RemovePartials(runId, (path, age) => path.Contains("/shards/", StringComparison.Ordinal) && age < RunLock.Lifetime);
        if (removed.Count > 0) log($"removed {removed.Count} leftover staging file(s) (*.partial) from an earlier attempt");
    }

    /// <summary>Refuses a scope that names an unknown stage or selects none (--from after --until), before any work.</summary>
    internal static void CheckScope(RunScope scope)
    {
        foreach (string? stage in new[] { scope.From, scope.Until })
            if (stage is not null && !Stages.All.Contains(stage))
                throw new ArgumentException($"stage '{stage}' is not known; expected one of {string.Join(", ", Stages.All)}");
        var order = Stages.All.ToList();
        if (scope.From is { } f && scope.Until is { } u && order.IndexOf(f) > order.IndexOf(u))
            throw new ArgumentException($"--from {f} comes after --until {u}: no stage would run; stages run in the order {string.Join(" → ", order)}");
    }

    /// <summary>
    /// What decides whether a finished ingest or rank stage can be reused: its options, its input's content and its model
    /// folder. Shard workers mark a merged stage with the same key (<see cref="StageKey"/>), so resume treats it as done.
    /// </summary>
    internal static string[] DataStageKeyParts(LoadedPipeline pipeline, RunRecord run, string stage) => stage switch
    {
        Stages.Ingest => [Json(pipeline.Definition.Ingest), FileHash(pipeline.Resolve(pipeline.Definition.Inputs.Prompts)), DirHash(pipeline.Resolve(pipeline.Definition.Models.Policy))],
        Stages.Rank => [Json(pipeline.Definition.Ranking), Output(run, Stages.Ingest, "candidates"), DirHash(pipeline.Resolve(pipeline.Definition.Models.Reward))],
        _ => throw new ArgumentOutOfRangeException(nameof(stage), stage, "only ingest and rank are data stages with shardable work"),
    };

    /// <summary>The run.json key of a stage from its key parts and the code version.</summary>
    internal static string StageKey(IEnumerable<string> keyParts) => Hash(string.Join('\u001f', keyParts.Append(CodeVersion())));

    // clear: removes what an earlier attempt left (checkpoints) when this attempt must start afresh: a forced rerun, or a
    // key other than the last attempt's. An attempt with the key of the one that stopped continues it.
    private async Task StageAsync(RunRecord run, string name, bool selected, IEnumerable<string> keyParts, RunScope scope,
        Func<StageRecord, CancellationToken, Task> body, CancellationToken cancellationToken, Func<CancellationToken, Task>? clear = null)
    {
        var rec = run.Stage(name);
        if (!selected)
        {
            if (rec.Status is "pending") rec.Status = "skipped";
            log($"{name}: {(rec.Status == "completed" ? "kept from earlier" : "not in this run")}");
            return;
        }
        string key = StageKey(keyParts);
        bool forced = scope.Force?.Contains(name) == true;
        if (!forced && rec.Status == "completed" && rec.Key == key)
        {
            log($"{name}: unchanged since it completed (cached)");
            return;
        }
        // Outputs made under another key are never reused: a stage whose options or inputs changed, or a forced rerun,
        // starts from nothing. The attempt's key is recorded now, so a crashed attempt resumes only with the same inputs.
        bool fresh = forced || rec.Key != key;
        if (fresh && clear is not null) await clear(cancellationToken).ConfigureAwait(false);
        log($"{name}: running{(fresh || rec.Status is "pending" or "skipped" ? "" : " (continuing the attempt that stopped)")}");
        rec.Key = key;
        rec.Status = "running";
        rec.Started = DateTimeOffset.UtcNow;
        rec.Error = null;
        rec.Summary.Clear();
        var clock = Stopwatch.StartNew();
        try
        {
            await SaveAsync(run, failing: false).ConfigureAwait(false);
            var compute = ComputeClock.Start();
            await body(rec, cancellationToken).ConfigureAwait(false);
            // Time inside model compute (generation, forward/backward passes, optimizer steps, reward sessions); the rest
            // of the stage's wall time is tokenisation, I/O and bookkeeping.
            rec.Summary["model_seconds"] = Math.Round(compute.Seconds, 3);
            rec.Status = "completed";
            rec.Key = key;
        }
        catch (Exception ex)
        {
            rec.Status = ex is OperationCanceledException ? "cancelled" : "failed";
            rec.Error = Secrets.Redact(ex.Message);
            throw;
        }
        finally
        {
            rec.Seconds = clock.Elapsed.TotalSeconds;
            rec.Finished = DateTimeOffset.UtcNow;
            await SaveAsync(run, failing: rec.Status != "completed").ConfigureAwait(false);
        }
        if (!rec.Balanced) throw new InvalidOperationException($"{name}: rows in ({rec.RowsIn}) ≠ rows out ({rec.RowsOut}) + rejected ({rec.RowsRejected}): rows were lost.");
        log(string.Create(CultureInfo.InvariantCulture, $"{name}: done in {rec.Seconds:F1} s"));
    }

    /// <summary>Removes a training stage's checkpoints (local folder, and the copy kept in a remote store).</summary>
    private async Task ClearTrainingAsync(string localDir, string storePrefix, CancellationToken cancellationToken)
    {
        if (Directory.Exists(localDir))
            foreach (string dir in Directory.EnumerateDirectories(localDir, "checkpoint-*"))
                Directory.Delete(dir, recursive: true);
        await ModelSync.RemoveAsync(store, storePrefix, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The policy's prompt encoding, as ingest configures it: every stage feeds the policy the same ids.</summary>
    private PromptEncoder PolicyPrompts(string policyDirectory) => PromptEncoder.Load(policyDirectory, D.Ingest.ChatTemplate, D.Ingest.SystemPrompt);

    /// <summary>The model's run.json record; on a blob store the folder is uploaded first and recorded by its URI.</summary>
    private async Task<ArtifactRecord> KeepModelAsync(string checkpoint, string storePrefix, CancellationToken cancellationToken)
    {
        var record = ArtifactRecord.Model("model", checkpoint);
        string? uri = await ModelSync.UploadAsync(store, checkpoint, storePrefix, cancellationToken).ConfigureAwait(false);
        if (uri is not null) log($"  model uploaded to {uri}");
        return uri is null ? record : record with { Uri = uri };
    }

    private string WorkDirectory(string runId) => store is LocalArtifactStore
        ? Path.Combine(Path.GetFullPath(pipeline.Resolve(D.Storage)), runId)
        : Path.Combine(Path.GetTempPath(), "prefpipe", runId);

    internal static string Output(RunRecord run, string stage, string name) =>
        run.Stage(stage).Outputs.FirstOrDefault(o => o.Name == name) is { } o ? $"{o.Uri}:{o.Sha256}" : "";

    internal static string Json(object value) => JsonSerializer.Serialize(value);

    internal static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];

    internal static string FileHash(string path) => File.Exists(path) ? Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)))[..16] : path;

    internal static string DirHash(string dir) => string.Join(",", Directory.Exists(dir)
        ? Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal).Select(f => $"{Path.GetFileName(f)}:{new FileInfo(f).Length}:{File.GetLastWriteTimeUtc(f).Ticks}")
        : [dir]);

    /// <summary>Reports at most once a second (and always the last value), so logs stay short.</summary>
    private sealed class Throttled<T>(Action<T> report, Action<T>? every = null) : IProgress<T>
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public void Report(T value)
        {
            every?.Invoke(value);
            if (_clock.Elapsed < TimeSpan.FromSeconds(2)) return;
            _clock.Restart();
            report(value);
        }
    }
}
