using static TorchSharp.torch;

namespace PrefPipe.Trainer.Objectives;

/// <summary>Batch metrics with TRL's names: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, logps/*.</summary>
public static class PreferenceMetrics
{
    /// <summary>Means over the batch of the implicit rewards, log-probs, the loss and the objective's own terms.</summary>
    public static IReadOnlyDictionary<string, double> Compute(PreferenceBatch batch, IPreferenceObjective objective, ObjectiveOutput output)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(output);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var chosen = objective.Beta * (batch.PolicyChosen - batch.ReferenceChosen).detach();     // [B]
        var rejected = objective.Beta * (batch.PolicyRejected - batch.ReferenceRejected).detach(); // [B]
        var metrics = new Dictionary<string, double>
        {
            ["loss"] = Mean(output.Loss.detach()),
            ["rewards/chosen"] = Mean(chosen),
            ["rewards/rejected"] = Mean(rejected),
            ["rewards/margins"] = Mean(chosen - rejected),
            ["rewards/accuracies"] = Mean((chosen > rejected).to(float64)),
            ["logps/chosen"] = Mean(batch.PolicyChosen.detach()),
            ["logps/rejected"] = Mean(batch.PolicyRejected.detach()),
        };
        foreach (var (name, value) in output.Terms) metrics[name] = Mean(value);
        return metrics;
    }

    private static double Mean(Tensor t) => t.to(float64).mean().item<double>();
}
