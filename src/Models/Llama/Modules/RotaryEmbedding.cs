using static TorchSharp.torch;

namespace PrefPipe.Models.Llama.Modules;

/// <summary>Rotary position embedding tables (default, linear and Llama-3 frequency scaling), computed in float32.</summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor _invFreq; // [head_dim / 2] float32

    public RotaryEmbedding(LlamaConfig config, Device device)
    {
        int dim = config.HeadDim;
        var inv = new float[dim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = (float)(1.0 / Math.Pow(config.RopeTheta, 2.0 * i / dim));
        if (config.RopeScaling is { } s)
        {
            if (s.Type == "linear")
            {
                for (int i = 0; i < inv.Length; i++) inv[i] = (float)(inv[i] / s.Factor);
            }
            else if (s.Type == "llama3")
            {
                double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
                double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
                for (int i = 0; i < inv.Length; i++)
                {
                    double f = inv[i];
                    double wavelen = 2 * Math.PI / f;
                    double scaled = wavelen > lowWavelen ? f / s.Factor : f;
                    if (!(wavelen < highWavelen) && !(wavelen > lowWavelen))
                    {
                        double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                        scaled = (1 - smooth) * scaled / s.Factor + smooth * scaled;
                    }
                    inv[i] = (float)scaled;
                }
            }
        }
        _invFreq = tensor(inv, float32, device).DetachFromDisposeScope();
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
