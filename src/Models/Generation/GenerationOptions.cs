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

/// <summary>
/// Running totals of a <see cref="TextGenerator"/>'s work, summed over its calls (thread-safe): how full the decoding
/// batches were, and how often continuous batching had sequences join, moved the cache window or dropped idle rows.
/// </summary>
public sealed class GenerationCounters
{
    private long _steps;
    private long _rowSteps;
    private long _tokens;
    private long _prefills;
    private long _joined;
    private long _windowMoves;
    private long _compactions;

    /// <summary>Decoding steps (one forward of the whole batch, one new token per row).</summary>
    public long DecodingSteps => Interlocked.Read(ref _steps);

    /// <summary>Rows computed over all decoding steps (batch rows × steps): the work done.</summary>
    public long RowSteps => Interlocked.Read(ref _rowSteps);

    /// <summary>Tokens of those steps that became part of a result (the rest is rows that had already ended).</summary>
    public long DecodedTokens => Interlocked.Read(ref _tokens);

    /// <summary>Prefill forwards (prompts entering the batch, in groups).</summary>
    public long Prefills => Interlocked.Read(ref _prefills);

    /// <summary>Sequences that took the place of a finished one while others were decoding.</summary>
    public long Joined => Interlocked.Read(ref _joined);

    /// <summary>Times the live rows' cache entries were moved to the front of the cache to make room.</summary>
    public long WindowMoves => Interlocked.Read(ref _windowMoves);

    /// <summary>Times finished rows were dropped from the batch.</summary>
    public long Compactions => Interlocked.Read(ref _compactions);

    /// <summary>Share of computed rows that produced a kept token (1 = no compute on finished rows).</summary>
    public double Utilisation => RowSteps == 0 ? 1 : (double)DecodedTokens / RowSteps;

    internal void AddStep(long rows) { Interlocked.Increment(ref _steps); Interlocked.Add(ref _rowSteps, rows); }

    internal void AddTokens(long tokens) => Interlocked.Add(ref _tokens, tokens);

    internal void AddPrefill() => Interlocked.Increment(ref _prefills);

    internal void AddJoined(long rows) => Interlocked.Add(ref _joined, rows);

    internal void AddWindowMove() => Interlocked.Increment(ref _windowMoves);

    internal void AddCompaction() => Interlocked.Increment(ref _compactions);
}
