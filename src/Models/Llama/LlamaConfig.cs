using System.Text.Json;

namespace PrefPipe.Models.Llama;

/// <summary>RoPE frequency scaling (transformers' rope_type).</summary>
/// <param name="Type">default, linear or llama3.</param>
/// <param name="Factor">Scaling factor (linear, llama3).</param>
/// <param name="LowFreqFactor">llama3: low-frequency factor.</param>
/// <param name="HighFreqFactor">llama3: high-frequency factor.</param>
/// <param name="OriginalMaxPositionEmbeddings">llama3: the pre-scaling context length.</param>
public sealed record RopeScaling(string Type, double Factor = 1, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192);

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

        int Int(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32()
            : throw new InvalidDataException($"{source}: '{key}' is missing or not a number; a {modelType} config needs it.");
        int? OptInt(string key) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        double OptDouble(string key, double fallback) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
        bool OptBool(string key, bool fallback) => root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

        int hidden = Int("hidden_size");
        int heads = Int("num_attention_heads");
        int kvHeads = OptInt("num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}.");

        // Rope: transformers-5 rope_parameters, else rope_theta + rope_scaling.
        double theta = OptDouble("rope_theta", 10000);
        RopeScaling? scaling = null;
        JsonElement ropeSource = default;
        bool hasRope = false;
        if (root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object)
        {
            ropeSource = rp;
            hasRope = true;
            if (rp.TryGetProperty("rope_theta", out var rt) && rt.ValueKind == JsonValueKind.Number) theta = rt.GetDouble();
        }
        else if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            ropeSource = rs;
            hasRope = true;
        }
        if (hasRope)
        {
            string type = ropeSource.TryGetProperty("rope_type", out var t) ? t.GetString() ?? "default"
                : ropeSource.TryGetProperty("type", out var t2) ? t2.GetString() ?? "default" : "default";
            double Get(string key, double fallback) => ropeSource.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
            if (type is not ("default" or "linear" or "llama3"))
                throw new InvalidDataException($"{source}: rope type '{type}' is not supported; supported: default, linear, llama3.");
            if (type != "default")
                scaling = new RopeScaling(type, Get("factor", 1), Get("low_freq_factor", 1), Get("high_freq_factor", 4),
                    (int)Get("original_max_position_embeddings", 8192));
        }

        string activation = root.TryGetProperty("hidden_act", out var act) && act.ValueKind == JsonValueKind.String ? act.GetString()! : "silu";
        if (activation != "silu")
            throw new InvalidDataException($"{source}: hidden_act '{activation}' is not supported; the Llama-family MLP here is SwiGLU with 'silu'.");

        bool qwen = modelType == "qwen2";
        int? slidingWindow = modelType switch
        {
            "mistral" => OptInt("sliding_window"),
            "qwen2" when OptBool("use_sliding_window", false) => OptInt("sliding_window"),
            _ => null,
        };
        bool attentionBias = OptBool("attention_bias", false);
        return new LlamaConfig
        {
            ModelType = modelType,
            VocabSize = Int("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Int("intermediate_size"),
            NumHiddenLayers = Int("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = OptInt("head_dim") ?? hidden / heads,
            RmsNormEps = OptDouble("rms_norm_eps", 1e-6),
            RopeTheta = theta,
            RopeScaling = scaling,
            MaxPositionEmbeddings = OptInt("max_position_embeddings") ?? 2048,
            SlidingWindow = slidingWindow,
            TieWordEmbeddings = OptBool("tie_word_embeddings", false),
            AttentionQkvBias = qwen || attentionBias,
            AttentionOutputBias = !qwen && attentionBias,
            MlpBias = OptBool("mlp_bias", false),
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
}
