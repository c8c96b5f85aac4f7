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

    /// <summary>cos and sin for positions [batch, seq] → each [batch, seq, head_dim] in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var freqs = positionIds.to(float32).unsqueeze(-1) * _invFreq; // [batch, seq, head_dim/2] float32
        var emb = cat([freqs, freqs], -1);                               // [batch, seq, head_dim]
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>x·cos + rotate_half(x)·sin for x [batch, heads, seq, head_dim] and cos/sin [batch, seq, head_dim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return (x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)).MoveToOuterDisposeScope();
    }

    public void Dispose() => _invFreq.Dispose();
}
