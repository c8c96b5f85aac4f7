using System.ComponentModel.DataAnnotations;

namespace PrefPipe.Models;

/// <summary>Member names for the results of an options class's <see cref="IValidatableObject.Validate"/>.</summary>
/// <remarks>
/// The generated options validators (<c>[OptionsValidator]</c>) validate an options object nested in another under the
/// path of its property (<c>ranking.Reward</c>) and call <see cref="IValidatableObject.Validate"/> with the display name
/// <c>PATH.Validate</c>; attribute messages carry that path, but a cross-field rule's member names would not. Results
/// named through <see cref="Under"/> carry it, so every message says which nested option is at fault.
/// </remarks>
public static class OptionsMembers
{
    private const string ValidateSuffix = ".Validate";

    /// <summary><paramref name="members"/> prefixed with the path the validator gave this object, when it gave one.</summary>
    public static string[] Under(ValidationContext context, params string[] members)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(members);
        string display = context.DisplayName;
        if (!display.EndsWith(ValidateSuffix, StringComparison.Ordinal) || display.Length == ValidateSuffix.Length) return members;
        string path = display[..^ValidateSuffix.Length];
        return [.. members.Select(m => $"{path}.{m}")];
    }
}
