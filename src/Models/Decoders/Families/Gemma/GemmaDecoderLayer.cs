using TorchSharp;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Families.Gemma;

/// <summary>
/// Gemma 2/3 layer (Gemma2DecoderLayer, Gemma3DecoderLayer): a norm before and after each sublayer, both inside the
/// residual: x + post_attention_norm(attn(input_norm(x))), then + post_feedforward_norm(mlp(pre_feedforward_norm(·))).
/// </summary>
internal sealed class GemmaDecoderLayer : DecoderLayer
{
    private readonly Attention self_attn;
    private readonly GatedMlp mlp;
    private readonly RmsNorm input_layernorm;
    private readonly RmsNorm post_attention_layernorm;
    private readonly RmsNorm pre_feedforward_layernorm;
    private readonly RmsNorm post_feedforward_layernorm;

    public GemmaDecoderLayer(int index, AttentionSpec attention, DecoderConfig config, ScalarType dtype, Device device) : base(index)
    {
        self_attn = new Attention(attention, dtype, device);
        mlp = new GatedMlp(config.HiddenSize, config.IntermediateSize, GateActivation.GeluTanh, bias: false, fused: false, dtype, device);
        RmsNorm Norm(string name) => new(name, config.HiddenSize, config.RmsNormEps, RmsNormStyle.UnitOffset, dtype, device);
        input_layernorm = Norm("input_layernorm");
        post_attention_layernorm = Norm("post_attention_layernorm");
        pre_feedforward_layernorm = Norm("pre_feedforward_layernorm");
        post_feedforward_layernorm = Norm("post_feedforward_layernorm");
        RegisterComponents();
    }

    public override Tensor Forward(Tensor hidden, DecoderState state)
    {
        using var scope = NewDisposeScope();
        var h = hidden + post_attention_layernorm.forward(self_attn.Forward(input_layernorm.forward(hidden), state));
        return (h + post_feedforward_layernorm.forward(mlp.Forward(pre_feedforward_layernorm.forward(h), state.Fused?.GateUp(Index)))).MoveToOuterDisposeScope();
    }
}
