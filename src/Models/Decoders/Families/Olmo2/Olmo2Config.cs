using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Olmo2;

/// <summary>
/// OLMo 2 (modeling_olmo2.py): norms after each sublayer, inside the residual (no input norm), q_norm/k_norm over the
/// whole q and k projections before splitting heads, RMSNorm weights applied in float32, SwiGLU.
/// </summary>
public sealed record Olmo2Config : DecoderConfig
{
    internal override RmsNormStyle NormStyle => RmsNormStyle.WeightInFloat32;

    internal static DecoderConfig Read(ConfigReader r)
    {
        var config = r.ReadCommon(new Olmo2Config(), kvHeadsDefault: r.Int("num_attention_heads"), maxPositionsDefault: 2048, tieDefault: false);
        var rope = r.FlatRope(config.MaxPositionEmbeddings);
        if (rope.PartialRotaryFactor != 1.0) throw r.Error($"partial_rotary_factor {rope.PartialRotaryFactor} is not supported: OLMo 2 rotates the whole head_dim.");
        r.Activation("hidden_act", "silu", "silu", "swish");
        bool bias = r.OptBool("attention_bias", false);
        return config with
        {
            RmsNormEps = r.OptDouble("rms_norm_eps", 1e-5),
            RopeTheta = rope.Theta,
            RopeScaling = rope.Scaling,
            LayerTypes = Enumerable.Repeat(FullAttention, config.NumHiddenLayers).ToArray(),
            AttentionQkvBias = bias,
            AttentionOutputBias = bias,
        };
    }

    internal override DecoderLayer CreateLayer(int index, ScalarType dtype, Device device) =>
        new Olmo2DecoderLayer(index,
            new AttentionSpec(index, HiddenSize, NumAttentionHeads, NumKeyValueHeads, HeadDim, 1.0 / Math.Sqrt(HeadDim), Sliding: false)
            {
                QkvBias = AttentionQkvBias,
                OutputBias = AttentionOutputBias,
                QkNorm = QkNorm.WholeProjection,
                NormStyle = RmsNormStyle.WeightInFloat32,
                NormEps = RmsNormEps,
            }, this, dtype, device);
}
