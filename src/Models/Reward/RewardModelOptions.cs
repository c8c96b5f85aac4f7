using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace PrefPipe.Models.Reward;

/// <summary>What to do with a sequence longer than <see cref="RewardModelOptions.MaxLength"/>.</summary>
public enum RewardTruncation
{
    /// <summary>Drop tokens from the start: keeps the end of the response, which sequence-classification heads pool.</summary>
    Left,

    /// <summary>Drop tokens from the end (Hugging Face's default <c>truncation_side="right"</c>).</summary>
    Right,

    /// <summary>Refuse: the caller routes the row to rejects with the reason.</summary>
    Reject,
}

/// <summary>Which side padding goes on.</summary>
public enum RewardPadding
{
    /// <summary>Probe the model at load time: right padding when padded and unpadded scores agree, else left.</summary>
    Auto,

    /// <summary>Right padding with the pad id (what Hugging Face sequence classifiers that pool by pad id expect).</summary>
    Right,

    /// <summary>Left padding (models exported without a pad id pool the last position).</summary>
    Left,
}

/// <summary>Execution device for ONNX Runtime.</summary>
public enum RewardDevice
{
    /// <summary>CUDA when the GPU build of ONNX Runtime and a device are present, else CPU.</summary>
    Auto,

    /// <summary>CPU execution provider.</summary>
    Cpu,

    /// <summary>CUDA execution provider (fails when unavailable).</summary>
    Cuda,
}

/// <summary>Options for scoring with an ONNX reward model. Defaults suit a small model on CPU.</summary>
public sealed class RewardModelOptions : IValidatableObject
{
    /// <summary>Sequences per <c>InferenceSession.Run</c>.</summary>
    /// <value>Default 16; 1 to 4096.</value>
    [Range(1, 4096)]
    public int BatchSize { get; set; } = 16;

    /// <summary>Upper bound on padded tokens per batch (batch × longest); smaller batches are formed for long inputs.</summary>
    /// <value>Default 16384; 1 to 16,777,216.</value>
    [Range(1, 16_777_216)]
    public int MaxTokensPerBatch { get; set; } = 16_384;

    /// <summary>Longest sequence the model is given, in tokens.</summary>
    /// <value>Default 1024; 1 to 1,048,576.</value>
    [Range(1, 1_048_576)]
    public int MaxLength { get; set; } = 1024;

    /// <summary>What to do with longer sequences.</summary>
    /// <value>Default <see cref="RewardTruncation.Left"/>.</value>
    public RewardTruncation Truncation { get; set; } = RewardTruncation.Left;

    /// <summary>Padding side.</summary>
    /// <value>Default <see cref="RewardPadding.Auto"/>.</value>
    public RewardPadding Padding { get; set; } = RewardPadding.Auto;

    /// <summary>Pad id override; otherwise the tokenizer's pad token, else a token named &lt;pad&gt;, [PAD] or &lt;|pad|&gt;.</summary>
    /// <value>Default null (from the tokenizer).</value>
    [Range(0, int.MaxValue)]
    public int? PadTokenId { get; set; }

    /// <summary>Which column of a [batch, n] output is the reward.</summary>
    /// <value>Default 0.</value>
    [Range(0, 65_535)]
    public int ScoreIndex { get; set; }

    /// <summary>The output holding the scores; null picks "logits", else the one float output of shape [batch] or [batch, n].</summary>
    /// <value>Default null.</value>
    public string? OutputName { get; set; }

    /// <summary>Whether to apply the tokenizer's post-processor (BOS/EOS) to texts, as Hugging Face does by default.</summary>
    /// <value>Default true.</value>
    public bool AddSpecialTokens { get; set; } = true;

    /// <summary>Execution device.</summary>
    /// <value>Default <see cref="RewardDevice.Auto"/>.</value>
    public RewardDevice Device { get; set; } = RewardDevice.Auto;

    /// <summary>ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose.</summary>
    /// <value>Default 0; 0 to 1024.</value>
    [Range(0, 1024)]
    public int IntraOpThreads { get; set; }

    /// <summary>Throws when an option is out of range or the options contradict each other, naming every one.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new RewardModelOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(RewardModelOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (MaxTokensPerBatch < MaxLength)
            yield return new ValidationResult(
                $"MaxTokensPerBatch ({MaxTokensPerBatch}) must be at least MaxLength ({MaxLength}) so one sequence fits a batch.",
                OptionsMembers.Under(validationContext, nameof(MaxTokensPerBatch), nameof(MaxLength)));
    }
}
