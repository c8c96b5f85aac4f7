using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Modules;

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

    public Parameter? Bias => bias;

    /// <summary>Input features (the weight's second dimension).</summary>
    public long InFeatures => weight.shape[1];

    /// <summary>Output features (the weight's first dimension).</summary>
    public long OutFeatures => weight.shape[0];

    /// <summary>
    /// A low-rank term added to the output (a LoRA adapter), or null. Kept out of the registered submodules, so the
    /// module's parameters, checkpoint names and saved weights stay the base model's. Generation's fast path stacks the
    /// weights of plain projections and never calls this forward, so a layer with a delta is not plain
    /// (InferenceWeights.Plain checks it).
    /// </summary>
    public ILinearDelta? Delta { get; set; }

    public override Tensor forward(Tensor input)
    {
        if (Delta is not { } delta) return nn.functional.linear(input, weight, bias);
        using var y = nn.functional.linear(input, weight, bias);       // [..., out]
        using var d = delta.Forward(input, training);                  // [..., out], y's dtype
        return y + d;
    }
}

/// <summary>A term a linear layer adds to its output: y = x·Wᵀ + b + Δ(x).</summary>
internal interface ILinearDelta
{
    /// <summary>Δ(x) for <paramref name="input"/> [..., in] → [..., out] in the input's dtype; <paramref name="training"/> turns dropout on.</summary>
    Tensor Forward(Tensor input, bool training);
}

/// <summary>How an RMSNorm applies its weight to x̂ = x / rms(x) (always computed in float32).</summary>
internal enum RmsNormStyle
{
    /// <summary>Llama, Qwen, Mistral, Phi-3: w · x̂ cast back to the input dtype first (LlamaRMSNorm).</summary>
    Llama,

    /// <summary>Gemma 2/3: x̂ · (1 + w) in float32, then cast (Gemma2RMSNorm; the weight is stored as an offset from 1).</summary>
    UnitOffset,

    /// <summary>OLMo 2: w · x̂ in float32, then cast (Olmo2RMSNorm).</summary>
    WeightInFloat32,
}

/// <summary>RMSNorm over the last axis, in float32, with the family's weight placement (<see cref="RmsNormStyle"/>).</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;
    private readonly RmsNormStyle _style;

    public RmsNorm(string name, long size, double eps, RmsNormStyle style, ScalarType dtype, Device device) : base(name)
    {
        // Neutral init (1, or 0 for the unit offset); the checkpoint overwrites it.
        weight = new Parameter(style == RmsNormStyle.UnitOffset ? zeros(new[] { size }, dtype, device) : ones(new[] { size }, dtype, device)); // [size]
        _eps = eps;
        _style = style;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        // Casts to the dtype a tensor already has are skipped: libtorch returns the same tensor for them anyway, but each
        // call still costs a native round trip and a managed handle per norm per step.
        static Tensor To(Tensor t, ScalarType dtype) => t.dtype == dtype ? t : t.to(dtype);
        var x = To(input, float32);
        var normed = x * (x.square().mean([-1L], keepdim: true) + _eps).rsqrt(); // float32
        var result = _style switch
        {
            RmsNormStyle.UnitOffset => To(normed * (To(weight, float32) + 1.0), input.dtype),
            RmsNormStyle.WeightInFloat32 => To(weight * normed, input.dtype),
            _ => weight * To(normed, input.dtype),
        };
        return result.MoveToOuterDisposeScope();
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
