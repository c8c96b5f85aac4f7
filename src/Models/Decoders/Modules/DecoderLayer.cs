using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Modules;

/// <summary>One decoder layer (checkpoint prefix model.layers.N); each family arranges attention, MLP and norms its way.</summary>
internal abstract class DecoderLayer(int index) : nn.Module($"{index}")
{
    /// <summary>The layer's index (model.layers.N).</summary>
    protected int Index { get; } = index;

    /// <summary>[batch, seq, hidden] → [batch, seq, hidden].</summary>
    public abstract Tensor Forward(Tensor hidden, DecoderState state);
}

/// <summary>Pre-norm layer (Llama, Qwen2/3, Mistral, Phi-3): x + attn(norm(x)), then + mlp(norm(·)).</summary>
internal sealed class PreNormDecoderLayer : DecoderLayer
{
    private readonly Attention self_attn;
    private readonly GatedMlp mlp;
    private readonly RmsNorm input_layernorm;
    private readonly RmsNorm post_attention_layernorm;

    public PreNormDecoderLayer(int index, Attention attention, GatedMlp mlp, DecoderConfig config, ScalarType dtype, Device device) : base(index)
    {
        self_attn = attention;
        this.mlp = mlp;
        input_layernorm = new RmsNorm("input_layernorm", config.HiddenSize, config.RmsNormEps, config.NormStyle, dtype, device);
        post_attention_layernorm = new RmsNorm("post_attention_layernorm", config.HiddenSize, config.RmsNormEps, config.NormStyle, dtype, device);
        RegisterComponents();
    }

    public override Tensor Forward(Tensor hidden, DecoderState state)
    {
        using var scope = NewDisposeScope();
        var h = hidden + self_attn.Forward(input_layernorm.forward(hidden), state);
        return (h + mlp.Forward(post_attention_layernorm.forward(h), state.Fused?.GateUp(Index))).MoveToOuterDisposeScope();
    }
}
