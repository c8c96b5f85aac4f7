using System.Text.Json;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders;

/// <summary>RoPE frequency scaling (transformers' rope_type and its parameters, as modeling_rope_utils reads them).</summary>
/// <param name="Type">linear, dynamic, yarn, longrope or llama3 (default RoPE has no scaling record).</param>
/// <param name="Factor">Scaling factor (linear, dynamic, llama3, yarn; longrope's attention factor).</param>
/// <param name="LowFreqFactor">llama3: low-frequency factor.</param>
/// <param name="HighFreqFactor">llama3: high-frequency factor.</param>
/// <param name="OriginalMaxPositionEmbeddings">llama3, yarn, longrope: the pre-scaling context length (transformers
/// defaults it to max_position_embeddings; a top-level original_max_position_embeddings takes priority).</param>
/// <param name="AttentionFactor">yarn, longrope: the cos/sin scale, or null for the paper's default from the factor.</param>
/// <param name="BetaFast">yarn: extrapolation boundary (default 32).</param>
/// <param name="BetaSlow">yarn: interpolation boundary (default 1).</param>
/// <param name="Mscale">yarn: mscale (with <paramref name="MscaleAllDim"/>), or null.</param>
/// <param name="MscaleAllDim">yarn: mscale_all_dim, or null.</param>
/// <param name="Truncate">yarn: whether the correction range is rounded outwards to whole dimensions (default true).</param>
/// <param name="ShortFactor">longrope: per-frequency factors while max(position) + 1 ≤ original_max_position_embeddings ([rotary_dim / 2]).</param>
/// <param name="LongFactor">longrope: per-frequency factors beyond original_max_position_embeddings ([rotary_dim / 2]).</param>
public sealed record RopeScaling(string Type, double Factor = 1, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192,
    double? AttentionFactor = null, double BetaFast = 32, double BetaSlow = 1, double? Mscale = null, double? MscaleAllDim = null, bool Truncate = true,
    IReadOnlyList<double>? ShortFactor = null, IReadOnlyList<double>? LongFactor = null);

/// <summary>One rotary embedding: its base, scaling and the fraction of each head it rotates.</summary>
/// <param name="Theta">rope_theta.</param>
/// <param name="Scaling">Scaling, or null for default RoPE.</param>
/// <param name="PartialRotaryFactor">Fraction of head_dim rotated (Phi-4-mini: 0.75); the rest passes through.</param>
public sealed record RopeSettings(double Theta, RopeScaling? Scaling, double PartialRotaryFactor = 1.0);

/// <summary>
/// A decoder-only causal LM's config.json: the fields every family shares (sizes, RoPE, per-layer attention types,
/// special ids). Each family (<see cref="ModelFamilies"/>) derives its own record, reads its own keys with its own
/// transformers defaults, and builds its own decoder layers from the shared modules.
/// </summary>
public abstract record DecoderConfig
{
    /// <summary>transformers' layer_types value for full causal attention.</summary>
    public const string FullAttention = "full_attention";

    /// <summary>transformers' layer_types value for sliding-window attention.</summary>
    public const string SlidingAttention = "sliding_attention";

    /// <summary>config.json model_type.</summary>
    public string ModelType { get; init; } = "";

    /// <summary>Vocabulary size (rows of embed_tokens and lm_head).</summary>
    public int VocabSize { get; init; }

    /// <summary>Hidden size.</summary>
    public int HiddenSize { get; init; }

    /// <summary>MLP inner size.</summary>
    public int IntermediateSize { get; init; }

    /// <summary>Decoder layers.</summary>
    public int NumHiddenLayers { get; init; }

    /// <summary>Query heads.</summary>
    public int NumAttentionHeads { get; init; }

    /// <summary>Key/value heads (grouped-query attention when fewer than query heads).</summary>
    public int NumKeyValueHeads { get; init; }

    /// <summary>Per-head size (hidden / heads unless given).</summary>
    public int HeadDim { get; init; }

    /// <summary>RMSNorm epsilon.</summary>
    public double RmsNormEps { get; init; } = 1e-6;

    /// <summary>RoPE base of full-attention layers (all layers unless the family has a local base).</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary>RoPE scaling of full-attention layers, or null.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>Fraction of head_dim that is rotated (1 except Phi-3-style partial rotary).</summary>
    public double PartialRotaryFactor { get; init; } = 1.0;

    /// <summary>
    /// Sliding-window span in tokens (a query sees itself and the window − 1 keys before it) for the layers
    /// <see cref="LayerTypes"/> marks as sliding; null when no layer slides.
    /// </summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Per layer: <see cref="FullAttention"/> or <see cref="SlidingAttention"/> (config.json's layer_types, or the family's rule).</summary>
    public IReadOnlyList<string> LayerTypes { get; init; } = [];

    /// <summary>Context length.</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;

    /// <summary>lm_head shares embed_tokens' weight.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Bias on q/k/v projections.</summary>
    public bool AttentionQkvBias { get; init; }

    /// <summary>Bias on o_proj.</summary>
    public bool AttentionOutputBias { get; init; }

    /// <summary>Bias on the MLP projections (mlp_bias).</summary>
    public bool MlpBias { get; init; }

    /// <summary>BOS id, or null.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>EOS ids (a list in Llama 3 configs).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Pad id, or null.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>The weights' dtype as saved (torch_dtype / dtype), e.g. float32, bfloat16.</summary>
    public string? TorchDtype { get; init; }

    /// <summary>The parsed JSON, kept so a saved checkpoint writes back every field the user had (a Gemma config stays one).</summary>
    public JsonElement? Raw { get; init; }

    /// <summary>Whether layer <paramref name="layer"/> attends within <see cref="SlidingWindow"/> only.</summary>
    public bool IsSliding(int layer) => SlidingWindow is not null && layer < LayerTypes.Count && LayerTypes[layer] == SlidingAttention;

    /// <summary>The rotary embedding of full-attention layers.</summary>
    public RopeSettings Rope => new(RopeTheta, RopeScaling, PartialRotaryFactor);

    /// <summary>The rotary embedding of sliding-window layers (Gemma 3's local base); the full one unless a family overrides it.</summary>
    public virtual RopeSettings SlidingRope => Rope;

    /// <summary>Embeddings are multiplied by this (Gemma: √hidden_size, in the weights' dtype), or null.</summary>
    public virtual double? EmbeddingScale => null;

    /// <summary>Logits become tanh(logits / cap) · cap (Gemma final_logit_softcapping), or null.</summary>
    public virtual double? FinalLogitSoftcapping => null;

    /// <summary>How the family's RMSNorms scale (Llama: w·x̂ cast first; Gemma: (1 + w)·x̂ in float32; OLMo 2: w·x̂ in float32).</summary>
    internal virtual RmsNormStyle NormStyle => RmsNormStyle.Llama;

    /// <summary>Builds decoder layer <paramref name="index"/> (checkpoint prefix model.layers.<paramref name="index"/>).</summary>
    internal abstract DecoderLayer CreateLayer(int index, ScalarType dtype, Device device);

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming <paramref name="what"/> when an id is negative or not below
    /// <see cref="VocabSize"/>: libtorch would fail with "index out of range in self" and a native stack.
    /// </summary>
    public void CheckTokenIds(IEnumerable<int> ids, string what)
    {
        ArgumentNullException.ThrowIfNull(ids);
        foreach (int id in ids)
            if (id < 0 || id >= VocabSize)
                throw new ArgumentException($"{what}: token id {id} is outside the vocabulary; this model's ids are 0 to {VocabSize - 1} (vocab_size {VocabSize})");
    }

    /// <summary>Reads config.json from a model folder (or the file) with its family's reader.</summary>
    /// <exception cref="InvalidDataException">Unknown model_type, or a missing or invalid field (named).</exception>
    public static DecoderConfig Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"{file} does not exist; expected a Hugging Face config.json.", file);
        using var doc = JsonDocument.Parse(File.ReadAllText(file));
        return Parse(doc.RootElement.Clone(), file);
    }

    /// <summary>Parses a config.json object with its family's reader; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">Unknown model_type, or a missing or invalid field (named).</exception>
    public static DecoderConfig Parse(JsonElement root, string source) => ModelFamilies.Parse(root, source);
}
