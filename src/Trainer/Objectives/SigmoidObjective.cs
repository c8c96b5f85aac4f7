using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefPipe.Trainer.Objectives;

/// <summary>DPO: L = −(1−ε)·log σ(h) − ε·log σ(−h), h = β·[(S_θ(y_w) − S_ref(y_w)) − (S_θ(y_l) − S_ref(y_l))].</summary>
/// <remarks>Rafailov et al. 2023, "Direct Preference Optimization", arXiv 2305.18290; label smoothing as in cDPO / TRL.</remarks>
internal sealed class SigmoidObjective(double beta, double labelSmoothing, bool lengthNormalized) : IPreferenceObjective
{
    /// <inheritdoc />
    public string Name => lengthNormalized ? "sigmoid_norm" : "sigmoid";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => false;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        // h: [B]
        var h = lengthNormalized
            ? beta * ((batch.PolicyChosenMean - batch.ReferenceChosenMean) - (batch.PolicyRejectedMean - batch.ReferenceRejectedMean))
            : beta * ((batch.PolicyChosen - batch.ReferenceChosen) - (batch.PolicyRejected - batch.ReferenceRejected));
        return new ObjectiveOutput(SmoothedLogSigmoidLoss(h, labelSmoothing), new Dictionary<string, Tensor>());
    }

    /// <summary>−(1−ε)·log σ(h) − ε·log σ(−h), stable for large |h|.</summary>
    internal static Tensor SmoothedLogSigmoidLoss(Tensor h, double epsilon) =>
        epsilon == 0 ? -F.logsigmoid(h) : -(1 - epsilon) * F.logsigmoid(h) - epsilon * F.logsigmoid(-h);
}
