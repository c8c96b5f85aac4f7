using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Telemetry;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Host.Runs;

/// <summary>Progress of a long stage: <paramref name="Done"/> of <paramref name="Total"/> prompts (ingest) or steps (training).</summary>
internal sealed record RunProgress(PipelineStage Stage, long Done, long Total);

/// <summary>Which part of the pipeline to run.</summary>
/// <param name="From">First stage to (re)run; earlier ones are reused from the run.</param>
/// <param name="Until">Last stage to run.</param>
/// <param name="Force">Stages to rerun even when their inputs and config are unchanged.</param>
internal sealed record RunScope(PipelineStage? From = null, PipelineStage? Until = null, IReadOnlySet<PipelineStage>? Force = null);

/// <summary>
/// Runs a pipeline's stages in order under one run id, with Parquet artifacts between them and run.json recording
/// lineage (config hash, code version, artifact hashes) and the counts that prove nothing was lost. A stage whose config
/// and inputs are unchanged since it last completed in this run is skipped; a crashed run resumes where it stopped.
/// </summary>
internal sealed class PipelineRunner(LoadedPipeline pipeline, IArtifactStore store, Action<string> log)
{
    private PipelineDefinition D => pipeline.Definition;

    private CancellationToken _lockLost;

    /// <summary>
    /// Runs (of the same store) whose outputs may stand for this run's: a reusable stage (ingest, rank, split) that one of
    /// them completed under the same content key is copied in rather than run (a study's cells share their upstream).
    /// </summary>
    public IReadOnlyList<string> ReuseFrom { get; init; } = [];

    /// <summary>Every progress report of the long stages (ingest batches, training steps), unthrottled, for progress bars.</summary>
    public IProgress<RunProgress>? Progress { get; init; }

    /// <summary>How often the plain progress lines of a long step may appear (redirected output); default 2 s.</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(2);

    private void Report(PipelineStage stage, long done, long total) => Progress?.Report(new RunProgress(stage, done, total));

    public static string NewRunId(string pipelineName) =>
        $"{pipelineName}-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{RandomNumberGenerator.GetHexString(4, lowercase: true)}";

    public async Task<RunRecord> RunAsync(string runId, RunScope scope, CancellationToken cancellationToken = default)
    {
        ArtifactPath.ValidateName(runId, "run id");
        CheckScope(scope);
        using var span = PipelineTelemetry.Source.StartActivity("run");
        span?.SetTag("prefpipe.run_id", runId);
        span?.SetTag("prefpipe.pipeline", D.Name);
        span?.SetTag("prefpipe.plan", D.Training.Plan.ToString().ToLowerInvariant());
        await using var runLock = await RunLock.AcquireAsync(store, runId, cancellationToken).ConfigureAwait(false);
        // A writer whose lock was taken over (it stalled past the lock's lifetime) stops, and writes nothing more.
        _lockLost = runLock.Lost;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, runLock.Lost);
        cancellationToken = linked.Token;
        RemoveLeftoverPartials(runId);
        string configHash = StageTable.Hash(pipeline.CanonicalYaml);
        var run = await RunRecord.LoadAsync(store, runId, cancellationToken).ConfigureAwait(false);
        if (run is null)
        {
            run = new RunRecord
            {
                RunId = runId, Pipeline = D.Name, Plan = D.Training.Plan, PipelineDirectory = pipeline.Directory, ConfigHash = configHash, CodeVersion = CodeVersion.Current, Created = DateTimeOffset.UtcNow,
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
        run.CodeVersion = CodeVersion.Current;
        run.Status = RunStatus.Running;
        await SaveAsync(run, failing: false).ConfigureAwait(false);
        var context = new StageContext(pipeline, store, runId, WorkDirectory(runId), log, Report) { ProgressInterval = ProgressInterval };
        var (from, until) = (scope.From ?? Stages.All[0], scope.Until ?? Stages.All[^1]);

        try
        {
            foreach (var stage in StageTable.All)
            {
                bool selected = stage.Name >= from && stage.Name <= until && stage.Enabled(D);
                await StageAsync(run, stage, selected, scope, context, cancellationToken).ConfigureAwait(false);
            }
            run.Status = RunStatus.Completed;
        }
        catch (OperationCanceledException) when (_lockLost.IsCancellationRequested)
        {
            throw new InvalidOperationException($"run {runId}: another process took over its run lock (this one stalled past the lock's lifetime); stopped without writing more");
        }
        catch (OperationCanceledException)
        {
            run.Status = RunStatus.Cancelled;
            throw;
        }
        catch
        {
            run.Status = RunStatus.Failed;
            throw;
        }
        finally
        {
            await SaveAsync(run, failing: run.Status != RunStatus.Completed).ConfigureAwait(false);
            await WriteReportAsync(run).ConfigureAwait(false);
            span?.SetTag("prefpipe.status", run.Status.Name());
            if (run.Status != RunStatus.Completed)
                span?.SetStatus(ActivityStatusCode.Error, run.Stages.FirstOrDefault(s => s.Error is not null)?.Error ?? run.Status.Name());
        }
        return run;
    }

    /// <summary>
    /// Writes RUN/report.html at the end of every run, failed and cancelled ones included. The page is a view of what the
    /// run recorded: a failure to write it is logged, never reported instead of the run's own outcome.
    /// </summary>
    private async Task WriteReportAsync(RunRecord run)
    {
        if (_lockLost.IsCancellationRequested) return; // the run is another writer's now
        try
        {
            string uri = await RunReportWriter.WriteAsync(store, run.RunId, pipeline, WorkDirectory(run.RunId), CancellationToken.None).ConfigureAwait(false);
            log($"report: {uri}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or Azure.RequestFailedException)
        {
            log($"report.html could not be written: {Secrets.Redact(ex.Message)}");
        }
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
        if (scope.From is { } f && scope.Until is { } u && f > u)
            throw new ArgumentException($"--from {f.Name()} comes after --until {u.Name()}: no stage would run; stages run in the order {string.Join(" → ", Stages.All.Select(s => s.Name()))}");
    }

    // A forced rerun, or a key other than the last attempt's, starts afresh: the stage's Clear removes what an earlier
    // attempt left (checkpoints). An attempt with the key of the one that stopped continues it.
    private async Task StageAsync(RunRecord run, StageDescriptor stage, bool selected, RunScope scope, StageContext context, CancellationToken cancellationToken)
    {
        string name = stage.Name.Name();
        var rec = run.Stage(stage.Name);
        if (!selected)
        {
            if (rec.Status is StageStatus.Pending) rec.Status = StageStatus.Skipped;
            log($"{name}: {(rec.Status == StageStatus.Completed ? "kept from earlier" : "not in this run")}");
            return;
        }
        using var span = PipelineTelemetry.Source.StartActivity($"stage {name}");
        span?.SetTag("prefpipe.run_id", run.RunId);
        span?.SetTag("prefpipe.stage", name);
        string key = StageTable.Key(pipeline, run, stage.Name);
        span?.SetTag("prefpipe.stage_key", key);
        bool forced = scope.Force?.Contains(stage.Name) == true;
        if (!forced && rec.Status == StageStatus.Completed && rec.Key == key)
        {
            log($"{name}: unchanged since it completed (cached)");
            span?.SetTag("prefpipe.cached", true);
            return;
        }
        // Outputs made under another key are never reused: a stage whose options or inputs changed, or a forced rerun,
        // starts from nothing. The attempt's key is recorded now, so a crashed attempt resumes only with the same inputs.
        bool fresh = forced || rec.Key != key;
        if (fresh && stage.Clear is not null) await stage.Clear(context, cancellationToken).ConfigureAwait(false);
        string contentKey = StageTable.Key(pipeline, run, stage.Name, byContent: true);
        if (!forced && stage.Reusable && await ReuseAsync(run, rec, key, contentKey, cancellationToken).ConfigureAwait(false)) return;
        log($"{name}: running{(fresh || rec.Status is StageStatus.Pending or StageStatus.Skipped ? "" : " (continuing the attempt that stopped)")}");
        rec.Key = key;
        rec.Status = StageStatus.Running;
        rec.Started = DateTimeOffset.UtcNow;
        rec.Error = null;
        rec.Summary.Clear();
        var clock = Stopwatch.StartNew();
        try
        {
            await SaveAsync(run, failing: false).ConfigureAwait(false);
            var compute = ComputeClock.Start();
            var outcome = await stage.Run(context, cancellationToken).ConfigureAwait(false);
            outcome.ApplyTo(rec);
            rec.Inputs = StageTable.InputRecords(pipeline, run, stage.Name);
            rec.Method = stage.Accounting;
            log($"  {outcome.Line}");
            // Time inside model compute (generation, forward/backward passes, optimizer steps, reward sessions); the rest
            // of the stage's wall time is tokenisation, I/O and bookkeeping.
            rec.Summary["model_seconds"] = Math.Round(compute.Seconds, 3);
            rec.Status = StageStatus.Completed;
            rec.Key = key;
            rec.ContentKey = contentKey;
            rec.ReusedFrom = null;
        }
        catch (Exception ex)
        {
            rec.Status = ex is OperationCanceledException ? StageStatus.Cancelled : StageStatus.Failed;
            rec.Error = Secrets.Redact(ex.Message);
            throw;
        }
        finally
        {
            rec.Seconds = clock.Elapsed.TotalSeconds;
            rec.Finished = DateTimeOffset.UtcNow;
            PipelineTelemetry.StageEnded(span, rec);
            await SaveAsync(run, failing: rec.Status != StageStatus.Completed).ConfigureAwait(false);
        }
        if (!rec.Balanced) throw new InvalidOperationException($"{name}: rows in ({rec.RowsIn}) ≠ rows out ({rec.RowsOut}) + rejected ({rec.RowsRejected}): rows were lost.");
        log(string.Create(CultureInfo.InvariantCulture, $"{name}: done in {rec.Seconds:F1} s"));
    }

    /// <summary>
    /// Copies a stage's outputs from the first run of <see cref="ReuseFrom"/> that completed it under the same content key
    /// (same options, input contents, models and code), and records them as this run's, with the donor named. Returns
    /// false when no run qualifies. The copies are byte-identical, so every downstream key and hash is what running the
    /// stage here would have given.
    /// </summary>
    private async Task<bool> ReuseAsync(RunRecord run, StageRecord rec, string key, string contentKey, CancellationToken cancellationToken)
    {
        string name = rec.Name.Name();
        foreach (string donorId in ReuseFrom.Where(d => d != run.RunId))
        {
            var donor = await RunRecord.LoadAsync(store, donorId, cancellationToken).ConfigureAwait(false);
            var source = donor?.Stage(rec.Name);
            if (source is not { Status: StageStatus.Completed } || source.ContentKey != contentKey) continue;
            var clock = Stopwatch.StartNew();
            rec.Key = key;
            rec.Status = StageStatus.Running;
            rec.Started = DateTimeOffset.UtcNow;
            await SaveAsync(run, failing: false).ConfigureAwait(false);
            string from = $"{donorId}/{name}/", to = $"{run.RunId}/{name}/";
            string temp = Path.Combine(Path.GetTempPath(), $"prefpipe-reuse-{Guid.NewGuid():N}");
            try
            {
                await foreach (string file in store.ListAsync(from, cancellationToken).ConfigureAwait(false))
                {
                    await using (var input = await store.OpenReadAsync(file, cancellationToken).ConfigureAwait(false))
                    await using (var output = File.Create(temp))
                        await input.CopyToAsync(output, cancellationToken).ConfigureAwait(false);
                    await store.CommitAsync(to + file[from.Length..], temp, cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                File.Delete(temp);
            }
            // The donor's stage folder as its URIs name it (a path, or a blob URL), and this run's.
            string fromUri = store.UriOf($"{donorId}/{name}"), toUri = store.UriOf($"{run.RunId}/{name}");
            rec.Outputs = [.. source.Outputs.Select(o => o with { Uri = o.Uri.StartsWith(fromUri, StringComparison.Ordinal) && o.Uri.Length > fromUri.Length && o.Uri[fromUri.Length] is '/' or '\\' ? toUri + o.Uri[fromUri.Length..] : o.Uri })];
            (rec.RowsIn, rec.RowsOut, rec.RowsRejected, rec.Method) = (source.RowsIn, source.RowsOut, source.RowsRejected, source.Method);
            rec.Summary = new Dictionary<string, double>(source.Summary);
            rec.Inputs = StageTable.InputRecords(pipeline, run, rec.Name);
            (rec.ContentKey, rec.ReusedFrom, rec.Error) = (contentKey, donorId, null);
            rec.Status = StageStatus.Completed;
            rec.Seconds = clock.Elapsed.TotalSeconds;
            rec.Finished = DateTimeOffset.UtcNow;
            await SaveAsync(run, failing: false).ConfigureAwait(false);
            log(string.Create(CultureInfo.InvariantCulture, $"{name}: same inputs, options and code as in run {donorId}: its outputs copied ({rec.Seconds:F1} s)"));
            return true;
        }
        return false;
    }

    private string WorkDirectory(string runId) => store is LocalArtifactStore
        ? Path.Combine(Path.GetFullPath(pipeline.Resolve(D.Storage)), runId)
        : Path.Combine(Path.GetTempPath(), "prefpipe", runId);
}
