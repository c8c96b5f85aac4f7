using PrefPipe.Models.Decoders;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Ppo;

/// <summary>The critic: a copy of the policy's decoder body with a scalar head (v_head) on the final hidden state.</summary>
internal sealed class ValueModel : nn.Module
{
    private readonly CausalLM body;
    private readonly Parameter v_head;

    public ValueModel(CausalLM body) : base("value_model")
    {
        this.body = body;
        v_head = new Parameter(zeros(new long[] { 1, body.Config.HiddenSize }, body.DType, body.Device)); // [1, hidden]: values start at 0
        RegisterComponents();
    }

    public CausalLM Body => body;

    /// <summary>Values for hidden states [..., hidden] → [...].</summary>
    public Tensor Values(Tensor hidden) => nn.functional.linear(hidden, v_head).squeeze(-1);

    /// <summary>Trainable parameters with checkpoint names, for FlatAdamW and saving.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> Trainable() =>
        body.named_parameters().Select(p => ("body." + p.name, p.parameter)).Append(("v_head", v_head));
}
