using PrefPipe.Models.Decoders;
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
    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>
    /// gate_proj and up_proj stacked as [2, hidden, intermediate] (a transposed view of [gate; up], the layout of the
    /// batched product in <see cref="Forward"/>), or null where the module holds gate_up_proj already, has biases, or a projection is not a plain linear map
    /// any more (<see cref="InferenceWeights.Plain"/>).
    /// </summary>
    internal LinearWeights? StackGateUp()
    {
        if (gate_proj is null || gate_proj.Bias is not null || !InferenceWeights.Plain(this, [gate_proj, up_proj!])) return null;
        using var _ = no_grad();
        using var stacked = stack([gate_proj.Weight, up_proj!.Weight]);                 // [2, intermediate, hidden]
        return new LinearWeights(stacked.transpose(1, 2).DetachFromDisposeScope(), null); // [2, hidden, intermediate]
    }

    /// <summary>[..., hidden] → [..., hidden], with the inference-time stack of <see cref="StackGateUp"/> when given.</summary>
    public Tensor Forward(Tensor x, LinearWeights? fused)
    {
        using var scope = NewDisposeScope();
        Tensor gate, up;
        if (fused is { } f && gate_up_proj is null)
        {
            // One batched product into [2, rows, intermediate]: gate and up each come out contiguous, so the activation
            // runs over the same memory layout as with two products (on CPU a strided half would take libtorch's scalar
            // tail path for some elements and change the last bits of silu/gelu).
            long hidden = x.shape[^1];
            var rows = x.reshape(1, -1, hidden);                                 // [1, rows, hidden]
            var pair = matmul(rows, f.Weight);                                   // [2, rows, intermediate]
            var activatedPair = Activate(pair.select(0, 0)) * pair.select(0, 1); // [rows, intermediate]
            return down_proj.forward(activatedPair).view(x.shape).MoveToOuterDisposeScope();
        }
        if (gate_up_proj is not null)
        {
            var both = gate_up_proj.forward(x);                                  // [..., 2·intermediate]
            long n = both.shape[^1] / 2;
            (gate, up) = (both.narrow(-1, 0, n), both.narrow(-1, n, n));
        }
        else (gate, up) = (gate_proj!.forward(x), up_proj!.forward(x)); // [..., intermediate] each
        return down_proj.forward(Activate(gate) * up).MoveToOuterDisposeScope();
    }

    private Tensor Activate(Tensor gate) => _activation == GateActivation.GeluTanh
        ? nn.functional.gelu(gate, TorchSharp.Modules.GELU.Approximate.tanh)
        : nn.functional.silu(gate);
}
