using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// BCR [ours where the paper could not be read]: L = L_DPO + λ·max(0, −r_w − δ), r_w = S_θ(y_w) − S_ref(y_w)
/// (or the mean form). δ ≥ 0 is the budget the chosen log-likelihood may drop below the reference before it is
/// penalised; δ = 0 is DPOP-like, λ = 0 is DPO. Defaults λ = 1, δ = 1 (sum form).
/// </summary>
/// <remarks>Chen et al. 2024, "Towards Improved Preference Optimization Pipeline: from Data Generation to Budget-Controlled
/// Regularization", arXiv 2411.05875.</remarks>
internal sealed class BcrObjective(double beta, double labelSmoothing, double lambda, double budget, bool lengthNormalized) : IPreferenceObjective
{
    private readonly SigmoidObjective _dpo = new(beta, labelSmoothing, lengthNormalized: false);

    /// <inheritdoc />
    public string Name => "bcr";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => false;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var dpo = _dpo.Compute(batch).Loss; // [B]
        var rw = lengthNormalized ? batch.PolicyChosenMean - batch.ReferenceChosenMean : batch.PolicyChosen - batch.ReferenceChosen;
        var penalty = (-rw - budget).clamp_min(0); // [B]
        return new ObjectiveOutput(dpo + lambda * penalty, new Dictionary<string, Tensor> { ["bcr/penalty"] = penalty.detach() });
    }
}
