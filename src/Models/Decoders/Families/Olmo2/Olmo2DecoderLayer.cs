using TorchSharp;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Olmo2;

/// <summary>OLMo 2 layer (Olmo2DecoderLayer): x + post_attention_norm(attn(x)), then + post_feedforward_norm(mlp(·)).</summary>
internal sealed class Olmo2DecoderLayer : DecoderLayer
{
    private readonly Attention self_attn;
    private readonly GatedMlp mlp;
    private readonly RmsNorm post_attention_layernorm;
    private readonly RmsNorm post_feedforward_layernorm;

    public Olmo2DecoderLayer(int index, AttentionSpec attention, DecoderConfig config, ScalarType dtype, Device device) : base(index)
    {
        self_attn = new Attention(attention, dtype, device);
        mlp = new GatedMlp(config.HiddenSize, config.IntermediateSize, GateActivation.Silu, bias: false, fused: false, dtype, device);
        post_attention_layernorm = new RmsNorm("post_attention_layernorm", config.HiddenSize, config.RmsNormEps, RmsNormStyle.WeightInFloat32, dtype, device);
        post_feedforward_layernorm = new RmsNorm("post_feedforward_layernorm", config.HiddenSize, config.RmsNormEps, RmsNormStyle.WeightInFloat32, dtype, device);
        RegisterComponents();
    }

    public override Tensor Forward(Tensor hidden, DecoderState state)
    {
        using var scope = NewDisposeScope();
        var h = hidden + post_attention_layernorm.forward(self_attn.Forward(hidden, state));
        return (h + post_feedforward_layernorm.forward(mlp.Forward(h, state.Fused?.GateUp(Index)))).MoveToOuterDisposeScope();
    }
}
