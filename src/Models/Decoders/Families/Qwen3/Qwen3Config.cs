using System.Text.Json;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Qwen3;

/// <summary>
/// Qwen3 (modeling_qwen3.py): Llama-style pre-norm layers with per-head q_norm/k_norm before RoPE, an explicit head_dim,
/// attention_bias on q/k/v/o, and Qwen2's sliding-window layers (use_sliding_window, max_window_layers, layer_types).
/// </summary>
public sealed record Qwen3Config : DecoderConfig
{
    internal static DecoderConfig Read(ConfigReader r)
    {
        var config = r.ReadCommon(new Qwen3Config(), kvHeadsDefault: 8, maxPositionsDefault: 32768, tieDefault: false);
        // Qwen3Config's head_dim default is 128, not hidden / heads.
        config = config with { HeadDim = r.OptPositive("head_dim") ?? 128 };
        var rope = r.FlatRope(config.MaxPositionEmbeddings);
        if (rope.PartialRotaryFactor != 1.0)
            throw r.Error($"partial_rotary_factor {rope.PartialRotaryFactor} is not supported: Qwen3 rotates the whole head_dim.");
        r.Activation("hidden_act", "silu", "silu", "swish");
        int layers = config.NumHiddenLayers;
        int? window = null;
        IReadOnlyList<string> layerTypes = Enumerable.Repeat(FullAttention, layers).ToArray();
        int? sliding = r.Root.TryGetProperty("sliding_window", out var sw) ? sw.ValueKind == JsonValueKind.Number ? sw.GetInt32() : null : 4096;
        if (r.OptBool("use_sliding_window", false) && sliding is int w)
        {
            int maxWindowLayers = r.OptInt("max_window_layers") ?? 28;
            layerTypes = r.LayerTypes(layers, i => i >= maxWindowLayers ? SlidingAttention : FullAttention);
            window = layerTypes.Contains(SlidingAttention) ? w : null;
        }
        if (window is <= 0) throw r.Error($"'sliding_window' is {window}; expected a positive whole number or null.");
        bool bias = r.OptBool("attention_bias", false);
        return config with
        {
            RopeTheta = rope.Theta,
            RopeScaling = rope.Scaling,
            SlidingWindow = window,
            LayerTypes = layerTypes,
            AttentionQkvBias = bias,
            AttentionOutputBias = bias,
        };
    }

    internal override DecoderLayer CreateLayer(int index, ScalarType dtype, Device device) =>
        new PreNormDecoderLayer(index,
            new Attention(new AttentionSpec(index, HiddenSize, NumAttentionHeads, NumKeyValueHeads, HeadDim, 1.0 / Math.Sqrt(HeadDim), IsSliding(index))
            {
                QkvBias = AttentionQkvBias,
                OutputBias = AttentionOutputBias,
                QkNorm = QkNorm.PerHead,
                NormStyle = RmsNormStyle.Llama,
                NormEps = RmsNormEps,
            }, dtype, device),
            new GatedMlp(HiddenSize, IntermediateSize, GateActivation.Silu, bias: false, fused: false, dtype, device),
            this, dtype, device);
}
