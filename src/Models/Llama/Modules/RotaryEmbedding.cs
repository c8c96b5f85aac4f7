using static TorchSharp.torch;

namespace PrefPipe.Models.Llama.Modules;

/// <summary>
/// Rotary position embedding tables as transformers' modeling_rope_utils computes them (default, linear, dynamic,
/// yarn, longrope, llama3): the same float32 tensor operations in the same order, so the inverse frequencies match
/// bit for bit on CPU, and the same attention scaling of cos/sin (yarn, longrope).
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor _invFreq; // [head_dim / 2] float32

    public RotaryEmbedding(LlamaConfig config, Device device)
    {
        using var scope = NewDisposeScope();
        var (inv, scaling) = InverseFrequencies(config);
        AttentionScaling = scaling;
        _invFreq = inv.to(device).DetachFromDisposeScope();
    }

    /// <summary>The factor cos and sin are multiplied by (transformers' attention_scaling; 1 except for yarn and longrope).</summary>
    public double AttentionScaling { get; }

    /// <summary>The inverse frequencies on the CPU, [head_dim / 2] float32, and the attention scaling, for a config.</summary>
    internal static (Tensor InvFreq, double AttentionScaling) InverseFrequencies(LlamaConfig config)
    {
        using var scope = NewDisposeScope();
        int dim = config.HeadDim;
        double theta = config.RopeTheta;
        // base ** (arange(0, dim, 2).float() / dim): a Python float base is a wrapped scalar, so the power is float32.
        Tensor Powers(double b) => full(new long[] { (dim + 1) / 2 }, (float)b, float32).pow(arange(0, dim, 2, int64).to(float32) / dim);
        var s = config.RopeScaling;
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
                double mpe = config.MaxPositionEmbeddings;
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
                // Short factors: positions within original_max_position_embeddings (longer inputs are refused).
                var shortFactor = s.ShortFactor ?? [];
                if (shortFactor.Count != dim / 2)
                    throw new InvalidDataException($"rope_parameters.short_factor has {shortFactor.Count} entries; head_dim {dim} needs {dim / 2}.");
                attention = s.AttentionFactor
                    ?? (s.Factor <= 1.0 ? 1.0 : Math.Sqrt(1 + Math.Log(s.Factor) / Math.Log(s.OriginalMaxPositionEmbeddings)));
                var ext = tensor(shortFactor.Select(x => (float)x).ToArray(), float32);
                inv = 1.0 / (ext * Powers(theta));
                break;
            }
            default:
                throw new NotSupportedException($"rope_type '{s.Type}' is not supported.");
        }
        return (inv.to(float32).MoveToOuterDisposeScope(), attention);
    }

    /// <summary>
    /// Refuses positions where transformers would switch frequencies at run time (dynamic NTK beyond
    /// max_position_embeddings, longrope's long factors beyond original_max_position_embeddings), which are not implemented.
    /// </summary>
    internal static void CheckPositions(LlamaConfig config, long positions)
    {
        int? limit = config.RopeScaling?.Type switch
        {
            "dynamic" => config.MaxPositionEmbeddings,
            "longrope" => config.RopeScaling.OriginalMaxPositionEmbeddings,
            _ => null,
        };
        if (limit is int max && positions > max)
            throw new NotSupportedException(
                $"{positions} positions exceed {max} for this {config.ModelType} model's rope_type '{config.RopeScaling!.Type}': transformers recomputes " +
                $"the frequencies beyond that length, which is not implemented here, so longer sequences would not match. Keep prompt + response within {max} tokens.");
    }

    /// <summary>
    /// cos and signed sin for positions [batch, seq] → each [batch, 1, seq, head_dim] in <paramref name="dtype"/>, ready to
    /// broadcast over heads. The sine's first half is negated, so rotate_half(x)·sin = roll(x, half)·signed_sin.
    /// </summary>
    public (Tensor Cos, Tensor SignedSin) Compute(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var freqs = positionIds.to(float32).unsqueeze(-1) * _invFreq; // [batch, seq, head_dim/2] float32
        var cos = freqs.cos();
        var sin = freqs.sin();
        if (AttentionScaling != 1.0)
        {
            cos = cos * AttentionScaling;
            sin = sin * AttentionScaling;
        }
        var cosFull = cat([cos, cos], -1).unsqueeze(1).to(dtype);        // [batch, 1, seq, head_dim]
        var signedSin = cat([-sin, sin], -1).unsqueeze(1).to(dtype);     // [batch, 1, seq, head_dim]
        return (cosFull.MoveToOuterDisposeScope(), signedSin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// x·cos + rotate_half(x)·sin for x [batch, heads, seq, head_dim], as x·cos + roll(x, half)·signed_sin (one kernel
    /// for the rotation instead of neg + cat); cos/signed_sin [batch, 1, seq, head_dim] from <see cref="Compute"/>.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        return (x * cos + x.roll(half, -1) * signedSin).MoveToOuterDisposeScope();
    }

    public void Dispose() => _invFreq.Dispose();
}
