using System.Text.Json;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Llama;

/// <summary>
/// Llama 2/3, Qwen2/2.5 and Mistral (modeling_llama.py, modeling_qwen2.py, modeling_mistral.py): pre-norm layers,
/// SwiGLU, one RoPE for all layers; sliding windows for Mistral (every layer) and Qwen2 (layer_types).
/// </summary>
public sealed record LlamaConfig : DecoderConfig
{
    /// <summary>Parses a llama, qwen2 or mistral config.json; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">Another model_type, or a missing or invalid field (named).</exception>
    public static new LlamaConfig Parse(JsonElement root, string source) => DecoderConfig.Parse(root, source) as LlamaConfig
        ?? throw new InvalidDataException($"{source}: model_type '{new ConfigReader(root, source).ModelType}' is not a Llama-family type (llama, qwen2, mistral).");

    internal static DecoderConfig Read(ConfigReader r)
    {
        string modelType = r.ModelType;
        var config = r.ReadCommon(new LlamaConfig(),
            kvHeadsDefault: modelType switch { "llama" => r.Int("num_attention_heads"), "qwen2" => 32, _ => 8 },
            maxPositionsDefault: modelType switch { "qwen2" => 32768, "mistral" => 4096 * 32, _ => 2048 },
            tieDefault: false);
        var rope = r.FlatRope(config.MaxPositionEmbeddings);
        if (rope.PartialRotaryFactor != 1.0)
            throw r.Error($"partial_rotary_factor {rope.PartialRotaryFactor} is not supported: the {modelType} attention rotates the whole head_dim " +
                "(transformers would fail on it too); only 1.0 is accepted.");
        r.Activation("hidden_act", "silu", "silu", "swish");

        // Mistral's sliding_window defaults to 4096 when the key is absent (null turns it off) and applies to every layer;
        // Qwen2 uses its sliding_window (default 4096) only with use_sliding_window, on layers from max_window_layers on
        // (or as layer_types says).
        int? Window() => r.Root.TryGetProperty("sliding_window", out var sw) ? sw.ValueKind == JsonValueKind.Number ? sw.GetInt32() : null : 4096;
        int layers = config.NumHiddenLayers;
        int? window = null;
        IReadOnlyList<string> layerTypes = Enumerable.Repeat(FullAttention, layers).ToArray();
        if (modelType == "mistral" && Window() is int mw)
            (window, layerTypes) = (mw, Enumerable.Repeat(SlidingAttention, layers).ToArray());
        else if (modelType == "qwen2" && r.OptBool("use_sliding_window", false) && Window() is int qw)
        {
            int maxWindowLayers = r.OptInt("max_window_layers") ?? 28;
            layerTypes = r.LayerTypes(layers, i => i >= maxWindowLayers ? SlidingAttention : FullAttention);
            window = layerTypes.Contains(SlidingAttention) ? qw : null;
        }
        if (window is <= 0) throw r.Error($"'sliding_window' is {window}; expected a positive whole number or null.");

        // Which projections have a bias, as each modeling file builds them: Llama reads attention_bias (q/k/v/o) and
        // mlp_bias; Qwen2 always has q/k/v bias and never o_proj or MLP bias; Mistral has none (both keys are ignored).
        bool attentionBias = r.OptBool("attention_bias", false);
        bool llama = modelType == "llama";
        return config with
        {
            RopeTheta = rope.Theta,
            RopeScaling = rope.Scaling,
            SlidingWindow = window,
            LayerTypes = layerTypes,
            AttentionQkvBias = modelType == "qwen2" || (llama && attentionBias),
            AttentionOutputBias = llama && attentionBias,
            MlpBias = llama && r.OptBool("mlp_bias", false),
        };
    }

    internal override DecoderLayer CreateLayer(int index, ScalarType dtype, Device device) =>
        new PreNormDecoderLayer(index,
            new Attention(new AttentionSpec(index, HiddenSize, NumAttentionHeads, NumKeyValueHeads, HeadDim, 1.0 / Math.Sqrt(HeadDim), IsSliding(index))
            {
                QkvBias = AttentionQkvBias,
                OutputBias = AttentionOutputBias,
            }, dtype, device),
            new GatedMlp(HiddenSize, IntermediateSize, GateActivation.Silu, MlpBias, fused: false, dtype, device),
            this, dtype, device);
}
