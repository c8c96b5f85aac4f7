using System.Text.RegularExpressions;

namespace PrefPipe.Ranking.Judges;

/// <summary>
/// The LLM judge's user-message template: <c>{prompt}</c>, <c>{response_a}</c> and <c>{response_b}</c> are filled in one
/// pass over the template, so text inside a prompt or a response is never read as a placeholder (a response containing
/// "{response_b}" is sent as written, not with the other response spliced in). Braces around anything that is not a
/// name (JSON examples, "{ }") are kept as they are.
/// </summary>
internal static partial class JudgePromptTemplate
{
    /// <summary>The placeholders a template may use; all three are required.</summary>
    public static readonly IReadOnlyList<string> Placeholders = ["prompt", "response_a", "response_b"];

    /// <summary>Fills the placeholders of <paramref name="template"/> from <paramref name="request"/>.</summary>
    public static string Render(string template, JudgeRequest request) =>
        PlaceholderRegex().Replace(template, m => m.Groups[1].Value switch
        {
            "prompt" => request.Prompt,
            "response_a" => request.ResponseA,
            "response_b" => request.ResponseB,
            _ => m.Value,
        });

    /// <summary>The <c>{name}</c> placeholders in <paramref name="template"/> that are not known, in order, each once.</summary>
    public static IEnumerable<string> UnknownPlaceholders(string template) =>
        PlaceholderRegex().Matches(template).Select(m => m.Groups[1].Value).Where(n => !Placeholders.Contains(n)).Distinct(StringComparer.Ordinal);

    [GeneratedRegex(@"\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex PlaceholderRegex();
}
