using System.Text.RegularExpressions;

namespace PrefPipe.Models.Lora;

/// <summary>Which linear layers a <c>target_modules</c> value selects, matched as PEFT's <c>check_target_module_exists</c> does.</summary>
public static class LoraTargets
{
    /// <summary>PEFT's shorthand for every linear layer but the output layer (lm_head).</summary>
    public const string AllLinear = "all-linear";

    /// <summary>The output layer all-linear leaves out.</summary>
    private const string OutputLayer = "lm_head";

    /// <summary>
    /// Whether the module <paramref name="moduleName"/> (its full name, "model.layers.0.self_attn.q_proj") is selected:
    /// a list entry equal to the name or to its last dotted parts; a single entry that is not a plain module name is a
    /// regular expression the whole name must match (PEFT's string form); <see cref="AllLinear"/> selects every linear but lm_head.
    /// </summary>
    public static bool Matches(IReadOnlyCollection<string> targets, string moduleName, bool asRegex = false)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(moduleName);
        if (targets.Count == 1 && targets.First() == AllLinear)
            return moduleName != OutputLayer && !moduleName.EndsWith("." + OutputLayer, StringComparison.Ordinal);
        if (asRegex)
            return Regex.IsMatch(moduleName, $"^(?:{targets.Single()})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        return targets.Any(t => moduleName == t || moduleName.EndsWith("." + t, StringComparison.Ordinal));
    }
}
