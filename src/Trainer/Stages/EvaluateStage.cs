using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Evaluation;

namespace PrefPipe.Trainer.Stages;

/// <summary>What the evaluation unit wrote.</summary>
/// <param name="RowsIn">Held-out rows read.</param>
/// <param name="Prompts">Prompts sampled and scored.</param>
/// <param name="Samples">The samples artifact (both policies' samples with rewards and KL).</param>
/// <param name="Rejects">The rejects artifact (rows that are no usable prompt).</param>
/// <param name="Summary">Win rate, mean rewards, mean KL.</param>
public sealed record EvaluateStageResult(long RowsIn, int Prompts, ArtifactInfo Samples, ArtifactInfo Rejects, EvaluationSummary Summary);

/// <summary>
/// The evaluation unit: held-out prompts, the starting and the final policy and the reward model → samples of both with
/// rewards and KL (<c>samples.parquet</c>), their reward distributions (<c>reward_distributions.png</c>) and rejects.
/// </summary>
public sealed class EvaluateStage(EvaluationOptions options)
{
    /// <summary>The stage name in rejects.</summary>
    public const string Name = "evaluate";

    /// <summary>Evaluates <paramref name="finalPolicy"/> against <paramref name="startPolicy"/>.</summary>
    /// <param name="prompts">Held-out prompts (JSON lines or Parquet); rows are named eval-ROW.</param>
    /// <param name="startPolicy">The starting policy (its tokenizer and template encode the prompts).</param>
    /// <param name="finalPolicy">The trained policy.</param>
    /// <param name="rewardDirectory">The reward model's folder.</param>
    /// <param name="format">How prompts become ids (as ingest).</param>
    /// <param name="store">Where the outputs go.</param>
    /// <param name="prefix">Folder of the outputs in <paramref name="store"/>.</param>
    /// <param name="progress">Samples generated of total (both policies).</param>
    /// <param name="cancellationToken">Checked per decoding step.</param>
    /// <exception cref="InvalidDataException">No usable prompt.</exception>
    public async Task<EvaluateStageResult> RunAsync(StoreFile prompts, string startPolicy, string finalPolicy, string rewardDirectory, PromptFormat format,
        IArtifactStore store, string prefix, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(store);
        // Rows are named by position (eval-ROW): sample seeds derive from the name, so results do not move with an id column.
        var set = await TrainingPrompts.ReadAsync(prompts, format.Load(startPolicy), Name, "eval-", new PromptSourceOptions { IdColumns = [] }, cancellationToken).ConfigureAwait(false);
        var rejects = await ParquetArtifacts.WriteAsync(store, StagePaths.Join(prefix, "rejects.parquet"), set.Rejects, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (set.Prompts.Count == 0)
            throw new InvalidDataException($"{prompts.Uri}: no usable evaluation prompts ({set.Rejects.Count} of {set.RowsIn} rows rejected, reasons in {rejects.Uri}); expected a prompt or messages per line/row.");
        string chart = Path.Combine(Path.GetTempPath(), $"prefpipe-eval-{Guid.NewGuid():N}.png");
        try
        {
            var (summary, rows) = PolicyEvaluator.Evaluate(startPolicy, finalPolicy, rewardDirectory, set.Prompts, options, chart, progress, cancellationToken);
            var samples = await ParquetArtifacts.WriteAsync(store, StagePaths.Join(prefix, "samples.parquet"), rows, cancellationToken: cancellationToken).ConfigureAwait(false);
            await store.CommitAsync(StagePaths.Join(prefix, "reward_distributions.png"), chart, cancellationToken).ConfigureAwait(false);
            return new EvaluateStageResult(set.RowsIn, set.Prompts.Count, samples, rejects, summary);
        }
        finally
        {
            File.Delete(chart);
        }
    }
}
