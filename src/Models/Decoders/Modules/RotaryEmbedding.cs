using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Modules;

/// <summary>
/// Rotary position embedding tables as transformers' modeling_rope_utils computes them (default, linear, dynamic,
/// yarn, longrope, llama3): the same float32 tensor operations in the same order, so the inverse frequencies match
/// bit for bit on CPU, and the same attention scaling of cos/sin (yarn, longrope).
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor _invFreq;      // [rotary_dim / 2] float32
    private readonly Tensor? _longInvFreq; // longrope: [rotary_dim / 2] float32 for positions beyond the original context
    private readonly RopeSettings _rope;
    private readonly int _maxPositions;
    private readonly string _modelType;

    /// <summary>The full-attention rotary embedding of <paramref name="config"/>.</summary>
    public RotaryEmbedding(DecoderConfig config, Device device) : this(config.Rope, config.HeadDim, config.MaxPositionEmbeddings, config.ModelType, device) { }

    public RotaryEmbedding(RopeSettings rope, int headDim, int maxPositions, string modelType, Device device)
    {
        using var scope = NewDisposeScope();
        _rope = rope;
        _maxPositions = maxPositions;
        _modelType = modelType;
        var (inv, scaling) = InverseFrequencies(rope, headDim, maxPositions);
        AttentionScaling = scaling;
        _invFreq = inv.to(device).DetachFromDisposeScope();
        if (rope.Scaling?.Type == "longrope")
            _longInvFreq = InverseFrequencies(rope, headDim, maxPositions, longFactors: true).InvFreq.to(device).DetachFromDisposeScope();
    }

    /// <summary>The factor cos and sin are multiplied by (transformers' attention_scaling; 1 except for yarn and longrope).</summary>
    public double AttentionScaling { get; }

    /// <summary>The full-attention inverse frequencies of <paramref name="config"/> on the CPU and the attention scaling.</summary>
    internal static (Tensor InvFreq, double AttentionScaling) InverseFrequencies(DecoderConfig config) =>
        InverseFrequencies(config.Rope, config.HeadDim, config.MaxPositionEmbeddings);

    /// <summary>
    /// The inverse frequencies on the CPU, [rotary_dim / 2] float32 (rotary_dim = int(head_dim · partial_rotary_factor)),
    /// and the attention scaling. <paramref name="longFactors"/>: longrope's table for positions beyond the original context.
    /// </summary>
    internal static (Tensor InvFreq, double AttentionScaling) InverseFrequencies(RopeSettings rope, int headDim, int maxPositions, bool longFactors = false)
    {
        using var scope = NewDisposeScope();
        int dim = (int)(headDim * rope.PartialRotaryFactor);
        double theta = rope.Theta;
        // base ** (arange(0, dim, 2).float() / dim): a Python float base is a wrapped scalar, so the power is float32.
        Tensor Powers(double b) => full(new long[] { (dim + 1) / 2 }, (float)b, float32).pow(arange(0, dim, 2, int64).to(float32) / dim);
        var s = rope.Scaling;
        Tensor inv;
        double attention = 1.0;
        switch (s?.Type)
        {
            case null:
                inv = 1.0 / Powers(theta);
                break;
            case "dynamic":
            {
                // The initial table (seq_len = max_position_embeddings), which transformers keeps up to that length; longer
                // inputs are refused (CheckPositions). The base change is 1 for the usual factors but computed as transformers does.
                double mpe = maxPositions;
                double b = theta * Math.Pow(s!.Factor * mpe / mpe - (s.Factor - 1), dim / (dim - 2.0));
                inv = 1.0 / Powers(b);
                break;
            }
            case "linear":
                inv = 1.0 / Powers(theta) / s!.Factor;
                break;
            case "llama3":
            {
                inv = 1.0 / Powers(theta);
                double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
                double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
                var wavelen = 2 * Math.PI / inv;
                var llama = where(wavelen > lowWavelen, inv / s.Factor, inv);
                var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                var smoothed = (1 - smooth) * llama / s.Factor + smooth * llama;
                var medium = (wavelen < highWavelen).logical_not().logical_and((wavelen > lowWavelen).logical_not());
                inv = where(medium, smoothed, llama);
                break;
            }
            case "yarn":
            {
                double factor = s.Factor;
                static double GetMscale(double scale, double mscale = 1) => scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;
                attention = s.AttentionFactor
                    ?? (s.Mscale is double m && m != 0 && s.MscaleAllDim is double mad && mad != 0
                        ? GetMscale(factor, m) / GetMscale(factor, mad)
                        : GetMscale(factor));
                double CorrectionDim(double rotations) =>
                    dim * Math.Log(s.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = CorrectionDim(s.BetaFast), high = CorrectionDim(s.BetaSlow);
                if (s.Truncate) (low, high) = (Math.Floor(low), Math.Ceiling(high));
                (low, high) = (Math.Max(low, 0), Math.Min(high, dim - 1));
                if (low == high) high += 0.001; // transformers: prevent singularity
                var posFreqs = Powers(theta);
                var extrapolation = 1.0 / posFreqs;
                var interpolation = 1.0 / (factor * posFreqs);
                var ramp = ((arange(0, dim / 2, float32) - low) / (high - low)).clamp(0, 1);
                var extrapolationFactor = 1 - ramp;
                inv = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
                break;
            }
            case "longrope":
            {
                // Short factors while max(position) + 1 ≤ original_max_position_embeddings, long factors beyond.
                var factors = (longFactors ? s.LongFactor : s.ShortFactor) ?? [];
                string which = longFactors ? "long_factor" : "short_factor";
                if (factors.Count != (dim + 1) / 2)
                    throw new InvalidDataException($"rope_parameters.{which} has {factors.Count} entries; the rotary dimension {dim} (head_dim {headDim} · partial_rotary_factor {rope.PartialRotaryFactor}) needs {(dim + 1) / 2}.");
                attention = s.AttentionFactor
                    ?? (s.Factor <= 1.0 ? 1.0 : Math.Sqrt(1 + Math.Log(s.Factor) / Math.Log(s.OriginalMaxPositionEmbeddings)));
                var ext = tensor(factors.Select(x => (float)x).ToArray(), float32);
                inv = 1.0 / (ext * Powers(theta));
                break;
            }
            default:
                throw new NotSupportedException($"rope_type '{s.Type}' is not supported.");
        }
        return (inv.to(float32).MoveToOuterDisposeScope(), attention);
    }

    /// <summary>
    /// Refuses positions where transformers would recompute the frequencies at run time in a way not implemented here
    /// (dynamic NTK beyond max_position_embeddings). Longrope's switch to its long factors is implemented.
    /// </summary>
    internal void CheckPositions(long positions)
    {
        if (_rope.Scaling?.Type == "dynamic" && positions > _maxPositions)
            throw new NotSupportedException(
                $"{positions} positions exceed {_maxPositions} for this {_modelType} model's rope_type 'dynamic': transformers recomputes " +
                $"the frequencies beyond that length, which is not implemented here, so longer sequences would not match. Keep prompt + response within {_maxPositions} tokens.");
    }

    /// <summary>
    /// Longrope: the length beyond which the long factors apply (transformers compares max(position_ids) + 1 with it,
    /// over the whole batch); null for other rope types.
    /// </summary>
    public int? LongFactorsBeyond => _longInvFreq is null ? null : _rope.Scaling!.OriginalMaxPositionEmbeddings;

    /// <summary>
    /// cos and signed sin for positions [batch, seq] → each [batch, 1, seq, head_dim] in <paramref name="dtype"/>, ready to
    /// broadcast over heads. The sine's first half is negated, so rotate_half(x)·sin = roll(x, half)·signed_sin.
    /// </summary>
    public (Tensor Cos, Tensor SignedSin) Compute(Tensor positionIds, ScalarType dtype, bool longFactors = false)
    {
        using var scope = NewDisposeScope();
        var inv = longFactors && _longInvFreq is not null ? _longInvFreq : _invFreq;
        var freqs = positionIds.to(float32).unsqueeze(-1) * inv;      // [batch, seq, rotary_dim/2] float32
        var cos = freqs.cos();
        var sin = freqs.sin();
        if (AttentionScaling != 1.0)
        {
            cos = cos * AttentionScaling;
            sin = sin * AttentionScaling;
        }
        var cosFull = cat([cos, cos], -1).unsqueeze(1);                  // [batch, 1, seq, rotary_dim]
        var signedSin = cat([-sin, sin], -1).unsqueeze(1);               // [batch, 1, seq, rotary_dim]
        if (dtype != float32) (cosFull, signedSin) = (cosFull.to(dtype), signedSin.to(dtype));
        return (cosFull.MoveToOuterDisposeScope(), signedSin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// x·cos + rotate_half(x)·sin for x [batch, heads, seq, head_dim], as x·cos + roll(x, half)·signed_sin (one kernel
    /// for the rotation instead of neg + cat); cos/signed_sin [batch, 1, seq, rotary_dim] from <see cref="Compute"/>.
    /// With partial rotary (rotary_dim &lt; head_dim) only the first rotary_dim features rotate; the rest pass through (Phi-3).
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin)
    {
        using var scope = NewDisposeScope();
        long rotary = cos.shape[^1], headDim = x.shape[^1];
        if (rotary == headDim)
            return (x * cos + x.roll(rotary / 2, -1) * signedSin).MoveToOuterDisposeScope();
        var rot = x.narrow(-1, 0, rotary);                                      // [b, h, t, rotary_dim]
        var pass = x.narrow(-1, rotary, headDim - rotary);                      // [b, h, t, head_dim − rotary_dim]
        return cat([rot * cos + rot.roll(rotary / 2, -1) * signedSin, pass], -1).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _invFreq.Dispose();
        _longInvFreq?.Dispose();
    }
}
