using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// MallowsPO-θ: L = −(1−ε)·log σ(β·c(x)·Δ) − ε·log σ(−β·c(x)·Δ),
/// Δ = [S_θ(y_w) − S_θ(y_l)] − α·[S_ref(y_w) − S_ref(y_l)] − γ, c(x) = −φ*·log H̄(x) (or c ≡ 1 when dispersion is off,
/// which is DPO). ε = 0 (no label smoothing) gives −log σ(β·c(x)·Δ).
/// </summary>
/// <remarks>
/// Chen et al. 2024, "MallowsPO: Fine-Tune Your LLM with Preference Dispersions", arXiv 2405.14953 (v1 titled
/// "Mallows-DPO"); the authors' code (loss_type mallows_dpo) applies label smoothing ε exactly as conservative DPO does,
/// to the dispersion-scaled logit. DPO form: α = 1, γ = 0, sums, β ≈ 0.1. The authors' plugin defaults: α = 0, mean
/// log-probs, β = 10.
/// <para>
/// c(x) is the dispersion scaling: prompts whose reference next-token distributions are spread out (H̄ near 1, many
/// acceptable answers) get a small c, so their preference margin counts less; confident prompts (H̄ near 0) get a large
/// c. φ* sets how strongly. γ is a target margin in log-prob units (sums, or means when length-normalised): the loss
/// treats a pair as won only when the policy's margin over α times the reference margin exceeds γ, so γ &gt; 0 keeps
/// pushing pairs that DPO would already call separated. γ sits inside Δ, so it is scaled by β·c(x) like the margin:
/// the logit shifts by −β·c(x)·γ per pair.
/// </para>
/// </remarks>
internal sealed class MallowsThetaObjective(double beta, double labelSmoothing, double alpha, double gamma, double phiStar, bool lengthNormalized, bool useDispersion)
    : IPreferenceObjective
{
    /// <inheritdoc />
    public string Name => "mallows_theta";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => useDispersion;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var delta = MallowsTerms.Delta(batch, alpha, gamma, lengthNormalized); // [B]
        var c = useDispersion ? MallowsTerms.C(batch.RequireDispersion(Name), phiStar) : ones_like(delta);
        var logit = beta * c * delta; // [B]
        return new ObjectiveOutput(SigmoidObjective.SmoothedLogSigmoidLoss(logit, labelSmoothing), new Dictionary<string, Tensor> { ["mallows/c"] = c.detach() });
    }
}

/// <summary>Shared MallowsPO pieces.</summary>
internal static class MallowsTerms
{
    /// <summary>Δ = [X_θ(y_w) − X_θ(y_l)] − α·[X_ref(y_w) − X_ref(y_l)] − γ with X = S (sums) or A (means). [B]</summary>
    public static Tensor Delta(PreferenceBatch b, double alpha, double gamma, bool lengthNormalized) => lengthNormalized
        ? (b.PolicyChosenMean - b.PolicyRejectedMean) - alpha * (b.ReferenceChosenMean - b.ReferenceRejectedMean) - gamma
        : (b.PolicyChosen - b.PolicyRejected) - alpha * (b.ReferenceChosen - b.ReferenceRejected) - gamma;

    /// <summary>c(x) = −φ*·log H̄(x); H̄ is clamped into (0, 1) so c stays finite and positive. [B]</summary>
    public static Tensor C(Tensor dispersion, double phiStar) => -phiStar * dispersion.clamp(1e-12, 1 - 1e-12).log();
}
