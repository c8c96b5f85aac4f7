using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Service;

/// <summary>A trigger's claim on one run, stored as <c>_service/KIND/KEY.json</c> next to the runs (create-if-absent).</summary>
/// <param name="Kind">schedule or blob.</param>
/// <param name="Key">What makes the trigger unique: the occurrence, or blob name + content hash.</param>
/// <param name="RunId">The run id, derived from the key so every instance picks the same one.</param>
/// <param name="Prompts">For blob triggers: the prompts file the run reads (<c>inputs.prompts</c>).</param>
/// <param name="Source">What fired: the occurrence time or the blob's URI.</param>
internal sealed record RunClaim(
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("run_id")] string RunId,
    [property: JsonPropertyName("prompts")] string? Prompts,
    [property: JsonPropertyName("source")] string Source)
{
    public const string Folder = "_service";

    /// <summary>Random per claim attempt, so that an instance recognises its own marker when a create that committed
    /// is retried (a lost response) and answered "exists".</summary>
    [JsonPropertyName("nonce")]
    public string? Nonce { get; init; }

    public string MarkerPath => $"{Folder}/{Kind}/{Key}.json";
}

/// <summary>How a trigger ended.</summary>
internal enum RunOutcome
{
    /// <summary>The run completed.</summary>
    Completed,

    /// <summary>The run failed; its run.json says why.</summary>
    Failed,

    /// <summary>Shutdown cancelled the run at a stage boundary; it resumes on the next start.</summary>
    Cancelled,

    /// <summary>Another instance (or an earlier start) already claimed this trigger.</summary>
    AlreadyClaimed,

    /// <summary>Another live process holds the run's lock (it is writing the run); nothing for this consumer to do now.</summary>
    Busy,
}

/// <summary>
/// Claims triggers in the run store and executes runs with at most <see cref="TriggersSection.MaxConcurrentRuns"/> at a
/// time. A claim is a create-if-absent marker, so of two instances seeing the same occurrence, blob or message exactly
/// one runs it; the run id comes from the claim, so a resumed run continues the same run.json.
/// </summary>
internal sealed class RunLauncher : IDisposable
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    /// <summary>A claim marker as stored (null for a JSON null).</summary>
    private async Task<RunClaim?> ReadClaimAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = await Store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        return await JsonSerializer.DeserializeAsync<RunClaim>(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
    }
    private readonly ServeSettings _settings;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;
    private readonly List<Task> _running = [];

    public RunLauncher(ServeSettings settings, IArtifactStore store, ILogger<RunLauncher> logger)
    {
        _settings = settings;
        Store = store;
        _logger = logger;
        _slots = new SemaphoreSlim(settings.Pipeline.Definition.Triggers.MaxConcurrentRuns);
    }

    /// <summary>The run store (the pipeline's <c>storage</c>).</summary>
    public IArtifactStore Store { get; }

    /// <summary>Creates the claim's marker; false when it already existed (someone else owns the trigger). The marker
    /// carries a random nonce: when the store answers "exists" because its own retry of a create that did commit saw
    /// that create, the nonce read back is ours and the claim is won.</summary>
    public async Task<bool> TryClaimAsync(RunClaim claim, CancellationToken cancellationToken = default)
    {
        var mine = claim with { Nonce = RandomNumberGenerator.GetHexString(32, lowercase: true) };
        byte[] content = JsonSerializer.SerializeToUtf8Bytes(mine, JsonOptions);
        if (await Store.TryCreateAsync(claim.MarkerPath, content, cancellationToken).ConfigureAwait(false)) return true;
        try
        {
            var existing = await ReadClaimAsync(claim.MarkerPath, cancellationToken).ConfigureAwait(false);
            return existing?.Nonce is { } nonce && string.Equals(nonce, mine.Nonce, StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is FileNotFoundException or JsonException)
        {
            return false; // removed meanwhile, or not a marker we wrote
        }
    }

    /// <summary>Whether the trigger is already claimed.</summary>
    public async Task<bool> IsClaimedAsync(RunClaim claim, CancellationToken cancellationToken = default) =>
        await Store.ExistsAsync(claim.MarkerPath, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Claims and runs. When the claim exists and <paramref name="resumeUnfinished"/> is set (a queue message that
    /// came back because its first consumer died), a run that is not completed or failed is resumed instead.
    /// </summary>
    public async Task<RunOutcome> ClaimAndRunAsync(RunClaim claim, bool resumeUnfinished, CancellationToken cancellationToken = default)
    {
        if (!await TryClaimAsync(claim, cancellationToken).ConfigureAwait(false))
        {
            var run = await RunRecord.LoadAsync(Store, claim.RunId, cancellationToken).ConfigureAwait(false);
            string status = run?.Status.Name() ?? "not started";
            if (!resumeUnfinished || run?.Status is RunStatus.Completed or RunStatus.Failed)
            {
                _logger.AlreadyClaimed(claim.Kind, claim.Key, claim.RunId, status);
                return RunOutcome.AlreadyClaimed;
            }
            _logger.ResumingClaimedRun(claim.RunId, status, claim.Kind, claim.Key);
        }
        return await ExecuteAsync(claim, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Claims whose run is unfinished: cancelled ones, and with <paramref name="includeInterrupted"/> also
    /// runs left "running" or never started (a crash; only safe when no other instance serves the same store).</summary>
    public async Task<List<RunClaim>> UnfinishedAsync(bool includeInterrupted, CancellationToken cancellationToken = default)
    {
        var result = new List<RunClaim>();
        await foreach (string path in Store.ListAsync(RunClaim.Folder + "/", cancellationToken).ConfigureAwait(false))
        {
            if (!path.EndsWith(".json", StringComparison.Ordinal)) continue;
            try
            {
                var claim = await ReadClaimAsync(path, cancellationToken).ConfigureAwait(false);
                if (claim is null || string.IsNullOrEmpty(claim.RunId)) throw new JsonException("not a claim (no run_id)");
                var run = await RunRecord.LoadAsync(Store, claim.RunId, cancellationToken).ConfigureAwait(false);
                if (run?.Status == RunStatus.Cancelled || (includeInterrupted && run?.Status is null or RunStatus.Running)) result.Add(claim);
            }
            // One unreadable marker (corrupt, or its run.json) must not keep the others from resuming.
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                _logger.SkippingClaimMarker(path, ex.Message);
            }
        }
        return result;
    }

    /// <summary>Waits for a free run slot; dispose the result to give it back.</summary>
    public async Task<IDisposable> AcquireSlotAsync(CancellationToken cancellationToken = default)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new Slot(_slots);
    }

    /// <summary>Starts <paramref name="work"/> in the background holding <paramref name="slot"/>; <see cref="DrainAsync"/> waits for it.</summary>
    public void Start(IDisposable slot, Func<Task> work)
    {
        var task = Task.Run(async () =>
        {
            using (slot)
            {
                try
                {
                    await work().ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _logger.TriggerStoppedByShutdown();
                }
                // Nobody awaits this task but DrainAsync: log what would otherwise be lost (claim, run.json, message delete).
                catch (Exception ex)
                {
                    _logger.TriggerFailed(ex, ex.Message);
                }
            }
        });
        lock (_running)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(task);
        }
    }

    /// <summary>Waits for every run started with <see cref="Start"/> (they stop at a boundary once cancelled).</summary>
    public async Task DrainAsync()
    {
        Task[] tasks;
        lock (_running) tasks = [.. _running];
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Each run already logged how it ended.
        }
    }

    /// <summary>Runs (or resumes) the claimed run to the end.</summary>
    public async Task<RunOutcome> ExecuteAsync(RunClaim claim, CancellationToken cancellationToken = default)
    {
        var overrides = _settings.Overrides.ToList();
        if (claim.Prompts is { } prompts) overrides.Add($"inputs.prompts={prompts}");
        LoadedPipeline pipeline;
        try
        {
            pipeline = PipelineLoader.Load(_settings.Pipeline.File, overrides);
        }
        catch (PipelineFileException ex)
        {
            _logger.RunCannotStart(claim.RunId, ex.Message);
            return RunOutcome.Failed;
        }
        _logger.RunStarting(claim.RunId, claim.Kind, claim.Source);
        var runner = new PipelineRunner(pipeline, Store, line =>
        {
            if (_logger.IsEnabled(LogLevel.Information)) _logger.RunProgress(claim.RunId, line.Trim());
        });
        try
        {
            var run = await runner.RunAsync(claim.RunId, new RunScope(), cancellationToken).ConfigureAwait(false);
            if (_logger.IsEnabled(LogLevel.Information)) _logger.RunEnded(claim.RunId, run.Status.Name());
            return RunOutcome.Completed;
        }
        catch (RunLockHeldException ex)
        {
            _logger.RunBusy(claim.RunId, ex.Host, ex.Pid, ex.Expires);
            return RunOutcome.Busy;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _logger.RunCancelledByShutdown(claim.RunId);
            return RunOutcome.Cancelled;
        }
        // A failed run is recorded in run.json and reported; the service keeps serving.
        catch (Exception ex)
        {
            _logger.RunFailed(ex, claim.RunId, ex.Message);
            return RunOutcome.Failed;
        }
    }

    public void Dispose() => _slots.Dispose();

    private sealed class Slot(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) slots.Release();
        }
    }
}
