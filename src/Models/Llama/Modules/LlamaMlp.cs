using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Llama.Modules;

/// <summary>SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)).</summary>
internal sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly HfLinear gate_proj;
    private readonly HfLinear up_proj;
    private readonly HfLinear down_proj;

    public LlamaMlp(LlamaConfig config, ScalarType dtype, Device device) : base("mlp")
    {
        gate_proj = new HfLinear("gate_proj", config.HiddenSize, config.IntermediateSize, config.MlpBias, dtype, device);
        up_proj = new HfLinear("up_proj", config.HiddenSize, config.IntermediateSize, config.MlpBias, dtype, device);
        down_proj = new HfLinear("down_proj", config.IntermediateSize, config.HiddenSize, config.MlpBias, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}
