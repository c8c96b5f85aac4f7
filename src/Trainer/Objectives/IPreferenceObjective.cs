namespace PrefPipe.Trainer.Objectives;

/// <summary>A preference objective: per-pair loss from policy and stored reference log-probs.</summary>
public interface IPreferenceObjective
{
    /// <summary>The name users choose it by (TRL's <c>loss_type</c> where one exists).</summary>
    string Name { get; }

    /// <summary>β: the scale of the implicit reward, used for the rewards/* metrics too.</summary>
    double Beta { get; }

    /// <summary>Whether <see cref="PreferenceBatch.Dispersion"/> must be present.</summary>
    bool NeedsDispersion { get; }

    /// <summary>Computes the per-pair loss. Tensors stay in the caller's dispose scope.</summary>
    ObjectiveOutput Compute(PreferenceBatch batch);
}
