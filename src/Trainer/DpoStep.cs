using System.Globalization;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.Scoring;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Optimization;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>
/// One optimizer step of <see cref="DpoTrainer"/>: per micro-batch (<see cref="Accumulate"/>) the policy's forward pass
/// over the chosen and rejected completions, the objective against the reference log-probs, the backward pass of
/// loss ÷ accumulation steps and the metrics; then (<see cref="Update"/>) the gradient norm, clipped when
/// max_grad_norm &gt; 0, a refusal of non-finite values before any weight changes, the AdamW update and zeroed
/// gradients. The trainer runs it and the performance suite times it, so the figures are the shipping step's.
/// </summary>
internal sealed class DpoStep(CausalLM policy, FlatAdamW optimizer, IPreferenceObjective objective, int gradientAccumulationSteps, double maxGradNorm)
{
    /// <summary>Forward, objective and backward for one micro-batch of B pairs; adds its metrics ÷ accumulation steps to <paramref name="sums"/>.</summary>
    /// <param name="inputs">[2B, seq]: the chosen completions in rows 0..B−1, the rejected ones in rows B..2B−1.</param>
    /// <param name="referenceChosen">S_ref(y_w). [B] float32</param>
    /// <param name="referenceRejected">S_ref(y_l). [B] float32</param>
    /// <param name="dispersion">MallowsPO's H̄(x) when the objective needs it, else null. [B] float32</param>
    /// <param name="sums">The step's metrics so far (TRL names).</param>
    /// <returns>The micro-batch's tokens (prompt and completions, padding excluded).</returns>
    public long Accumulate(CompletionBatch inputs, Tensor referenceChosen, Tensor referenceRejected, Tensor? dispersion, Dictionary<string, double> sums)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(referenceChosen);
        ArgumentNullException.ThrowIfNull(sums);
        using var scope = NewDisposeScope();
        var scores = CompletionScorer.Score(policy, inputs);                 // sums [2B] float32, with grad
        long n = referenceChosen.shape[0];
        var preference = new PreferenceBatch(
            scores.LogprobSum.narrow(0, 0, n), scores.LogprobSum.narrow(0, n, n),
            referenceChosen, referenceRejected,
            scores.TokenCount.narrow(0, 0, n).clamp_min(1), scores.TokenCount.narrow(0, n, n).clamp_min(1),
            dispersion);
        var output = objective.Compute(preference);
        using (ComputeClock.Measure()) (output.Loss.mean() / gradientAccumulationSteps).backward();
        foreach (var (k, v) in PreferenceMetrics.Compute(preference, objective, output))
            sums[k] = sums.GetValueOrDefault(k) + v / gradientAccumulationSteps;
        return inputs.AttentionMask.sum().item<long>();
    }

    /// <summary>Ends the step: gradient norm (clipped), the finite check, the AdamW update at <paramref name="learningRate"/>, zeroed gradients.</summary>
    /// <param name="learningRate">This step's learning rate.</param>
    /// <param name="stepsDone">Optimizer steps done before this one (for the message when it diverges).</param>
    /// <param name="sums">The step's metrics, checked with the gradient norm.</param>
    /// <returns>The gradient norm before clipping.</returns>
    /// <exception cref="InvalidOperationException">A metric or the gradient norm is not finite; the update was not applied.</exception>
    public double Update(double learningRate, long stepsDone, IReadOnlyDictionary<string, double> sums)
    {
        ArgumentNullException.ThrowIfNull(sums);
        double gradNorm;
        using (ComputeClock.Measure())
        {
            using var norm = maxGradNorm > 0 ? optimizer.ClipGradNorm(maxGradNorm) : optimizer.GradNorm(); // [1] float32
            gradNorm = norm.item<float>();
        }
        // Before the update, so NaN never reaches the weights or a checkpoint. IsFinite, not comparisons: NaN compares false.
        var bad = sums.Append(new KeyValuePair<string, double>("grad_norm", gradNorm)).Where(kv => !double.IsFinite(kv.Value)).ToList();
        if (bad.Count > 0)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"training diverged at step {stepsDone + 1}: {string.Join(", ", bad.Select(kv => $"{kv.Key} = {kv.Value}"))}; the update was not applied and no checkpoint was written from it. Lower the learning rate, or check the reference log-probs and the data."));
        using (ComputeClock.Measure())
        {
            optimizer.StepWith(learningRate);
            optimizer.ZeroGrad();
        }
        return gradNorm;
    }
}
