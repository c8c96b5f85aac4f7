using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using PrefPipe.Models;

namespace PrefPipe.Ranking.Judges;

/// <summary>Which chat-completions API shape the endpoint speaks.</summary>
public enum LlmApiKind
{
    /// <summary>OpenAI-compatible: POST {endpoint}/chat/completions, <c>Authorization: Bearer KEY</c>, model in the body
    /// (OpenAI, vLLM, llama.cpp server, Ollama, LiteLLM...).</summary>
    OpenAI,

    /// <summary>Azure OpenAI: POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V, <c>api-key: KEY</c>.</summary>
    AzureOpenAI,
}

/// <summary>Options for the LLM judge. The API key is never in here: it is read from the environment variable named by
/// <see cref="ApiKeyVariable"/> (or configuration bound to it) and never logged.</summary>
public sealed class LlmJudgeOptions : IValidatableObject
{
    /// <summary>The MT-Bench-style pairwise prompt; placeholders {prompt}, {response_a}, {response_b}.</summary>
    public const string DefaultTemplate =
        "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the " +
        "user question displayed below. Choose the assistant that follows the user's instructions and answers the user's " +
        "question better. Do not allow the length of the responses or the order in which they were presented to influence " +
        "your evaluation. After a short explanation, output your final verdict strictly in this format: \"[[A]]\" if " +
        "assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.\n\n" +
        "[User Question]\n{prompt}\n\n[The Start of Assistant A's Answer]\n{response_a}\n[The End of Assistant A's Answer]\n\n" +
        "[The Start of Assistant B's Answer]\n{response_b}\n[The End of Assistant B's Answer]";

    /// <summary>Base URL, e.g. https://api.openai.com/v1 or https://NAME.openai.azure.com.</summary>
    [Required]
    public Uri? Endpoint { get; set; }

    /// <summary>API shape.</summary>
    /// <value>Default <see cref="LlmApiKind.OpenAI"/>.</value>
    public LlmApiKind Api { get; set; } = LlmApiKind.OpenAI;

    /// <summary>Model name (OpenAI) or deployment name (Azure).</summary>
    [Required(AllowEmptyStrings = false)]
    public string Model { get; set; } = "";

    /// <summary>Azure OpenAI api-version query value.</summary>
    /// <value>Default "2024-10-21".</value>
    public string ApiVersion { get; set; } = "2024-10-21";

    /// <summary>Environment variable holding the API key; unset or empty means no key (local servers).</summary>
    /// <value>Default PREFPIPE_JUDGE_API_KEY.</value>
    [Required(AllowEmptyStrings = false)]
    public string ApiKeyVariable { get; set; } = "PREFPIPE_JUDGE_API_KEY";

    /// <summary>User-message template with {prompt}, {response_a}, {response_b}, filled in one pass (text inside a prompt
    /// or a response is never read as a placeholder); any other <c>{name}</c> is refused at validation.</summary>
    [Required(AllowEmptyStrings = false)]
    public string PromptTemplate { get; set; } = DefaultTemplate;

    /// <summary>Optional system message.</summary>
    public string? SystemPrompt { get; set; }

    /// <summary>The markers of <see cref="DefaultTemplate"/>'s verdicts: A better, B better, tie.</summary>
    public static readonly IReadOnlyList<string> DefaultVerdictMarkers = ["[[A]]", "[[B]]", "[[C]]"];

    /// <summary>Markers in the reply for A better, B better, tie; the last marker found wins.</summary>
    /// <value>Default null: <see cref="DefaultVerdictMarkers"/> ([[A]], [[B]], [[C]]). Null rather than those three
    /// because configuration binding appends to a default list instead of replacing it.</value>
    public string[]? VerdictMarkers { get; set; }

    /// <summary>Sampling temperature for the judge.</summary>
    /// <value>Default 0; 0 to 2.</value>
    [Range(0.0, 2.0)]
    public double Temperature { get; set; }

    /// <summary>Maximum tokens in the judge's reply.</summary>
    /// <value>Default 512; 1 to 32768.</value>
    [Range(1, 32_768)]
    public int MaxTokens { get; set; } = 512;

    /// <summary>Timeout per attempt.</summary>
    /// <value>Default 60 s; 100 ms to 10 min.</value>
    [Range(typeof(TimeSpan), "00:00:00.1", "00:10:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Retries after the first attempt, on 408/429/5xx, timeouts and connection failures only.</summary>
    /// <value>Default 4; 0 to 20.</value>
    [Range(0, 20)]
    public int MaxRetries { get; set; } = 4;

    /// <summary>Base delay of the exponential back-off with jitter (a Retry-After header wins when present).</summary>
    /// <value>Default 1 s; 0 to 1 min.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Requests in flight at once (the rate limit the endpoint allows).</summary>
    /// <value>Default 4; 1 to 256.</value>
    [Range(1, 256)]
    public int MaxConcurrency { get; set; } = 4;

    /// <summary>Throws when an option is out of range or the template lacks a placeholder, naming every problem.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new LlmJudgeOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(LlmJudgeOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        // [Required] reports a missing template; these rules read it.
        string template = PromptTemplate ?? "";
        foreach (string p in JudgePromptTemplate.Placeholders)
            if (!template.Contains($"{{{p}}}", StringComparison.Ordinal))
                yield return new ValidationResult($"judge prompt template lacks the placeholder {{{p}}}.", OptionsMembers.Under(validationContext, nameof(PromptTemplate)));
        foreach (string unknown in JudgePromptTemplate.UnknownPlaceholders(template))
            yield return new ValidationResult(
                $"judge prompt template has an unknown placeholder {{{unknown}}}; the placeholders are {string.Join(", ", JudgePromptTemplate.Placeholders.Select(p => $"{{{p}}}"))}.",
                OptionsMembers.Under(validationContext, nameof(PromptTemplate)));
        if (VerdictMarkers is not null && (VerdictMarkers.Length != 3 || VerdictMarkers.Any(string.IsNullOrEmpty)))
            yield return new ValidationResult("judge verdict markers must be three non-empty strings: A better, B better, tie.", OptionsMembers.Under(validationContext, nameof(VerdictMarkers)));
        if (Endpoint is { IsAbsoluteUri: false })
            yield return new ValidationResult($"judge endpoint '{Endpoint}' must be an absolute http(s) URL.", OptionsMembers.Under(validationContext, nameof(Endpoint)));
    }
}
