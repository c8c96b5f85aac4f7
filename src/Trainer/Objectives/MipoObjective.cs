using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefPipe.Trainer.Objectives;

/// <summary>How MIPO modulates the intervention from the reference margin K.</summary>
public enum MipoModulation
{
    /// <summary>q(K) = softplus(K): the paper's choice.</summary>
    Softplus,

    /// <summary>q(K) = K: reduces MIPO to sigmoid_norm (a check, and an ablation).</summary>
    Identity,

    /// <summary>q(K) = a constant γ/β: reduces MIPO to SimPO's margin form.</summary>
    Constant,
}

/// <summary>MIPO: L = −log σ(β·[A_θ(y_w) − A_θ(y_l) − q(K)]), K = A_ref(y_w) − A_ref(y_l), q = softplus.</summary>
/// <remarks>Jang 2024, "Modulated Intervention Preference Optimization", arXiv 2409.17545 (paper and authors' code).
/// β multiplies q(K) too; the paper's default β is 20 (5–25 works).</remarks>
internal sealed class MipoObjective(double beta, MipoModulation modulation, double constant) : IPreferenceObjective
{
    /// <inheritdoc />
    public string Name => "mipo";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => false;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var k = batch.ReferenceChosenMean - batch.ReferenceRejectedMean; // [B], no gradient (reference)
        var q = modulation switch
        {
            MipoModulation.Softplus => F.softplus(k),
            MipoModulation.Identity => k,
            _ => full_like(k, constant),
        };
        var h = beta * (batch.PolicyChosenMean - batch.PolicyRejectedMean - q); // [B]
        return new ObjectiveOutput(-F.logsigmoid(h), new Dictionary<string, Tensor> { ["mipo/q"] = q.detach() });
    }
}
