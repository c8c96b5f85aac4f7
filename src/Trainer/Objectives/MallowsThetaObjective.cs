using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// MallowsPO-θ: L = −log σ(β·c(x)·Δ), Δ = [S_θ(y_w) − S_θ(y_l)] − α·[S_ref(y_w) − S_ref(y_l)] − γ,
/// c(x) = −φ*·log H̄(x) (or c ≡ 1 when dispersion is off, which is DPO).
/// </summary>
/// <remarks>Chen et al. 2024, "On Extending Direct Preference Optimization to Accommodate Ranks" (MallowsPO),
/// arXiv 2405.14953. DPO form: α = 1, γ = 0, sums, β ≈ 0.1. The authors' plugin defaults: α = 0, mean log-probs, β = 10.</remarks>
internal sealed class MallowsThetaObjective(double beta, double alpha, double gamma, double phiStar, bool lengthNormalized, bool useDispersion)
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
        return new ObjectiveOutput(-F.logsigmoid(beta * c * delta), new Dictionary<string, Tensor> { ["mallows/c"] = c.detach() });
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
