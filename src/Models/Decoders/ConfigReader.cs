using System.Text.Json;

namespace PrefPipe.Models.Decoders;

/// <summary>
/// Reads config.json keys for a family, failing with the file, the key, the value and what was expected; and the
/// fields every family shares (<see cref="ReadCommon{T}"/>), each with the family's own transformers defaults.
/// </summary>
internal sealed class ConfigReader(JsonElement root, string source)
{
    public JsonElement Root { get; } = root;

    public string Source { get; } = source;

    public string ModelType { get; } = root.TryGetProperty("model_type", out var mt) ? mt.GetString() ?? "" : "";

    public string Architectures { get; } = root.TryGetProperty("architectures", out var arch) && arch.ValueKind == JsonValueKind.Array
        ? string.Join(", ", arch.EnumerateArray().Select(a => a.GetString())) : "";

    public InvalidDataException Error(string message) => new($"{Source}: {message}");

    public bool Has(string key) => Root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>A required positive whole number: sizes and counts fail here, naming the key, not later inside a tensor constructor.</summary>
    public int Int(string key) => Root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? Positive(key, v)
        : throw Error($"'{key}' is missing or not a number; a {ModelType} config needs it.");

    public int? OptPositive(string key) => Root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? Positive(key, v) : null;

    private int Positive(string key, JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n > 0 ? n
        : throw Error($"'{key}' is {v.GetRawText()}; expected a positive whole number.");

    public int? OptInt(string key) => Root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    /// <summary>A present value of the wrong kind is an error, not the default: "rms_norm_eps": "abc" is refused.</summary>
    public double OptDouble(string key, double fallback) => OptPositiveDouble(key) ?? fallback;

    /// <summary>A positive number, or null when absent or null.</summary>
    public double? OptPositiveDouble(string key) => !Root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.GetDouble() is var x && double.IsFinite(x) && x > 0 ? x
        : throw Error($"'{key}' is {v.GetRawText()}; expected a positive number.");

    public bool OptBool(string key, bool fallback) => Root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    public string OptString(string key, string fallback) => Root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : fallback;

    /// <summary>
    /// num_key_value_heads: the family's __init__ default when the key is absent; an explicit null means the query heads
    /// (transformers' configs all map None to num_attention_heads).
    /// </summary>
    public int KeyValueHeads(int heads, int absentDefault)
    {
        int kvHeads = Root.TryGetProperty("num_key_value_heads", out var kvh) ? kvh.ValueKind == JsonValueKind.Number ? kvh.GetInt32() : heads : absentDefault;
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw Error($"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}" +
                (Root.TryGetProperty("num_key_value_heads", out _) ? "." : $" (num_key_value_heads is absent; transformers' {ModelType} default is {kvHeads})."));
        return kvHeads;
    }

    /// <summary>
    /// layer_types as given (each full_attention or sliding_attention, one per layer), else <paramref name="rule"/>(layer).
    /// </summary>
    public IReadOnlyList<string> LayerTypes(int layers, Func<int, string> rule)
    {
        if (!Root.TryGetProperty("layer_types", out var lt) || lt.ValueKind == JsonValueKind.Null)
            return Enumerable.Range(0, layers).Select(rule).ToArray();
        if (lt.ValueKind != JsonValueKind.Array || lt.GetArrayLength() != layers)
            throw Error($"'layer_types' is {Short(lt)}; expected a list of {layers} entries (num_hidden_layers), each \"{DecoderConfig.FullAttention}\" or \"{DecoderConfig.SlidingAttention}\".");
        var types = lt.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText()).ToArray();
        foreach (var t in types)
            if (t is not (DecoderConfig.FullAttention or DecoderConfig.SlidingAttention))
                throw Error($"'layer_types' holds '{t}'; supported: \"{DecoderConfig.FullAttention}\", \"{DecoderConfig.SlidingAttention}\".");
        return types;
    }

    private static string Short(JsonElement e) { var s = e.GetRawText(); return s.Length > 80 ? s[..80] + "…" : s; }

    /// <summary>Fills the fields every family shares; the family passes its own defaults and settles the rest.</summary>
    public T ReadCommon<T>(T config, int kvHeadsDefault, int maxPositionsDefault, bool tieDefault) where T : DecoderConfig
    {
        int hidden = Int("hidden_size");
        int heads = Int("num_attention_heads");
        DecoderConfig common = config; // `with` keeps the runtime (family) type
        return (T)(common with
        {
            ModelType = ModelType,
            VocabSize = Int("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = Int("intermediate_size"),
            NumHiddenLayers = Int("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = KeyValueHeads(heads, kvHeadsDefault),
            HeadDim = OptPositive("head_dim") ?? hidden / heads,
            RmsNormEps = OptDouble("rms_norm_eps", 1e-6),
            MaxPositionEmbeddings = OptPositive("max_position_embeddings") ?? maxPositionsDefault,
            TieWordEmbeddings = OptBool("tie_word_embeddings", tieDefault),
            BosTokenId = OptInt("bos_token_id"),
            EosTokenIds = Root.TryGetProperty("eos_token_id", out var eos)
                ? eos.ValueKind == JsonValueKind.Array ? eos.EnumerateArray().Select(e => e.GetInt32()).ToArray()
                  : eos.ValueKind == JsonValueKind.Number ? [eos.GetInt32()] : []
                : [],
            PadTokenId = OptInt("pad_token_id"),
            TorchDtype = Root.TryGetProperty("torch_dtype", out var td) ? td.GetString() : Root.TryGetProperty("dtype", out var d) ? d.GetString() : null,
            Raw = Root,
        });
    }

    /// <summary>The activation name, refused unless it is one of <paramref name="supported"/>.</summary>
    public string Activation(string key, string fallback, params string[] supported)
    {
        string activation = OptString(key, fallback);
        if (!supported.Contains(activation))
            throw Error($"{key} '{activation}' is not supported; the {ModelType} MLP here takes {string.Join(" or ", supported.Select(s => $"'{s}'"))}.");
        return activation;
    }

    /// <summary>The rope types modeling_rope_utils defines that this stack computes.</summary>
    public static readonly IReadOnlyList<string> SupportedRopeTypes = ["default", "linear", "dynamic", "yarn", "longrope", "llama3"];

    /// <summary>
    /// Reads one flat RoPE dict as transformers 5 standardises it: <c>rope_scaling</c> (legacy) wins over
    /// <c>rope_parameters</c> when both are given; <c>rope_theta</c> inside the dict wins over the top-level one
    /// (default <paramref name="defaultTheta"/>); <c>rope_type</c> wins over the legacy <c>type</c>; llama3/yarn/longrope
    /// take <c>original_max_position_embeddings</c> from the top level when present, else from the dict, else
    /// max_position_embeddings; <c>partial_rotary_factor</c> from the top level, else the dict, else 1.
    /// </summary>
    public RopeSettings FlatRope(int maxPositions, double defaultTheta = 10000)
    {
        JsonElement rope = default;
        string key = "";
        if (Root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object && rs.EnumerateObject().Any())
            (rope, key) = (rs, "rope_scaling");
        else if (Root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object)
            (rope, key) = (rp, "rope_parameters");
        if (key.Length > 0)
        {
            var entries = rope.EnumerateObject().ToList();
            if (entries.Count > 0 && entries.All(e => e.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Null))
                throw Error($"'{key}' is nested per layer type ({string.Join(", ", entries.Select(e => e.Name))}); the {ModelType} models " +
                    "use one flat RoPE dict for all layers (transformers reads rope_parameters[\"rope_type\"]).");
        }
        return ReadRope(rope, key, maxPositions, defaultTheta);
    }

    /// <summary>Reads a RoPE dict (<paramref name="key"/> names it in errors; empty = none).</summary>
    public RopeSettings ReadRope(JsonElement rope, string key, int maxPositions, double defaultTheta)
    {
        double theta = Root.TryGetProperty("rope_theta", out var topTheta) && topTheta.ValueKind == JsonValueKind.Number ? topTheta.GetDouble() : defaultTheta;
        double? partial = Root.TryGetProperty("partial_rotary_factor", out var prf) && prf.ValueKind == JsonValueKind.Number ? prf.GetDouble() : null;
        if (key.Length > 0)
        {
            if (rope.TryGetProperty("rope_theta", out var rt) && rt.ValueKind == JsonValueKind.Number) theta = rt.GetDouble();
            if (rope.TryGetProperty("partial_rotary_factor", out var p2) && p2.ValueKind == JsonValueKind.Number) partial ??= p2.GetDouble();
        }
        double factorOfHead = partial ?? 1.0;
        if (!(factorOfHead > 0 && factorOfHead <= 1))
            throw Error($"partial_rotary_factor {factorOfHead} is outside (0, 1].");
        if (key.Length == 0) return new RopeSettings(theta, null, factorOfHead);

        string type = rope.TryGetProperty("rope_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()!
            : rope.TryGetProperty("type", out var t2) && t2.ValueKind == JsonValueKind.String ? t2.GetString()! : "default";
        if (!SupportedRopeTypes.Contains(type))
            throw Error($"{key}.rope_type '{type}' is not supported; supported: {string.Join(", ", SupportedRopeTypes)}.");
        if (type == "default") return new RopeSettings(theta, null, factorOfHead);

        double? Opt(string name) => rope.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        double Required(string name) => Opt(name) ?? throw Error($"{key}.{name} is missing or not a number; rope_type '{type}' needs it.");
        IReadOnlyList<double> List(string name) => rope.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(x => x.GetDouble()).ToArray()
            : throw Error($"{key}.{name} is missing or not a list; rope_type '{type}' needs it.");
        int original = Root.TryGetProperty("original_max_position_embeddings", out var om) && om.ValueKind == JsonValueKind.Number ? om.GetInt32()
            : (int)(Opt("original_max_position_embeddings") ?? maxPositions);
        RopeScaling scaling = type switch
        {
            "linear" or "dynamic" => new RopeScaling(type, Required("factor"), OriginalMaxPositionEmbeddings: original),
            "llama3" => new RopeScaling(type, Required("factor"), Required("low_freq_factor"), Required("high_freq_factor"), original),
            "yarn" => new RopeScaling(type, Opt("factor") ?? (double)maxPositions / original, OriginalMaxPositionEmbeddings: original,
                AttentionFactor: Opt("attention_factor"),
                BetaFast: Opt("beta_fast") is double bf && bf != 0 ? bf : 32, BetaSlow: Opt("beta_slow") is double bs && bs != 0 ? bs : 1,
                Mscale: Opt("mscale"), MscaleAllDim: Opt("mscale_all_dim"),
                Truncate: !rope.TryGetProperty("truncate", out var tr) || tr.ValueKind == JsonValueKind.True || (tr.ValueKind == JsonValueKind.Number && tr.GetDouble() != 0)),
            // longrope: transformers takes factor = max_position_embeddings / original when the dict has none.
            _ => new RopeScaling(type, Opt("factor") ?? (double)maxPositions / original, OriginalMaxPositionEmbeddings: original,
                AttentionFactor: Opt("attention_factor"), ShortFactor: List("short_factor"), LongFactor: List("long_factor")),
        };
        return new RopeSettings(theta, scaling, factorOfHead);
    }
}
