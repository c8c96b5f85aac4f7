using System.ComponentModel.DataAnnotations;
using System.Globalization;
using Microsoft.Extensions.Options;
using PrefPipe.Models;

namespace PrefPipe.Trainer.Objectives;

/// <summary>
/// Which preference objective to train and its hyper-parameters. Names follow TRL's <c>DPOConfig</c> where one exists
/// (<c>loss_type</c>, <c>beta</c>, <c>label_smoothing</c>, <c>rpo_alpha</c>); the maths is in docs/objectives.
/// </summary>
public sealed class ObjectiveOptions : IValidatableObject
{
    /// <summary>The names <see cref="LossType"/> accepts.</summary>
    public static readonly IReadOnlyList<string> LossTypes = ["sigmoid", "sigmoid_norm", "ipo", "mipo", "mallows_theta", "mallows_phi", "bcr"];

    /// <summary>The loss types that apply <see cref="LabelSmoothing"/>.</summary>
    private static readonly string[] LabelSmoothingLossTypes = ["sigmoid", "sigmoid_norm", "mallows_theta", "bcr"];

    /// <summary>TRL's <c>loss_type</c>: sigmoid (DPO), sigmoid_norm, ipo, mipo, mallows_theta, mallows_phi, bcr.</summary>
    /// <value>Default "sigmoid".</value>
    [Required]
    public string LossType { get; set; } = "sigmoid";

    /// <summary>β. Null takes the objective's default: 20 for mipo, 0.1 for the others.</summary>
    /// <value>Default null; when set, greater than 0 and at most 1000.</value>
    [Range(1e-6, 1000)]
    public double? Beta { get; set; }

    /// <summary>
    /// TRL's <c>label_smoothing</c> ε (conservative DPO: −(1−ε)·log σ(h) − ε·log σ(−h)) for sigmoid, sigmoid_norm,
    /// mallows_theta (on the dispersion-scaled logit, as the MallowsPO authors' code does) and bcr (its DPO term).
    /// The other objectives have no smoothed form, and a non-zero ε with them is rejected rather than ignored.
    /// </summary>
    /// <value>Default 0; 0 to 0.5.</value>
    [Range(0, 0.5)]
    public double LabelSmoothing { get; set; }

    /// <summary>TRL's <c>rpo_alpha</c>: weight of the NLL (SFT) term on the chosen response added to any objective; null or 0 = off.</summary>
    /// <value>Default null; 0 to 100.</value>
    [Range(0.0, 100.0)]
    public double? RpoAlpha { get; set; }

    /// <summary>MIPO's modulation q(K).</summary>
    /// <value>Default <see cref="MipoModulation.Softplus"/> (the paper).</value>
    public MipoModulation MipoModulation { get; set; } = MipoModulation.Softplus;

    /// <summary>MIPO with <see cref="MipoModulation.Constant"/>: the constant q.</summary>
    /// <value>Default 0.</value>
    [Range(-100.0, 100.0)]
    public double MipoConstant { get; set; }

    /// <summary>
    /// MallowsPO's φ*, the strength of the dispersion scaling: MallowsPO-θ multiplies the logit by c(x) = −φ*·log H̄(x)
    /// (high-entropy prompts, H̄ near 1, weigh less); MallowsPO-φ uses the dispersion φ = H̄^φ*.
    /// </summary>
    /// <value>Default 0.29; greater than 0, at most 10.</value>
    [Range(1e-6, 10)]
    public double PhiStar { get; set; } = 0.29;

    /// <summary>MallowsPO-θ α: weight of the reference margin (1 = DPO form, 0 = the authors' reference-free plugin).</summary>
    /// <value>Default 1; 0 to 10.</value>
    [Range(0.0, 10.0)]
    public double MallowsAlpha { get; set; } = 1;

    /// <summary>
    /// MallowsPO-θ γ: a target margin subtracted from Δ, in log-prob units (sums, or per-token means when
    /// <see cref="MallowsLengthNormalized"/>). A pair counts as won (Δ &gt; 0) only when the policy's margin over α times
    /// the reference margin exceeds γ; γ &gt; 0 keeps pushing pairs DPO would call separated, γ &lt; 0 relaxes.
    /// It is scaled with the margin: the logit shifts by −β·c(x)·γ.
    /// </summary>
    /// <value>Default 0 (the DPO form); −100 to 100.</value>
    [Range(-100.0, 100.0)]
    public double MallowsGamma { get; set; }

    /// <summary>MallowsPO-θ on mean log-probs A instead of sums S (the authors' plugin setting).</summary>
    /// <value>Default false.</value>
    public bool MallowsLengthNormalized { get; set; }

    /// <summary>MallowsPO-θ with c(x) from the reference dispersion; false gives c ≡ 1 (= DPO).</summary>
    /// <value>Default true.</value>
    public bool MallowsUseDispersion { get; set; } = true;

    /// <summary>BCR's λ: weight of the budget penalty (0 = DPO).</summary>
    /// <value>Default 1; 0 to 100.</value>
    [Range(0.0, 100.0)]
    public double BcrLambda { get; set; } = 1;

    /// <summary>BCR's budget δ ≥ 0: how far the chosen log-likelihood may drop below the reference unpenalised.</summary>
    /// <value>Default 1 (sum form); 0 to 1000.</value>
    [Range(0.0, 1000.0)]
    public double BcrBudget { get; set; } = 1;

    /// <summary>BCR on mean log-probs instead of sums.</summary>
    /// <value>Default false.</value>
    public bool BcrLengthNormalized { get; set; }

    /// <summary>β actually used: <see cref="Beta"/> or the objective's default.</summary>
    public double EffectiveBeta => Beta ?? (LossType == "mipo" ? 20.0 : 0.1);

    /// <summary>Throws when an option is out of range or does not apply to the loss type, naming every one and what was expected.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new ObjectiveOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(ObjectiveOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (!LossTypes.Contains(LossType))
            yield return new ValidationResult(
                $"loss_type '{LossType}' is not known; expected one of {string.Join(", ", LossTypes)}.", OptionsMembers.Under(validationContext, nameof(LossType)));
        else if (LabelSmoothing > 0 && !LabelSmoothingLossTypes.Contains(LossType))
            yield return new ValidationResult(
                string.Create(CultureInfo.InvariantCulture,
                    $"label_smoothing {LabelSmoothing} has no effect with loss_type '{LossType}'; expected 0, or one of {string.Join(", ", LabelSmoothingLossTypes)}."),
                OptionsMembers.Under(validationContext, nameof(LabelSmoothing)));
    }
}
