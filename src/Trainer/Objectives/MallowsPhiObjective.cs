using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// MallowsPO-φ [ours]: L = −log g_φ(s), s = β·Δ (α = 1, γ = 0), φ = H̄(x)^φ*, with the Kendall–Mallows pairwise link
/// g_φ(s) = (s+1)/(1−φ^{s+1}) − s/(1−φ^s) for s &gt; 0, g_φ(0) = 1/2, g_φ(s) = 1 − g_φ(−s) for s &lt; 0.
/// </summary>
/// <remarks>
/// Chen et al. 2024, "MallowsPO: Fine-Tune Your LLM with Preference Dispersions", arXiv 2405.14953 (v1 titled
/// "Mallows-DPO"). The paper's own φ link could not be read, so this form is our reading of the Mallows-φ pairwise
/// marginal (docs: ../shared/docs/objectives.md).
/// <para>
/// Computed in log space, float64. With L = −log φ and E(u) = u/(e^u − 1) (E(0) = 1, decreasing),
/// g_φ(a) = 1 − q(a) for a &gt; 0 and q(a) = [E(L·a) − E(L·(a+1))]/L ∈ (0, 1/2), so the loss is −log1p(−q(a)) for
/// s = a &gt; 0 and −log q(a) for s = −a &lt; 0, with log q = log E(La) + log(−expm1(log E(L(a+1)) − log E(La))) − log L and
/// log E(u) = log u − u − log(−expm1(−u)) (a series near u = 0). Value and gradient stay finite and accurate for any s:
/// nothing overflows or saturates, and the loss falls smoothly to 0 as s → +∞ (≈ e^{−Ls}) and grows ≈ L·|s| as s → −∞.
/// φ is kept in [1e-6, 1 − 1e-6].
/// </para>
/// <para>
/// g_φ jumps at s = 0 (by the definition, not by numerics): its limit from above is 1/(1−φ) − 1/(−log φ) &gt; 1/2, from
/// below one minus that. Its slope g′ is the same on both sides, so at exactly s = 0 the loss is log 2 and its gradient
/// is −g′(0)/g(0) = −2·g′(0), between the one-sided slopes; a pair whose policy still equals the reference therefore
/// gets a gradient (the same direction as DPO's).
/// </para>
/// </remarks>
internal sealed class MallowsPhiObjective(double beta, double phiStar) : IPreferenceObjective
{
    /// <summary>Below this u, log E(u) is taken from its series (the closed form is 0/0 at u = 0).</summary>
    private const double SeriesBelow = 1e-3;

    /// <inheritdoc />
    public string Name => "mallows_phi";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => true;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var s = (beta * MallowsTerms.Delta(batch, alpha: 1, gamma: 0, lengthNormalized: false)).to(float64); // [B] float64
        var phi = batch.RequireDispersion(Name).to(float64).clamp(1e-12, 1 - 1e-12).pow(phiStar).clamp(1e-6, 1 - 1e-6); // [B] float64
        var loss = NegLogLink(s, phi); // [B] float64
        return new ObjectiveOutput(loss.to(batch.PolicyChosen.dtype), new Dictionary<string, Tensor> { ["mallows/phi"] = phi.detach() });
    }

    /// <summary>−log g_φ(s) elementwise, in log space (float64; φ in (0, 1)).</summary>
    internal static Tensor NegLogLink(Tensor s, Tensor phi)
    {
        var l = -phi.log();                       // L = −log φ > 0
        var a = where(s < 0, -s, s);              // |s|, with slope +1 (not abs's 0) at s = 0
        var logE1 = LogE(l * a);                  // log E(L·|s|)
        var logE2 = LogE(l * (a + 1));            // log E(L·(|s|+1)) < log E(L·|s|)
        var logQ = logE1 + (logE2 - logE1).expm1().neg().log() - l.log(); // log q(|s|)
        var q = logQ.exp();                       // q(|s|) = 1 − g_φ(|s|) ∈ (0, 1/2)
        var positive = -(-q).log1p();             // s > 0: −log(1 − q)
        var negative = -logQ;                     // s < 0: −log q
        var zero = -(0.5 - (q - q.detach())).log(); // s = 0: value log 2, slope −g′(0)/g(0) with g′ = −q′
        return where(s > 0, positive, where(s < 0, negative, zero));
    }

    /// <summary>g_φ(s) elementwise (float64), from <see cref="NegLogLink"/>.</summary>
    internal static Tensor Link(Tensor s, Tensor phi) => NegLogLink(s, phi).neg().exp();

    /// <summary>log E(u), E(u) = u/(e^u − 1), for u ≥ 0; the series −u/2 − u²/24 + u⁴/2880 below <see cref="SeriesBelow"/>.</summary>
    private static Tensor LogE(Tensor u)
    {
        var small = u < SeriesBelow;
        var safe = where(small, full_like(u, 1.0), u); // keeps the unused branch (and its gradient) finite at u = 0
        var closed = safe.log() - safe - (-(-safe).expm1()).log();
        var u2 = u.square();
        var series = -u / 2 - u2 / 24 + u2.square() / 2880;
        return where(small, series, closed);
    }
}
