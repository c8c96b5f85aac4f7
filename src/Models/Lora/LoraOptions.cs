using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace PrefPipe.Models.Lora;

/// <summary>
/// Low-rank adaptation of a causal LM (<c>lora:</c> under <c>training.dpo</c> or <c>training.ppo</c>); names and defaults
/// follow PEFT's <c>LoraConfig</c>. The base weights stay frozen in the training dtype; only the adapters train.
/// </summary>
public sealed class LoraOptions : IValidatableObject
{
    /// <summary>Rank r of each adapter: lora_A is [r, in], lora_B is [out, r].</summary>
    /// <value>Default 8 (PEFT's); 1 to 4096.</value>
    [Range(1, 4096)]
    public int R { get; set; } = 8;

    /// <summary>lora_alpha: the update is scaled by alpha / r (alpha / √r with <see cref="UseRslora"/>).</summary>
    /// <value>Default 8 (PEFT's); greater than 0, at most 1e6.</value>
    [Range(1e-9, 1e6)]
    public double Alpha { get; set; } = 8;

    /// <summary>Dropout on the input of the adapter branch while training.</summary>
    /// <value>Default 0; 0 to less than 1.</value>
    [Range(0.0, 0.999)]
    public double Dropout { get; set; }

    /// <summary>
    /// Which linear layers get an adapter, as PEFT matches them: a module whose name is one of these or ends with "." and
    /// one of them (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, fused qkv_proj / gate_up_proj), or the one
    /// entry <c>all-linear</c> (every linear layer but lm_head).
    /// </summary>
    /// <value>Default q_proj, v_proj (PEFT's default for Llama, Qwen2/3, Mistral and Gemma 2/3; Phi-3 names its attention projection qkv_proj).</value>
    [Required]
    public IList<string> TargetModules { get; set; } = ["q_proj", "v_proj"];

    /// <summary>Rank-stabilised LoRA (Kalajdzievski, 2023): scale by alpha / √r instead of alpha / r.</summary>
    /// <value>Default false.</value>
    public bool UseRslora { get; set; }

    /// <summary>The factor the adapter's output is multiplied by: alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling => UseRslora ? Alpha / Math.Sqrt(R) : Alpha / R;

    /// <summary>Throws when an option is out of range, naming every one.</summary>
    /// <param name="name">What the names in messages start with; default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid.</exception>
    public void Validate(string? name = null)
    {
        var result = new LoraOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(LoraOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (TargetModules is null || TargetModules.Count == 0)
            yield return new ValidationResult("target_modules must name at least one module (q_proj, v_proj, … or all-linear).", OptionsMembers.Under(validationContext, nameof(TargetModules)));
        else if (TargetModules.Any(string.IsNullOrWhiteSpace))
            yield return new ValidationResult("target_modules has an empty entry.", OptionsMembers.Under(validationContext, nameof(TargetModules)));
        else if (TargetModules.Count > 1 && TargetModules.Contains(LoraTargets.AllLinear, StringComparer.Ordinal))
            yield return new ValidationResult("target_modules: all-linear stands alone (it already names every linear layer but lm_head).", OptionsMembers.Under(validationContext, nameof(TargetModules)));
    }
}

/// <summary>Checks <see cref="LoraOptions"/>: generated from its attributes, with its cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class LoraOptionsValidator : IValidateOptions<LoraOptions>;
