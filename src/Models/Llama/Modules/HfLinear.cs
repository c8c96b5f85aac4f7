using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Llama.Modules;

/// <summary>y = x·Wᵀ + b with HF's parameter names (weight [out, in], bias [out]); allocated empty: weights come from the checkpoint.</summary>
internal sealed class HfLinear : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter? bias;

    public HfLinear(string name, long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base(name)
    {
        weight = new Parameter(empty(new[] { outFeatures, inFeatures }, dtype, device)); // [out, in]
        if (hasBias) bias = new Parameter(zeros(new[] { outFeatures }, dtype, device)); // [out]
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public override Tensor forward(Tensor input) => nn.functional.linear(input, weight, bias);
}

/// <summary>RMSNorm as Llama computes it: in float32, then scaled by the weight in the input dtype.</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    public RmsNorm(string name, long size, double eps, ScalarType dtype, Device device) : base(name)
    {
        weight = new Parameter(ones(new[] { size }, dtype, device)); // [hidden]
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(float32);
        var normed = x * (x.square().mean([-1L], keepdim: true) + _eps).rsqrt();
        return (weight * normed.to(input.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Token embedding with HF's parameter name (weight [vocab, hidden]).</summary>
internal sealed class HfEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;

    public HfEmbedding(string name, long vocab, long hidden, ScalarType dtype, Device device) : base(name)
    {
        weight = new Parameter(empty(new[] { vocab, hidden }, dtype, device)); // [vocab, hidden]
        RegisterComponents();
    }

    public Parameter Weight => weight;

    /// <summary>[batch, seq] int64 → [batch, seq, hidden].</summary>
    public override Tensor forward(Tensor ids)
    {
        using var flat = ids.reshape(-1);
        using var rows = weight.index_select(0, flat);
        return rows.view([.. ids.shape, weight.shape[1]]);
    }
}
