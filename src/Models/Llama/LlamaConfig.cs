using System.Text.Json;

namespace PrefPipe.Models.Llama;

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
/// <param name="ShortFactor">longrope: per-frequency factors within the original context ([head_dim / 2]).</param>
public sealed record RopeScaling(string Type, double Factor = 1, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192,
    double? AttentionFactor = null, double BetaFast = 32, double BetaSlow = 1, double? Mscale = null, double? MscaleAllDim = null, bool Truncate = true,
    IReadOnlyList<double>? ShortFactor = null);

/// <summary>
/// A Llama-family config.json: Llama 2/3, Qwen2/2.5, Mistral. Reads both the classic <c>rope_theta</c> /
/// <c>rope_scaling</c> fields and transformers-5's <c>rope_parameters</c>.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>model_type values this loader accepts.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "qwen2", "mistral"];

    /// <summary>config.json model_type.</summary>
    public string ModelType { get; init; } = "llama";

    /// <summary>Vocabulary size (rows of embed_tokens and lm_head).</summary>
    public int VocabSize { get; init; }

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

    /// <summary>RoPE base.</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary>RoPE scaling, or null.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>
    /// Sliding-window attention span (Mistral's <c>sliding_window</c>; Qwen2's when <c>use_sliding_window</c>), or null.
    /// Not implemented: sequences up to the window are exact (the window changes nothing), longer ones are refused.
    /// </summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Context length.</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;

    /// <summary>lm_head shares embed_tokens' weight.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Bias on q/k/v projections (Qwen2: always; Llama: attention_bias).</summary>
    public bool AttentionQkvBias { get; init; }

    /// <summary>Bias on o_proj (Llama attention_bias).</summary>
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

    /// <summary>The parsed JSON, kept so a saved checkpoint writes back every field the user had.</summary>
    public JsonElement? Raw { get; init; }

    /// <summary>Reads config.json from a model folder (or the file).</summary>
    /// <exception cref="InvalidDataException">Unknown architecture, or a missing or invalid field (named).</exception>
    public static LlamaConfig Load(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "config.json") : path;
        if (!File.Exists(file)) throw new FileNotFoundException($"{file} does not exist; expected a Hugging Face config.json.", file);
        using var doc = JsonDocument.Parse(File.ReadAllText(file));
        return Parse(doc.RootElement.Clone(), file);
    }

    /// <summary>Parses a config.json object; <paramref name="source"/> names it in errors.</summary>
    public static LlamaConfig Parse(JsonElement root, string source)
    {
        string modelType = root.TryGetProperty("model_type", out var mt) ? mt.GetString() ?? "" : "";
        string architectures = root.TryGetProperty("architectures", out var arch) ? string.Join(", ", arch.EnumerateArray().Select(a => a.GetString())) : "";
        if (!SupportedModelTypes.Contains(modelType))
            throw new InvalidDataException($"{source}: model_type '{modelType}' (architectures: {architectures}) is not supported; supported Llama-family types: {string.Join(", ", SupportedModelTypes)}.");

        // Sizes and counts must be positive whole numbers: a zero or negative one fails here, naming the key, not later
        // inside a tensor constructor.
        int Int(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? Positive(key, v)
            : throw new InvalidDataException($"{source}: '{key}' is missing or not a number; a {modelType} config needs it.");
        int? OptPositive(string key) => root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? Positive(key, v) : null;
        int Positive(string key, JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n > 0 ? n
            : throw new InvalidDataException($"{source}: '{key}' is {v.GetRawText()}; expected a positive whole number.");
        int? OptInt(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        // A present value of the wrong kind is an error, not the default: "rms_norm_eps": "abc" was silently 1e-6.
        double OptDouble(string key, double fallback) => !root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? fallback
            : v.ValueKind == JsonValueKind.Number && v.GetDouble() is var x && double.IsFinite(x) && x > 0 ? x
            : throw new InvalidDataException($"{source}: '{key}' is {v.GetRawText()}; expected a positive number.");
        bool OptBool(string key, bool fallback) => root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

        int hidden = Int("hidden_size");
        int heads = Int("num_attention_heads");
        if (heads <= 0) throw new InvalidDataException($"{source}: num_attention_heads {heads} must be positive.");
        // transformers' per-type __init__ default when the key is absent (Qwen2: 32, Mistral: 8, Llama: the query heads);
        // an explicit null means the query heads in all three.
        int kvHeads = root.TryGetProperty("num_key_value_heads", out var kvh) && kvh.ValueKind == JsonValueKind.Number ? kvh.GetInt32()
            : kvh.ValueKind == JsonValueKind.Null || modelType == "llama" ? heads
            : modelType == "qwen2" ? 32 : 8;
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}" +
                (root.TryGetProperty("num_key_value_heads", out _) ? "." : $" (num_key_value_heads is absent; transformers' {modelType} default is {kvHeads})."));
        int headDim = OptPositive("head_dim") ?? hidden / heads;
        int maxPositions = OptPositive("max_position_embeddings") ?? modelType switch { "qwen2" => 32768, "mistral" => 4096 * 32, _ => 2048 };

        var (theta, scaling) = ParseRope(root, source, maxPositions);

        string activation = root.TryGetProperty("hidden_act", out var act) && act.ValueKind == JsonValueKind.String ? act.GetString()! : "silu";
        if (activation is not ("silu" or "swish"))
            throw new InvalidDataException($"{source}: hidden_act '{activation}' is not supported; the Llama-family MLP here is SwiGLU with 'silu'.");

        // Mistral's sliding_window defaults to 4096 when the key is absent (null turns it off); Qwen2 uses its
        // sliding_window (default 4096) only with use_sliding_window.
        int? Window() => root.TryGetProperty("sliding_window", out var sw) ? sw.ValueKind == JsonValueKind.Number ? sw.GetInt32() : null : 4096;
        int? slidingWindow = modelType switch
        {
            "mistral" => Window(),
            "qwen2" when OptBool("use_sliding_window", false) => Window(),
            _ => null,
        };
        // Which projections have a bias, as each modeling file builds them: Llama reads attention_bias (q/k/v/o) and
        // mlp_bias; Qwen2 always has q/k/v bias and never o_proj or MLP bias; Mistral has none (both keys are ignored).
        bool attentionBias = OptBool("attention_bias", false);
        bool llama = modelType == "llama";
        bool qwen = modelType == "qwen2";
        return new LlamaConfig
        {
            ModelType = modelType,
            VocabSize = Int("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Int("intermediate_size"),
            NumHiddenLayers = Int("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = OptDouble("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            RopeScaling = scaling,
            MaxPositionEmbeddings = maxPositions,
            SlidingWindow = slidingWindow,
            TieWordEmbeddings = OptBool("tie_word_embeddings", false),
            AttentionQkvBias = qwen || (llama && attentionBias),
            AttentionOutputBias = llama && attentionBias,
            MlpBias = llama && OptBool("mlp_bias", false),
            BosTokenId = OptInt("bos_token_id"),
            EosTokenIds = root.TryGetProperty("eos_token_id", out var eos)
                ? eos.ValueKind == JsonValueKind.Array ? eos.EnumerateArray().Select(e => e.GetInt32()).ToArray()
                  : eos.ValueKind == JsonValueKind.Number ? [eos.GetInt32()] : []
                : [],
            PadTokenId = OptInt("pad_token_id"),
            TorchDtype = root.TryGetProperty("torch_dtype", out var td) ? td.GetString() : root.TryGetProperty("dtype", out var d) ? d.GetString() : null,
            Raw = root,
        };
    }

    /// <summary>The rope types modeling_rope_utils defines that this loader computes.</summary>
    public static readonly IReadOnlyList<string> SupportedRopeTypes = ["default", "linear", "dynamic", "yarn", "longrope", "llama3"];

    /// <summary>
    /// Reads RoPE settings as transformers 5 standardises them: <c>rope_scaling</c> (legacy) wins over
    /// <c>rope_parameters</c> when both are given; <c>rope_theta</c> inside the dict wins over the top-level one
    /// (default 10000); <c>rope_type</c> wins over the legacy <c>type</c>; llama3/yarn/longrope take
    /// <c>original_max_position_embeddings</c> from the top level when present, else from the dict, else max_position_embeddings.
    /// </summary>
    private static (double Theta, RopeScaling? Scaling) ParseRope(JsonElement root, string source, int maxPositions)
    {
        double theta = root.TryGetProperty("rope_theta", out var topTheta) && topTheta.ValueKind == JsonValueKind.Number ? topTheta.GetDouble() : 10000;
        JsonElement rope = default;
        string key = "";
        if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object && rs.EnumerateObject().Any())
            (rope, key) = (rs, "rope_scaling");
        else if (root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object)
            (rope, key) = (rp, "rope_parameters");

        double? partial = root.TryGetProperty("partial_rotary_factor", out var prf) && prf.ValueKind == JsonValueKind.Number ? prf.GetDouble() : null;
        if (key.Length > 0)
        {
            var entries = rope.EnumerateObject().ToList();
            if (entries.Count > 0 && entries.All(e => e.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Null))
                throw new InvalidDataException(
                    $"{source}: '{key}' is nested per layer type ({string.Join(", ", entries.Select(e => e.Name))}); the Llama-family models " +
                    "(llama, qwen2, mistral) use one flat RoPE dict for all layers (transformers reads rope_parameters[\"rope_type\"]).");
            if (rope.TryGetProperty("rope_theta", out var rt) && rt.ValueKind == JsonValueKind.Number) theta = rt.GetDouble();
            if (rope.TryGetProperty("partial_rotary_factor", out var p2) && p2.ValueKind == JsonValueKind.Number) partial ??= p2.GetDouble();
        }
        if (partial is double pr && pr != 1.0)
            throw new InvalidDataException(
                $"{source}: partial_rotary_factor {pr} is not supported: the Llama-family attention rotates the whole head_dim " +
                "(transformers would fail on it too); only 1.0 is accepted.");
        if (key.Length == 0) return (theta, null);

        string type = rope.TryGetProperty("rope_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()!
            : rope.TryGetProperty("type", out var t2) && t2.ValueKind == JsonValueKind.String ? t2.GetString()! : "default";
        if (!SupportedRopeTypes.Contains(type))
            throw new InvalidDataException($"{source}: {key}.rope_type '{type}' is not supported; supported: {string.Join(", ", SupportedRopeTypes)}.");
        if (type == "default") return (theta, null);

        double? Opt(string name) => rope.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        double Required(string name) => Opt(name)
            ?? throw new InvalidDataException($"{source}: {key}.{name} is missing or not a number; rope_type '{type}' needs it.");
        int original = root.TryGetProperty("original_max_position_embeddings", out var om) && om.ValueKind == JsonValueKind.Number ? om.GetInt32()
            : (int)(Opt("original_max_position_embeddings") ?? maxPositions);
        switch (type)
        {
            case "linear":
            case "dynamic":
                return (theta, new RopeScaling(type, Required("factor"), OriginalMaxPositionEmbeddings: original));
            case "llama3":
                return (theta, new RopeScaling(type, Required("factor"), Required("low_freq_factor"), Required("high_freq_factor"), original));
            case "yarn":
                return (theta, new RopeScaling(type, Opt("factor") ?? (double)maxPositions / original, OriginalMaxPositionEmbeddings: original,
                    AttentionFactor: Opt("attention_factor"),
                    BetaFast: Opt("beta_fast") is double bf && bf != 0 ? bf : 32, BetaSlow: Opt("beta_slow") is double bs && bs != 0 ? bs : 1,
                    Mscale: Opt("mscale"), MscaleAllDim: Opt("mscale_all_dim"),
                    Truncate: !rope.TryGetProperty("truncate", out var tr) || tr.ValueKind == JsonValueKind.True || (tr.ValueKind == JsonValueKind.Number && tr.GetDouble() != 0)));
            default: // longrope
                if (!rope.TryGetProperty("short_factor", out var sf) || sf.ValueKind != JsonValueKind.Array)
                    throw new InvalidDataException($"{source}: {key}.short_factor is missing or not a list; rope_type 'longrope' needs it.");
                if (!rope.TryGetProperty("long_factor", out var lf) || lf.ValueKind != JsonValueKind.Array)
                    throw new InvalidDataException($"{source}: {key}.long_factor is missing or not a list; rope_type 'longrope' needs it.");
                return (theta, new RopeScaling(type, Opt("factor") ?? (double)maxPositions / original, OriginalMaxPositionEmbeddings: original,
                    AttentionFactor: Opt("attention_factor"), ShortFactor: sf.EnumerateArray().Select(x => x.GetDouble()).ToArray()));
        }
    }
}
