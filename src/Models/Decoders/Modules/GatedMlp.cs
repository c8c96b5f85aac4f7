using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Modules;

/// <summary>The gate's activation: SwiGLU (silu) or GeGLU (gelu with the tanh approximation, transformers' gelu_pytorch_tanh).</summary>
internal enum GateActivation
{
    /// <summary>silu / swish (Llama, Qwen, Mistral, Phi-3, OLMo 2).</summary>
    Silu,

    /// <summary>gelu_pytorch_tanh (Gemma 2/3).</summary>
    GeluTanh,
}

/// <summary>
/// Gated MLP: down(act(gate(x)) ⊙ up(x)), with gate_proj/up_proj, or Phi-3's fused gate_up_proj whose output is
/// [gate; up] (first half the gate).
/// </summary>
internal sealed class GatedMlp : nn.Module<Tensor, Tensor>
{
    private readonly HfLinear? gate_proj;
    private readonly HfLinear? up_proj;
    private readonly HfLinear? gate_up_proj;
    private readonly HfLinear down_proj;
    private readonly GateActivation _activation;

    public GatedMlp(long hidden, long intermediate, GateActivation activation, bool bias, bool fused, ScalarType dtype, Device device) : base("mlp")
    {
        if (fused) gate_up_proj = new HfLinear("gate_up_proj", hidden, 2 * intermediate, bias, dtype, device);
        else
        {
            gate_proj = new HfLinear("gate_proj", hidden, intermediate, bias, dtype, device);
            up_proj = new HfLinear("up_proj", hidden, intermediate, bias, dtype, device);
        }
        down_proj = new HfLinear("down_proj", intermediate, hidden, bias, dtype, device);
        _activation = activation;
        RegisterComponents();
    }

    /// <summary>[..., hidden] → [..., hidden].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor gate, up;
        if (gate_up_proj is not null)
        {
            var both = gate_up_proj.forward(x);                         // [..., 2·intermediate]
            long n = both.shape[^1] / 2;
            (gate, up) = (both.narrow(-1, 0, n), both.narrow(-1, n, n));
        }
        else (gate, up) = (gate_proj!.forward(x), up_proj!.forward(x)); // [..., intermediate] each
        var activated = _activation == GateActivation.GeluTanh
            ? nn.functional.gelu(gate, TorchSharp.Modules.GELU.Approximate.tanh)
            : nn.functional.silu(gate);
        return down_proj.forward(activated * up).MoveToOuterDisposeScope();
    }
}
