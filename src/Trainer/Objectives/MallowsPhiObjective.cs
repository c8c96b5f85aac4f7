using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// MallowsPO-φ [ours]: L = −log g_φ(s), s = β·Δ (α = 1, γ = 0), φ = H̄(x)^φ*, with the Kendall–Mallows pairwise link
/// g_φ(s) = (s+1)/(1−φ^{s+1}) − s/(1−φ^s) for s &gt; 0, g_φ(0) = 1/2, g_φ(s) = 1 − g_φ(−s) for s &lt; 0.
/// </summary>
/// <remarks>
/// Chen et al. 2024, arXiv 2405.14953; the paper's own φ link could not be read, so this form is our reading of the
/// Mallows-φ pairwise marginal (docs: ../shared/docs/objectives.md). Computed in float64 with expm1; φ is kept in
/// [1e-6, 1 − 1e-6]. g_φ jumps at s = 0: its limit from above is 1/(1−φ) − 1/(−log φ) &gt; 1/2, so the loss is
/// discontinuous there (by the definition, not by numerics); gradients are well defined on either side.
/// </remarks>
internal sealed class MallowsPhiObjective(double beta, double phiStar) : IPreferenceObjective
{
    /// <inheritdoc />
    public string Name => "mallows_phi";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => true;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var s = (beta * MallowsTerms.Delta(batch, alpha: 1, gamma: 0, lengthNormalized: false)).to(float64); // [B]
        var phi = batch.RequireDispersion(Name).to(float64).clamp(1e-12, 1 - 1e-12).pow(phiStar).clamp(1e-6, 1 - 1e-6); // [B]
        var g = Link(s, phi);
        var loss = -g.clamp_min(1e-300).log();
        return new ObjectiveOutput(loss.to(batch.PolicyChosen.dtype), new Dictionary<string, Tensor> { ["mallows/phi"] = phi.detach() });
    }

    /// <summary>g_φ(s) elementwise (float64).</summary>
    internal static Tensor Link(Tensor s, Tensor phi)
    {
        var logPhi = phi.log();                                   // < 0
        var a = s.abs();
        // (a+1)/(1−φ^{a+1}) and a/(1−φ^a) with 1−φ^x = −expm1(x·log φ); the second tends to 1/(−log φ) as a → 0.
        var first = (a + 1) / (-((a + 1) * logPhi).expm1());
        var safeA = where(a > 0, a, ones_like(a));
        var second = where(a > 0, safeA / (-(safeA * logPhi).expm1()), -1 / logPhi);
        var positive = first - second;                            // g_φ(|s|) ∈ (1/2, 1)
        var g = where(s > 0, positive, 1 - positive);
        return where(s == 0, full_like(g, 0.5), g);
    }
}
