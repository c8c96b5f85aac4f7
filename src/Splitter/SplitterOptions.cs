using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace PrefPipe.Splitter;

/// <summary>How pairs are divided into easy and difficult.</summary>
public enum SplitRule
{
    /// <summary>Easy when reward gap ≥ τ (<see cref="SplitterOptions.Threshold"/>).</summary>
    Threshold,

    /// <summary>The top fraction q of pairs by reward gap is easy (<see cref="SplitterOptions.Quantile"/>).</summary>
    Quantile,
}

/// <summary>What to do with a pair whose reward gap is negative: the reward model disagrees with the judge's ranking.</summary>
public enum NegativeGapPolicy
{
    /// <summary>Keep it, as difficult (the MPO reading: the pair is hard to tell apart).</summary>
    Difficult,

    /// <summary>Drop it into the dropped output with the reason.</summary>
    Drop,

    /// <summary>Swap chosen and rejected (trust the reward model), then split by the now-positive gap.</summary>
    Flip,
}

/// <summary>Splitter options. Gap = r(chosen) − r(rejected) in reward-model units.</summary>
public sealed class SplitterOptions : IValidatableObject
{
    /// <summary>Split rule.</summary>
    /// <value>Default <see cref="SplitRule.Quantile"/>.</value>
    public SplitRule Rule { get; set; } = SplitRule.Quantile;

    /// <summary>τ for <see cref="SplitRule.Threshold"/>: pairs with gap ≥ τ are easy.</summary>
    /// <value>Default 1.0 (reward units); 0 to 1e6.</value>
    [Range(0, 1e6)]
    public double Threshold { get; set; } = 1.0;

    /// <summary>q for <see cref="SplitRule.Quantile"/>: fraction of pairs (largest gaps first) that are easy.</summary>
    /// <value>Default 0.5; 0 to 1.</value>
    [Range(0.0, 1.0)]
    public double Quantile { get; set; } = 0.5;

    /// <summary>Negative-gap policy.</summary>
    /// <value>Default <see cref="NegativeGapPolicy.Difficult"/>.</value>
    public NegativeGapPolicy NegativeGaps { get; set; } = NegativeGapPolicy.Difficult;

    /// <summary>|gap| below which a pair counts as a tie in the report.</summary>
    /// <value>Default 1e-6; 0 to 1e3.</value>
    [Range(0, 1e3)]
    public double TieEpsilon { get; set; } = 1e-6;

    /// <summary>Throws when an option is out of range, naming every one and what it expects.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new SplitterOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(SplitterOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        // [Range] lets NaN through (every comparison with it is false).
        if (!double.IsFinite(Threshold)) yield return new ValidationResult("split threshold must be a finite number.", [nameof(Threshold)]);
    }
}
