namespace PrefPipe.Trainer.Objectives;

/// <summary>Creates the objective named by <see cref="ObjectiveOptions.LossType"/>.</summary>
public static class ObjectiveFactory
{
    /// <summary>Validates the options and builds the objective (with the NLL term when <c>rpo_alpha</c> &gt; 0).</summary>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is out of range or the name is unknown.</exception>
    public static IPreferenceObjective Create(ObjectiveOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        double beta = options.EffectiveBeta;
        IPreferenceObjective objective = options.LossType switch
        {
            "sigmoid" => new SigmoidObjective(beta, options.LabelSmoothing, lengthNormalized: false),
            "sigmoid_norm" => new SigmoidObjective(beta, options.LabelSmoothing, lengthNormalized: true),
            "ipo" => new IpoObjective(beta),
            "mipo" => new MipoObjective(beta, options.MipoModulation, options.MipoConstant),
            "mallows_theta" => new MallowsThetaObjective(beta, options.LabelSmoothing, options.MallowsAlpha, options.MallowsGamma, options.PhiStar,
                options.MallowsLengthNormalized, options.MallowsUseDispersion),
            "mallows_phi" => new MallowsPhiObjective(beta, options.PhiStar),
            "bcr" => new BcrObjective(beta, options.LabelSmoothing, options.BcrLambda, options.BcrBudget, options.BcrLengthNormalized),
            _ => throw new InvalidOperationException($"loss_type '{options.LossType}' passed validation but has no implementation."),
        };
        return options.RpoAlpha is > 0 ? new WithNllObjective(objective, options.RpoAlpha.Value) : objective;
    }
}
