using PrefPipe.Models.Decoders;
using static TorchSharp.torch;

namespace PrefPipe.Models.Generation;

/// <summary>
/// How many sequences continuous batching can decode at once in a given amount of memory: per row the KV cache at its
/// full capacity (prompt + 2 × new tokens, <see cref="TextGenerator"/>'s window), one token's activations through a
/// layer, the k/v copies a padded grouped-query step makes, the attention mask and scores, and sampling's vocabulary-wide
/// float32 tensors; once, the fused q/k/v and gate/up copy and one prefill group's activations.
/// </summary>
public static class BatchRows
{
    /// <summary>Upper bound of <see cref="FromMemory"/>: beyond it a decoding step is compute-bound on any device we know.</summary>
    public const int Max = 1024;

    /// <summary>Bytes one decoding row needs.</summary>
    public static long BytesPerRow(DecoderConfig config, ScalarType dtype, int promptTokens, int newTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        long e = ElementSize(dtype);
        long capacity = promptTokens + 2L * newTokens;
        long kv = 2L * config.NumHiddenLayers * config.NumKeyValueHeads * config.HeadDim * capacity * e;
        long repeated = 2L * config.NumAttentionHeads * config.HeadDim * capacity * e;       // one layer's repeat_interleave of k and v
        long attention = capacity * (8 + e) + (long)config.NumAttentionHeads * capacity * 4;  // int64 mask, additive mask, scores
        long activations = (8L * config.HiddenSize + 3L * config.IntermediateSize) * e;
        long sampling = (long)config.VocabSize * (5 * 4 + 8);                                  // logits, log-softmax, sorted, probs, cdf; sort order
        return kv + repeated + attention + activations + sampling;
    }

    /// <summary>Bytes needed once, whatever the rows: the fused projection copy and a prefill group's activations
    /// (<see cref="TextGenerator"/> prefills at most 16,384 prompt tokens per forward).</summary>
    public static long FixedBytes(DecoderConfig config, ScalarType dtype, int promptTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        long e = ElementSize(dtype);
        long fused = (long)config.NumHiddenLayers * config.HiddenSize * ((long)(config.NumAttentionHeads + 2 * config.NumKeyValueHeads) * config.HeadDim + 2L * config.IntermediateSize) * e;
        long tokens = Math.Max(promptTokens, TextGenerator.PrefillTokenBudget);
        // A prefill group holds tokens / prompt rows of prompt tokens: activations per token, scores [rows, heads, prompt, prompt] float32.
        long prefill = tokens * (8L * config.HiddenSize + 3L * config.IntermediateSize) * e + tokens * config.NumAttentionHeads * (long)promptTokens * 4;
        return fused + prefill;
    }

    /// <summary>
    /// Rows that fit in <paramref name="fraction"/> of <paramref name="availableBytes"/> (what is left after the model is
    /// loaded), between 1 and <see cref="Max"/>.
    /// </summary>
    public static int FromMemory(DecoderConfig config, ScalarType dtype, int promptTokens, int newTokens, long availableBytes, double fraction = 0.8)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(fraction);
        double budget = availableBytes * fraction - FixedBytes(config, dtype, promptTokens);
        long rows = (long)Math.Floor(budget / BytesPerRow(config, dtype, promptTokens, newTokens));
        return (int)Math.Clamp(rows, 1, Max);
    }

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        _ => 4,
    };
}
