using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using PrefPipe.Models;
using PrefPipe.Models.Reward;
using PrefPipe.Ranking.Judges;

namespace PrefPipe.Ranking;

/// <summary>Which judge compares two candidates.</summary>
public enum JudgeKind
{
    /// <summary>Bradley–Terry on the reward model's scores.</summary>
    Reward,

    /// <summary>An LLM behind a chat-completions endpoint.</summary>
    Llm,
}

/// <summary>How a prompt's chosen and rejected candidates are picked.</summary>
public enum RankingMethod
{
    /// <summary>Iterative pairwise ranking with the judge: best and worst of K by sequential comparisons in both orders.</summary>
    Pairwise,

    /// <summary>Best and worst by reward score alone (argmax / argmin), no judge calls: the pointwise baseline.</summary>
    Pointwise,
}

/// <summary>Ranking options: which judge, and the reward model's scoring options.</summary>
public sealed class RankingOptions : IValidatableObject
{
    /// <summary>reward (Bradley–Terry on reward-model scores) or llm (a chat-completions endpoint).</summary>
    public JudgeKind Judge { get; set; } = JudgeKind.Reward;

    /// <summary>pairwise (iterative pairwise ranking with the judge) or pointwise (best and worst by reward score).</summary>
    public RankingMethod Method { get; set; } = RankingMethod.Pairwise;

    /// <summary>Reward judge: |r_a − r_b| below this is a tie. Pointwise: a prompt whose best and worst scores differ by less has no pair.</summary>
    /// <value>Default 0.05; 0 to 1000.</value>
    [Range(0.0, 1000.0)]
    public double TieEpsilon { get; set; } = 0.05;

    /// <summary>Reward model scoring options.</summary>
    [Required]
    [ValidateObjectMembers]
    public RewardModelOptions Reward { get; set; } = new();

    /// <summary>LLM judge options (when judge = llm).</summary>
    [ValidateObjectMembers]
    public LlmJudgeOptions? Llm { get; set; }

    /// <summary>Throws when an option (the reward model's and the judge's included) is invalid, naming every one.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new RankingOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(RankingOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (!Enum.IsDefined(Judge))
            yield return new ValidationResult("judge must be reward or llm.", OptionsMembers.Under(validationContext, nameof(Judge)));
        if (!Enum.IsDefined(Method))
            yield return new ValidationResult("method must be pairwise or pointwise.", OptionsMembers.Under(validationContext, nameof(Method)));
        if (Method == RankingMethod.Pointwise && Judge == JudgeKind.Llm)
            yield return new ValidationResult("method pointwise picks pairs by reward score alone; it takes no judge (set judge: reward, or method: pairwise for the LLM judge).", OptionsMembers.Under(validationContext, nameof(Method)));
        if (Judge == JudgeKind.Llm && Llm is null)
            yield return new ValidationResult("judge is llm but the llm section (endpoint, model) is missing.", OptionsMembers.Under(validationContext, nameof(Llm)));
    }
}
