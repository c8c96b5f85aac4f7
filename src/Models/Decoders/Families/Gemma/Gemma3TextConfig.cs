using System.Text.Json;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Gemma;

/// <summary>
/// Gemma 3 text (modeling_gemma3.py, model_type gemma3_text): Gemma 2's layer with per-head (1 + w) q_norm/k_norm
/// before RoPE, layer_types (sliding_window_pattern), and a RoPE per layer type: rope_parameters.full_attention (the
/// global base, with any scaling) and rope_parameters.sliding_attention (the local base); softcapping optional.
/// </summary>
public sealed record Gemma3TextConfig : DecoderConfig
{
    /// <summary>query_pre_attn_scalar: scores are q·k / √(this).</summary>
    public double QueryPreAttnScalar { get; init; } = 256;

    /// <summary>attn_logit_softcapping, or null (default).</summary>
    public double? AttnLogitSoftcapping { get; init; }

    /// <summary>final_logit_softcapping, or null (default).</summary>
    public double? FinalLogitSoftcap { get; init; }

    /// <summary>RoPE of sliding-window layers (rope_parameters.sliding_attention, or the legacy rope_local_base_freq).</summary>
    public RopeSettings LocalRope { get; init; } = new(10000, null);

    /// <inheritdoc />
    public override RopeSettings SlidingRope => LocalRope;

    /// <inheritdoc />
    public override double? EmbeddingScale => Math.Sqrt(HiddenSize);

    /// <inheritdoc />
    public override double? FinalLogitSoftcapping => FinalLogitSoftcap;

    internal override RmsNormStyle NormStyle => RmsNormStyle.UnitOffset;

    internal static DecoderConfig Read(ConfigReader r)
    {
        var config = r.ReadCommon(new Gemma3TextConfig(), kvHeadsDefault: 4, maxPositionsDefault: 131072, tieDefault: true);
        config = config with { HeadDim = r.OptPositive("head_dim") ?? 256 };
        if (r.OptBool("use_bidirectional_attention", false))
            throw r.Error("use_bidirectional_attention is true (an encoder-style Gemma 3); only causal decoders are supported.");
        r.Activation("hidden_activation", "gelu_pytorch_tanh", "gelu_pytorch_tanh");
        int pattern = r.OptPositive("sliding_window_pattern") ?? r.OptPositive("_sliding_window_pattern") ?? 6;
        var layerTypes = r.LayerTypes(config.NumHiddenLayers, i => (i + 1) % pattern != 0 ? SlidingAttention : FullAttention);

        // transformers 5: rope_parameters nested per layer type. Older files: rope_theta / rope_scaling for the global
        // layers and rope_local_base_freq (default 10000) for the local ones.
        RopeSettings full, local;
        if (r.Root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object
            && rp.TryGetProperty(FullAttention, out var fullDict) && fullDict.ValueKind == JsonValueKind.Object)
        {
            full = r.ReadRope(fullDict, $"rope_parameters.{FullAttention}", config.MaxPositionEmbeddings, 1_000_000);
            local = rp.TryGetProperty(SlidingAttention, out var localDict) && localDict.ValueKind == JsonValueKind.Object
                ? r.ReadRope(localDict, $"rope_parameters.{SlidingAttention}", config.MaxPositionEmbeddings, 10000)
                : new RopeSettings(r.OptDouble("rope_local_base_freq", 10000), null);
        }
        else
        {
            full = r.FlatRope(config.MaxPositionEmbeddings, defaultTheta: 1_000_000);
            local = new RopeSettings(r.OptDouble("rope_local_base_freq", 10000), null);
        }
        if (full.PartialRotaryFactor != 1.0 || local.PartialRotaryFactor != 1.0)
            throw r.Error("partial_rotary_factor is not supported: Gemma 3 rotates the whole head_dim.");
        bool bias = r.OptBool("attention_bias", false);
        return config with
        {
            RopeTheta = full.Theta,
            RopeScaling = full.Scaling,
            LocalRope = local,
            LayerTypes = layerTypes,
            SlidingWindow = layerTypes.Contains(SlidingAttention) ? r.OptPositive("sliding_window") ?? 4096 : null,
            AttentionQkvBias = bias,
            AttentionOutputBias = bias,
            QueryPreAttnScalar = r.OptDouble("query_pre_attn_scalar", 256),
            AttnLogitSoftcapping = r.OptPositiveDouble("attn_logit_softcapping"),
            FinalLogitSoftcap = r.OptPositiveDouble("final_logit_softcapping"),
        };
    }

    internal override DecoderLayer CreateLayer(int index, ScalarType dtype, Device device) =>
        new GemmaDecoderLayer(index,
            new AttentionSpec(index, HiddenSize, NumAttentionHeads, NumKeyValueHeads, HeadDim, 1.0 / Math.Sqrt(QueryPreAttnScalar), IsSliding(index))
            {
                QkvBias = AttentionQkvBias,
                OutputBias = AttentionOutputBias,
                QkNorm = QkNorm.PerHead,
                NormStyle = RmsNormStyle.UnitOffset,
                NormEps = RmsNormEps,
                Softcap = AttnLogitSoftcapping,
            }, this, dtype, device);
}
