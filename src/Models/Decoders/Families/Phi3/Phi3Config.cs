using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Phi3;

/// <summary>
/// Phi-3 and Phi-4-mini (modeling_phi3.py): pre-norm layers with a fused qkv_proj ([q; k; v]) and a fused gate_up_proj
/// ([gate; up]), partial rotary (partial_rotary_factor of each head rotates), longrope (short factors up to
/// original_max_position_embeddings, long factors beyond), an optional sliding window on every layer.
/// </summary>
public sealed record Phi3Config : DecoderConfig
{
    internal static DecoderConfig Read(ConfigReader r)
    {
        var config = r.ReadCommon(new Phi3Config(), kvHeadsDefault: r.Int("num_attention_heads"), maxPositionsDefault: 4096, tieDefault: false);
        var rope = r.FlatRope(config.MaxPositionEmbeddings);
        r.Activation("hidden_act", "silu", "silu", "swish");
        int? window = r.OptPositive("sliding_window");
        int layers = config.NumHiddenLayers;
        return config with
        {
            RmsNormEps = r.OptDouble("rms_norm_eps", 1e-5),
            RopeTheta = rope.Theta,
            RopeScaling = rope.Scaling,
            PartialRotaryFactor = rope.PartialRotaryFactor,
            SlidingWindow = window,
            LayerTypes = Enumerable.Repeat(window is null ? FullAttention : SlidingAttention, layers).ToArray(),
        };
    }

    internal override DecoderLayer CreateLayer(int index, ScalarType dtype, Device device) =>
        new PreNormDecoderLayer(index,
            new Attention(new AttentionSpec(index, HiddenSize, NumAttentionHeads, NumKeyValueHeads, HeadDim, 1.0 / Math.Sqrt(HeadDim), IsSliding(index))
            {
                FusedQkv = true,
            }, dtype, device),
            new GatedMlp(HiddenSize, IntermediateSize, GateActivation.Silu, bias: false, fused: true, dtype, device),
            this, dtype, device);
}
