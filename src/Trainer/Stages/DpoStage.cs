using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;

namespace PrefPipe.Trainer.Stages;

/// <summary>Pairs encoded for training, and the rows that could not be.</summary>
/// <param name="Pairs">Trainable pairs, in input order.</param>
/// <param name="Rejects">Rows refused (unreadable, too long, empty after truncation) with their reasons.</param>
/// <param name="RowsIn">Rows read.</param>
public sealed record EncodedPairs(IReadOnlyList<EncodedPair> Pairs, IReadOnlyList<RejectRow> Rejects, long RowsIn);

/// <summary>What the DPO-family unit wrote.</summary>
/// <param name="RowsIn">Pairs read.</param>
/// <param name="Trained">Pairs trained on.</param>
/// <param name="Rejects">The rejects artifact (pairs refused, with reasons).</param>
/// <param name="Metrics">The metrics artifact (one row per logged metric and step).</param>
/// <param name="Model">The final checkpoint.</param>
/// <param name="Steps">Optimizer steps done.</param>
/// <param name="MetricRows">The logged metrics.</param>
/// <param name="ReferencePath">The reference log-probs artifact.</param>
/// <param name="ReferenceReused">Whether the reference log-probs were read back rather than computed.</param>
public sealed record DpoStageResult(long RowsIn, int Trained, ArtifactInfo Rejects, ArtifactInfo Metrics, TrainedModel Model, long Steps,
    IReadOnlyList<MetricRow> MetricRows, string ReferencePath, bool ReferenceReused);

/// <summary>
/// The DPO-family training unit: preference pairs (our preferences/easy artifacts, or TRL standard or conversational
/// files) → the policy trained on them. Writes under its prefix: <c>rejects.parquet</c>, <c>reference_logps-*.parquet</c>
/// (computed once per pairs, reference model and dtype), <c>metrics.parquet</c> and, on a remote store, <c>model/</c>;
/// checkpoints (and <c>loss.png</c>) go to the local work folder, where a stopped attempt of the same training resumes.
/// </summary>
public sealed class DpoStage
{
    private readonly DpoTrainingOptions options;

    /// <summary>A unit with these options (checked now: a bad value is refused before any work, naming the option).</summary>
    public DpoStage(DpoTrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    /// <summary>The stage name in rejects and metrics.</summary>
    public const string Name = "dpo";

    /// <summary>A step's logged metrics in one short line (loss, margin, accuracy, learning rate).</summary>
    public static string Describe(IReadOnlyDictionary<string, double> metrics) => DpoTrainer.Describe(metrics);

    /// <summary>
    /// Encodes the pairs of <paramref name="pairs"/> as the policy reads them: pairs that carry the ids generation used
    /// train on those ids; standard text pairs are encoded as the text the model sees (never a second BOS); conversational
    /// pairs are rendered with the chat template.
    /// </summary>
    public async Task<EncodedPairs> EncodeAsync(StoreFile pairs, PromptEncoder encoder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(encoder);
        var pairEncoder = new PairEncoder(encoder.Completions(), options.MaxLength, options.MaxPromptLength, options.TruncationMode);
        var encoded = new List<EncodedPair>();
        var rejects = new List<RejectRow>();
        long rowsIn = 0;
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var input in PreferenceSource.ReadAsync(pairs.Store, pairs.Path, cancellationToken).ConfigureAwait(false))
        {
            rowsIn++;
            if (input.Pair is not { } row)
            {
                rejects.Add(new RejectRow { Stage = Name, Source = pairs.Uri, Row = input.Row, Reason = input.RejectReason ?? "unreadable row", Raw = input.Raw });
                continue;
            }
            if (row.PromptId.Length == 0) row = row with { PromptId = $"row-{input.Row}" };
            if (!keys.Add(row.PromptId))
            {
                // A row without an id is named row-N; another row may carry that id already.
                rejects.Add(new RejectRow { Stage = Name, Source = pairs.Uri, Row = input.Row, Key = row.PromptId, Reason = $"row {input.Row}: prompt_id '{row.PromptId}' is used by an earlier row; ids must be unique" });
                continue;
            }
            var (pair, rejection) = row is { PromptMessages.Count: > 0, PromptInputIds: null }
                ? pairEncoder.Encode(row.PromptId, [.. row.PromptMessages.Select(t => new Turn(t.Role, t.Content))], row.Chosen, row.Rejected)
                : pairEncoder.Encode(row);
            if (pair is not null) encoded.Add(pair);
            else rejects.Add(new RejectRow { Stage = Name, Source = pairs.Uri, Row = input.Row, Key = rejection!.Key, Reason = rejection.Reason });
        }
        return new EncodedPairs(encoded, rejects, rowsIn);
    }

    /// <summary>Trains the policy on <paramref name="pairs"/>.</summary>
    /// <param name="pairs">The preference pairs.</param>
    /// <param name="policyDirectory">The policy to train (Hugging Face folder).</param>
    /// <param name="referenceDirectory">The reference model (usually the policy itself).</param>
    /// <param name="format">How prompts become ids (as ingest).</param>
    /// <param name="store">Where the outputs go.</param>
    /// <param name="prefix">Folder of the outputs in <paramref name="store"/> ("" for its root).</param>
    /// <param name="workDirectory">Local folder for checkpoints.</param>
    /// <param name="progress">Training steps.</param>
    /// <param name="log">Notes (reference log-probs reused or computed).</param>
    /// <param name="referenceProgress">Pairs done of total in the reference pass (none when its log-probs are reused).</param>
    /// <param name="cancellationToken">Stops at a step boundary after a checkpoint.</param>
    /// <exception cref="InvalidDataException">No pair is trainable.</exception>
    public async Task<DpoStageResult> RunAsync(StoreFile pairs, string policyDirectory, string referenceDirectory, PromptFormat format,
        IArtifactStore store, string prefix, string workDirectory, IProgress<TrainProgress>? progress = null, Action<string>? log = null,
        IProgress<(int Done, int Total)>? referenceProgress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(store);
        var encoded = await EncodeAsync(pairs, format.Load(policyDirectory), cancellationToken).ConfigureAwait(false);
        var rejects = await ParquetArtifacts.WriteAsync(store, StagePaths.Join(prefix, "rejects.parquet"), encoded.Rejects, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (encoded.Pairs.Count == 0)
            throw new InvalidDataException($"{pairs.Uri}: no trainable pairs ({encoded.Rejects.Count} of {encoded.RowsIn} rejected, reasons in {rejects.Uri}); " +
                "raise max_length / max_prompt_length, lower split.threshold, or raise ingest.candidates_per_prompt.");
        var (reference, reused, referencePath) = await ReferencePass.ComputeOrReuseAsync(store, prefix, encoded.Pairs, referenceDirectory,
            options.PerDeviceTrainBatchSize, options.Dtype, referenceProgress, cancellationToken).ConfigureAwait(false);
        log?.Invoke($"reference log-probs for {encoded.Pairs.Count} pairs {(reused ? "reused" : "computed")}: {store.UriOf(referencePath)}");
        if (DpoTrainer.MemoryWarning(options, policyDirectory) is { } warning) log?.Invoke(warning);
        var result = new DpoTrainer(options).Train(policyDirectory, encoded.Pairs, reference, workDirectory, progress, cancellationToken);
        var metrics = await ParquetArtifacts.WriteAsync(store, StagePaths.Join(prefix, "metrics.parquet"), result.Metrics, cancellationToken: cancellationToken).ConfigureAwait(false);
        await StagePaths.KeepTensorBoardAsync(store, prefix, workDirectory, cancellationToken).ConfigureAwait(false);
        var model = await TrainedModel.KeepAsync(store, result.FinalCheckpoint, StagePaths.Join(prefix, "model"), cancellationToken).ConfigureAwait(false);
        return new DpoStageResult(encoded.RowsIn, encoded.Pairs.Count, rejects, metrics, model, result.Steps, result.Metrics, referencePath, reused);
    }

    /// <summary>Removes what an earlier attempt left (checkpoints here and in the store), so the next attempt starts afresh.</summary>
    public static Task ClearAsync(IArtifactStore store, string prefix, string workDirectory, CancellationToken cancellationToken = default) =>
        StagePaths.ClearCheckpointsAsync(store, prefix, workDirectory, cancellationToken);
}
