using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace PrefPipe.Models.Generation;

/// <summary>Sampling options, with transformers' generate() meanings.</summary>
public sealed class GenerationOptions
{
    /// <summary>New tokens per sample at most.</summary>
    /// <value>Default 64; 1 to 1,048,576.</value>
    [Range(1, 1_048_576)]
    public int MaxNewTokens { get; set; } = 64;

    /// <summary>Greedy decoding (argmax) instead of sampling.</summary>
    /// <value>Default false.</value>
    public bool Greedy { get; set; }

    /// <summary>Softmax temperature for sampling.</summary>
    /// <value>Default 1.0; greater than 0, at most 100.</value>
    [Range(1e-6, 100)]
    public double Temperature { get; set; } = 1.0;

    /// <summary>Keep the k most likely tokens; 0 = off.</summary>
    /// <value>Default 0.</value>
    [Range(0, int.MaxValue)]
    public int TopK { get; set; }

    /// <summary>Keep the smallest set of tokens with probability mass ≥ p; 1 = off.</summary>
    /// <value>Default 1.0; greater than 0, at most 1.</value>
    [Range(1e-9, 1.0)]
    public double TopP { get; set; } = 1.0;

    /// <summary>Stop at any of these ids (default: the model's EOS ids).</summary>
    public IReadOnlyList<int>? EosTokenIds { get; set; }

    /// <summary>Stop when the decoded new text contains one of these (needs a decoder); the stop string is cut off.</summary>
    public IReadOnlyList<string> StopStrings { get; set; } = [];

    /// <summary>Throws when an option is out of range, naming every one.</summary>
    /// <param name="name">What the names in messages start with; default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new GenerationOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(GenerationOptions), result.Failures);
    }
}

/// <summary>Why generation of a sample ended.</summary>
public enum FinishReason
{
    /// <summary>An end-of-sequence token was generated (it is included in the ids).</summary>
    Eos,

    /// <summary>MaxNewTokens was reached.</summary>
    Length,

    /// <summary>A stop string appeared in the text.</summary>
    Stop,
}

/// <summary>One generation request: a prompt and the seed of its sample.</summary>
/// <param name="PromptIds">Prompt tokens.</param>
/// <param name="Seed">Seed of this sample's random stream: the same seed gives the same sample whatever the batch.</param>
public sealed record GenerationRequest(IReadOnlyList<int> PromptIds, long Seed);

/// <summary>One generated sample.</summary>
/// <param name="NewIds">Generated tokens (an EOS that ended it is included).</param>
/// <param name="Logprobs">log p(token | prefix) under the model (temperature 1, no filtering) for each new token.</param>
/// <param name="FinishReason">Why it ended.</param>
/// <param name="Text">Decoded text of the new tokens (special tokens skipped; cut at a stop string), when a decoder was given.</param>
public sealed record GenerationResult(IReadOnlyList<int> NewIds, IReadOnlyList<float> Logprobs, FinishReason FinishReason, string? Text);
