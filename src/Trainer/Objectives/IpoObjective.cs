using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>IPO: L = (h − 1/(2β))², h = (A_θ(y_w) − A_ref(y_w)) − (A_θ(y_l) − A_ref(y_l)) on mean log-probs, as TRL does.</summary>
/// <remarks>Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences", arXiv 2310.12036.</remarks>
internal sealed class IpoObjective(double beta) : IPreferenceObjective
{
    /// <inheritdoc />
    public string Name => "ipo";

    /// <inheritdoc />
    public double Beta => beta;

    /// <inheritdoc />
    public bool NeedsDispersion => false;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var h = (batch.PolicyChosenMean - batch.ReferenceChosenMean) - (batch.PolicyRejectedMean - batch.ReferenceRejectedMean); // [B]
        return new ObjectiveOutput((h - 1 / (2 * beta)).square(), new Dictionary<string, Tensor>());
    }
}
