using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Gemma;

/// <summary>
/// Gemma 2 (modeling_gemma2.py): √hidden-scaled embeddings, (1 + w) RMSNorms, a norm before and after each sublayer,
/// GeGLU (gelu_pytorch_tanh), scores scaled by query_pre_attn_scalar^−½ and soft-capped (attn_logit_softcapping, which
/// SDPA cannot express: those layers run the eager path), final logit softcapping, alternating sliding-window layers.
/// </summary>
public sealed record Gemma2Config : DecoderConfig
{
    /// <summary>query_pre_attn_scalar: scores are q·k / √(this).</summary>
    public double QueryPreAttnScalar { get; init; } = 256;

    /// <summary>attn_logit_softcapping, or null.</summary>
    public double? AttnLogitSoftcapping { get; init; }

    /// <summary>final_logit_softcapping, or null.</summary>
    public double? FinalLogitSoftcap { get; init; }

    /// <inheritdoc />
    public override double? EmbeddingScale => Math.Sqrt(HiddenSize);

    /// <inheritdoc />
    public override double? FinalLogitSoftcapping => FinalLogitSoftcap;

    internal override RmsNormStyle NormStyle => RmsNormStyle.UnitOffset;

    internal static DecoderConfig Read(ConfigReader r)
    {
        var config = r.ReadCommon(new Gemma2Config(), kvHeadsDefault: 4, maxPositionsDefault: 8192, tieDefault: true);
        config = config with { HeadDim = r.OptPositive("head_dim") ?? 256 };
        var rope = r.FlatRope(config.MaxPositionEmbeddings);
        if (rope.PartialRotaryFactor != 1.0) throw r.Error($"partial_rotary_factor {rope.PartialRotaryFactor} is not supported: Gemma 2 rotates the whole head_dim.");
        r.Activation("hidden_activation", "gelu_pytorch_tanh", "gelu_pytorch_tanh");
        var layerTypes = r.LayerTypes(config.NumHiddenLayers, i => (i + 1) % 2 != 0 ? SlidingAttention : FullAttention);
        bool bias = r.OptBool("attention_bias", false);
        return config with
        {
            RopeTheta = rope.Theta,
            RopeScaling = rope.Scaling,
            LayerTypes = layerTypes,
            SlidingWindow = layerTypes.Contains(SlidingAttention) ? r.OptPositive("sliding_window") ?? 4096 : null,
            AttentionQkvBias = bias,
            AttentionOutputBias = bias,
            QueryPreAttnScalar = r.OptDouble("query_pre_attn_scalar", 256),
            AttnLogitSoftcapping = r.Has("attn_logit_softcapping") ? r.OptPositiveDouble("attn_logit_softcapping") : r.Root.TryGetProperty("attn_logit_softcapping", out _) ? null : 50.0,
            FinalLogitSoftcap = r.Has("final_logit_softcapping") ? r.OptPositiveDouble("final_logit_softcapping") : r.Root.TryGetProperty("final_logit_softcapping", out _) ? null : 30.0,
        };
    }

    internal override DecoderLayer CreateLayer(int index, ScalarType dtype, Device device) =>
        new GemmaDecoderLayer(index,
            new AttentionSpec(index, HiddenSize, NumAttentionHeads, NumKeyValueHeads, HeadDim, 1.0 / Math.Sqrt(QueryPreAttnScalar), IsSliding(index))
            {
                QkvBias = AttentionQkvBias,
                OutputBias = AttentionOutputBias,
                Softcap = AttnLogitSoftcapping,
            }, this, dtype, device);
}
