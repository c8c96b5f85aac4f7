using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using PrefPipe.Ingest.Generation;
using PrefPipe.Models;
using PrefPipe.Text.Templates;

namespace PrefPipe.Ingest;

/// <summary>What to do with a prompt longer than <see cref="IngestOptions.MaxPromptTokens"/> after templating.</summary>
public enum OverLongPolicy
{
    /// <summary>Route it to rejects with the reason.</summary>
    Reject,

    /// <summary>Keep the last MaxPromptTokens tokens (the end of a conversation matters most).</summary>
    Truncate,
}

/// <summary>Ingest options: prompt validation and candidate generation. YAML keys are the snake_case names.</summary>
public sealed class IngestOptions : IValidatableObject
{
    /// <summary>K: candidate responses generated per prompt.</summary>
    /// <value>Default 4; 2 to 64.</value>
    [Range(2, 64)]
    public int CandidatesPerPrompt { get; set; } = 4;

    /// <summary>Maximum new tokens per candidate.</summary>
    /// <value>Default 64; 1 to 32768.</value>
    [Range(1, 32_768)]
    public int MaxNewTokens { get; set; } = 64;

    /// <summary>Sampling temperature; 0 means greedy (then all K candidates are identical: use K sampling instead).</summary>
    /// <value>Default 1.0; 0 to 5.</value>
    [Range(0.0, 5.0)]
    public double Temperature { get; set; } = 1.0;

    /// <summary>Nucleus sampling mass.</summary>
    /// <value>Default 1.0 (off); greater than 0, at most 1.</value>
    [Range(1e-6, 1)]
    public double TopP { get; set; } = 1.0;

    /// <summary>Top-k sampling; 0 is off.</summary>
    /// <value>Default 0; 0 to 1,000,000.</value>
    [Range(0, 1_000_000)]
    public int TopK { get; set; }

    /// <summary>Run seed; each candidate's seed derives from it, the prompt id and the candidate index, so reruns reproduce.</summary>
    /// <value>Default 1234.</value>
    public long Seed { get; set; } = 1234;

    /// <summary>Prompts per generation batch (each expands to K sequences).</summary>
    /// <value>Default 8; 1 to 4096.</value>
    [Range(1, 4096)]
    public int BatchSize { get; set; } = 8;

    /// <summary>
    /// Sequences the local engine decodes at once (continuous batching within a batch of batch_size prompts: a candidate
    /// that ends leaves, the next waiting one of the batch joins); 0 = batch_size × candidates_per_prompt, the whole batch.
    /// </summary>
    /// <value>Default 0; 0 to 65,536.</value>
    [Range(0, 65_536)]
    public int MaxBatchRows { get; set; }

    /// <summary>
    /// Choose the local engine's rows from the memory left once the policy is loaded (at most max_batch_rows when that
    /// is set). Off by default: candidates depend on their batch neighbours through floating-point noise, so with this
    /// on a rerun on a machine with other free memory may sample other tokens; the rows chosen are logged.
    /// </summary>
    /// <value>Default false.</value>
    public bool BatchRowsFromMemory { get; set; }

    /// <summary>Longest templated prompt, in tokens.</summary>
    /// <value>Default 512; 1 to 1,048,576.</value>
    [Range(1, 1_048_576)]
    public int MaxPromptTokens { get; set; } = 512;

    /// <summary>Over-long prompts: reject or truncate.</summary>
    /// <value>Default <see cref="OverLongPolicy.Reject"/>.</value>
    public OverLongPolicy OverLong { get; set; } = OverLongPolicy.Reject;

    /// <summary>Drop prompts whose normalised text (NFKC, trimmed, whitespace collapsed, case kept) repeats an earlier one; they go to rejects.</summary>
    /// <value>Default true.</value>
    public bool Deduplicate { get; set; } = true;

    /// <summary>Chat template use.</summary>
    /// <value>Default <see cref="ChatTemplateMode.Auto"/>.</value>
    public ChatTemplateMode ChatTemplate { get; set; } = ChatTemplateMode.Auto;

    /// <summary>A system message prepended to every conversation when templating; null for none.</summary>
    public string? SystemPrompt { get; set; }

    /// <summary>Generation stops at any of these strings (besides EOS); the stop string is not kept.</summary>
    [Required]
    public IList<string> StopStrings { get; init; } = [];

    /// <summary>The engine that generates candidates: local (default) or an OpenAI-compatible server.</summary>
    [Required]
    [ValidateObjectMembers]
    public GeneratorOptions Generator { get; set; } = new();

    /// <summary>Throws when an option is out of range, naming every one and what it expects.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new IngestOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(IngestOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (StopStrings?.Any(string.IsNullOrEmpty) == true)
            yield return new ValidationResult("stop strings must not be empty.", OptionsMembers.Under(validationContext, nameof(StopStrings)));
        if (Generator?.Type == GeneratorType.OpenAI)
        {
            // The OpenAI API has no top_k, and a server cannot be sent a prompt cut to its last tokens as text.
            if (TopK != 0)
                yield return new ValidationResult("top_k is not part of the OpenAI API; set it to 0 with generator type openai.", OptionsMembers.Under(validationContext, nameof(TopK)));
            if (OverLong == OverLongPolicy.Truncate)
                yield return new ValidationResult("over_long: truncate cuts prompts to their last tokens, which an external server cannot be sent; use reject with generator type openai.", OptionsMembers.Under(validationContext, nameof(OverLong)));
        }
    }
}
