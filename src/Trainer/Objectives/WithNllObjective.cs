using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>Adds an NLL (SFT) term on the chosen response: L = L_inner + w·(−A_θ(y_w)) — RPO's regulariser.</summary>
/// <remarks>Pang et al. 2024, "Iterative Reasoning Preference Optimization" (RPO), arXiv 2404.19733.</remarks>
internal sealed class WithNllObjective(IPreferenceObjective inner, double weight) : IPreferenceObjective
{
    /// <inheritdoc />
    public string Name => inner.Name;

    /// <inheritdoc />
    public double Beta => inner.Beta;

    /// <inheritdoc />
    public bool NeedsDispersion => inner.NeedsDispersion;

    /// <inheritdoc />
    public ObjectiveOutput Compute(PreferenceBatch batch)
    {
        var output = inner.Compute(batch);
        var nll = -batch.PolicyChosenMean; // [B]
        var terms = new Dictionary<string, Tensor>(output.Terms) { ["nll_loss"] = nll.detach() };
        return new ObjectiveOutput(output.Loss + weight * nll, terms);
    }
}
