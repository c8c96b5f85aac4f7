using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// Per-pair sequence log-probabilities an objective needs, for a batch of B pairs. All tensors are [B]; policy terms
/// carry gradient, reference terms and dispersion do not (they come from the stored reference pass).
/// Log-probs count response tokens only (prompt and padding masked).
/// </summary>
/// <param name="PolicyChosen">S_θ(y_w): summed log-prob of the chosen response under the policy. [B]</param>
/// <param name="PolicyRejected">S_θ(y_l). [B]</param>
/// <param name="ReferenceChosen">S_ref(y_w), from the reference pass. [B]</param>
/// <param name="ReferenceRejected">S_ref(y_l). [B]</param>
/// <param name="ChosenTokens">|y_w|: response token count (≥ 1). [B]</param>
/// <param name="RejectedTokens">|y_l|. [B]</param>
/// <param name="Dispersion">H̄(x) ∈ (0, 1): MallowsPO's normalised reference entropy per pair, or null. [B]</param>
public sealed record PreferenceBatch(
    Tensor PolicyChosen,
    Tensor PolicyRejected,
    Tensor ReferenceChosen,
    Tensor ReferenceRejected,
    Tensor ChosenTokens,
    Tensor RejectedTokens,
    Tensor? Dispersion = null)
{
    /// <summary>A_θ(y_w) = S_θ(y_w)/|y_w|. [B]</summary>
    public Tensor PolicyChosenMean => PolicyChosen / ChosenTokens;

    /// <summary>A_θ(y_l). [B]</summary>
    public Tensor PolicyRejectedMean => PolicyRejected / RejectedTokens;

    /// <summary>A_ref(y_w). [B]</summary>
    public Tensor ReferenceChosenMean => ReferenceChosen / ChosenTokens;

    /// <summary>A_ref(y_l). [B]</summary>
    public Tensor ReferenceRejectedMean => ReferenceRejected / RejectedTokens;

    /// <summary>Builds a float64 batch from plain numbers (tests, small tools).</summary>
    public static PreferenceBatch FromValues(double[] policyChosen, double[] policyRejected, double[] referenceChosen,
        double[] referenceRejected, double[] chosenTokens, double[] rejectedTokens, double[]? dispersion = null, bool requiresGrad = false)
    {
        ArgumentNullException.ThrowIfNull(policyChosen);
        ArgumentNullException.ThrowIfNull(policyRejected);
        return new PreferenceBatch(
            tensor(policyChosen, float64, requires_grad: requiresGrad),
            tensor(policyRejected, float64, requires_grad: requiresGrad),
            tensor(referenceChosen, float64),
            tensor(referenceRejected, float64),
            tensor(chosenTokens, float64),
            tensor(rejectedTokens, float64),
            dispersion is null ? null : tensor(dispersion, float64));
    }

    /// <summary>The dispersion or an error that says which objective needs it and where it comes from.</summary>
    internal Tensor RequireDispersion(string objective) =>
        Dispersion ?? throw new InvalidOperationException(
            $"Objective '{objective}' needs the reference dispersion H̄(x) per pair; compute the reference pass with entropies (MallowsPO) first.");
}

/// <summary>What an objective returns: the per-pair loss and its own named terms (for metrics).</summary>
/// <param name="Loss">Per-pair loss. [B]</param>
/// <param name="Terms">Objective-specific terms by metric name, e.g. "mipo/q", each [B]. Detached.</param>
public sealed record ObjectiveOutput(Tensor Loss, IReadOnlyDictionary<string, Tensor> Terms);
