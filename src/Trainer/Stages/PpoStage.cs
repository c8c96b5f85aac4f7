using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Ppo;

namespace PrefPipe.Trainer.Stages;

/// <summary>What the PPO unit wrote.</summary>
/// <param name="RowsIn">Prompt rows read.</param>
/// <param name="Prompts">Prompts used for rollouts.</param>
/// <param name="Rejects">The rejects artifact (rows that are no usable prompt, with reasons).</param>
/// <param name="Metrics">The metrics artifact.</param>
/// <param name="Model">The final checkpoint.</param>
/// <param name="Steps">PPO iterations done.</param>
/// <param name="MetricRows">The logged metrics.</param>
public sealed record PpoStageResult(long RowsIn, int Prompts, ArtifactInfo Rejects, ArtifactInfo Metrics, TrainedModel Model, long Steps, IReadOnlyList<MetricRow> MetricRows);

/// <summary>
/// The PPO unit: prompts (our prompts artifact, preference pairs such as the difficult set, or a prompt file) → the policy
/// trained by PPO against the ONNX reward model with a KL penalty to the reference. Writes <c>rejects.parquet</c>,
/// <c>metrics.parquet</c> and, on a remote store, <c>model/</c> under its prefix; checkpoints go to the local work folder.
/// </summary>
public sealed class PpoStage
{
    private readonly PpoOptions options;

    /// <summary>A unit with these options (checked now: a bad value is refused before any work, naming the option).</summary>
    public PpoStage(PpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    /// <summary>The stage name in rejects and metrics.</summary>
    public const string Name = "ppo";

    /// <summary>An iteration's logged metrics in one short line (reward, KL, losses).</summary>
    public static string Describe(IReadOnlyDictionary<string, double> metrics) => PpoTrainer.Describe(metrics);

    /// <summary>Trains <paramref name="policyDirectory"/> on rollouts from <paramref name="prompts"/>.</summary>
    /// <param name="prompts">Where the prompts are.</param>
    /// <param name="policyDirectory">The starting policy.</param>
    /// <param name="referenceDirectory">The frozen reference for the KL penalty.</param>
    /// <param name="rewardDirectory">The ONNX reward model's folder.</param>
    /// <param name="format">How prompts become ids (as ingest); applied with the tokenizer of <paramref name="tokenizerDirectory"/>.</param>
    /// <param name="tokenizerDirectory">The folder whose tokenizer and template encode the prompts (the SFT policy ingest generated with).</param>
    /// <param name="store">Where the outputs go.</param>
    /// <param name="prefix">Folder of the outputs in <paramref name="store"/> ("" for its root).</param>
    /// <param name="workDirectory">Local folder for checkpoints.</param>
    /// <param name="progress">Iterations.</param>
    /// <param name="cancellationToken">Checked per iteration and decoding step.</param>
    /// <exception cref="InvalidDataException">No usable prompt.</exception>
    public async Task<PpoStageResult> RunAsync(StoreFile prompts, string policyDirectory, string referenceDirectory, string rewardDirectory,
        PromptFormat format, string tokenizerDirectory, IArtifactStore store, string prefix, string workDirectory,
        IProgress<TrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(store);
        var set = await TrainingPrompts.ReadAsync(prompts, format.Load(tokenizerDirectory), Name, cancellationToken: cancellationToken).ConfigureAwait(false);
        var rejects = await ParquetArtifacts.WriteAsync(store, StagePaths.Join(prefix, "rejects.parquet"), set.Rejects, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (set.Prompts.Count == 0)
            throw new InvalidDataException($"{prompts.Uri}: no usable prompts for PPO ({set.Rejects.Count} of {set.RowsIn} rows rejected, reasons in {rejects.Uri}).");
        var result = new PpoTrainer(options).Train(policyDirectory, referenceDirectory, rewardDirectory, set.Prompts, workDirectory, progress, cancellationToken);
        var metrics = await ParquetArtifacts.WriteAsync(store, StagePaths.Join(prefix, "metrics.parquet"), result.Metrics, cancellationToken: cancellationToken).ConfigureAwait(false);
        await StagePaths.KeepTensorBoardAsync(store, prefix, workDirectory, cancellationToken).ConfigureAwait(false);
        var model = await TrainedModel.KeepAsync(store, result.FinalCheckpoint, StagePaths.Join(prefix, "model"), cancellationToken).ConfigureAwait(false);
        return new PpoStageResult(set.RowsIn, set.Prompts.Count, rejects, metrics, model, result.Steps, result.Metrics);
    }

    /// <summary>Removes what an earlier attempt left (checkpoints here and in the store), so the next attempt starts afresh.</summary>
    public static Task ClearAsync(IArtifactStore store, string prefix, string workDirectory, CancellationToken cancellationToken = default) =>
        StagePaths.ClearCheckpointsAsync(store, prefix, workDirectory, cancellationToken);
}
