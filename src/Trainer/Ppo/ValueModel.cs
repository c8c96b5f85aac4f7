using PrefPipe.Models.Decoders;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Ppo;

/// <summary>
/// The critic: a scalar head (v_head) on the final hidden state of a decoder body — its own copy of the policy's body
/// (full fine-tuning), or the policy itself (LoRA: one backbone for actor and critic, as TRL's PEFT PPO; only the head
/// is the critic's own, the shared adapter learns from both losses).
/// </summary>
internal sealed class ValueModel : nn.Module
{
    private readonly CausalLM? body;
    private readonly Parameter v_head;
    private readonly Func<CausalLMInput, Tensor> _hidden;
    private readonly DecoderConfig _config;

    /// <summary>A critic that owns <paramref name="body"/> and trains it with the head.</summary>
    public ValueModel(CausalLM body) : this(body, owned: true)
    {
    }

    private ValueModel(CausalLM body, bool owned) : base("value_model")
    {
        ArgumentNullException.ThrowIfNull(body);
        if (owned) this.body = body;
        _hidden = body.Hidden;
        _config = body.Config;
        v_head = new Parameter(zeros(new long[] { 1, body.Config.HiddenSize }, body.DType, body.Device)); // [1, hidden]: values start at 0
        RegisterComponents();
    }

    /// <summary>A critic head on <paramref name="policy"/>'s hidden states; the policy is not owned and not among <see cref="Trainable"/>.</summary>
    public static ValueModel SharedWith(CausalLM policy) => new(policy, owned: false);

    /// <summary>The owned body, or null when the critic shares the policy's.</summary>
    public CausalLM? Body => body;

    /// <summary>The model config of the body.</summary>
    public DecoderConfig Config => _config;

    /// <summary>Final hidden states of the body. [batch, seq, hidden]</summary>
    public Tensor Hidden(CausalLMInput input) => _hidden(input);

    /// <summary>Values for hidden states [..., hidden] → [...].</summary>
    public Tensor Values(Tensor hidden) => nn.functional.linear(hidden, v_head).squeeze(-1);

    /// <summary>Trainable parameters with checkpoint names, for FlatAdamW and saving: the owned body's and the head.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> Trainable() =>
        (body?.named_parameters().Select(p => ("body." + p.name, p.parameter)) ?? []).Append(("v_head", v_head));
}
