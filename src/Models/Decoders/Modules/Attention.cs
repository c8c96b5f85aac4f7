using PrefPipe.Models.Decoders;
using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Modules;

/// <summary>Where a family normalises queries and keys before RoPE.</summary>
internal enum QkNorm
{
    /// <summary>No q/k norm (Llama, Qwen2, Mistral, Phi-3, Gemma 2).</summary>
    None,

    /// <summary>RMSNorm over head_dim, per head (Qwen3, Gemma 3: q_norm/k_norm weights [head_dim]).</summary>
    PerHead,

    /// <summary>RMSNorm over the whole projection, before splitting heads (OLMo 2: weights [heads·head_dim], [kv_heads·head_dim]).</summary>
    WholeProjection,
}

/// <summary>What one attention block computes; each family fills it from its config.</summary>
/// <param name="Layer">Layer index (the KV cache slot).</param>
/// <param name="HiddenSize">Model width.</param>
/// <param name="Heads">Query heads.</param>
/// <param name="KvHeads">Key/value heads.</param>
/// <param name="HeadDim">Per-head size.</param>
/// <param name="Scale">Multiplier of q·k (1/√head_dim; Gemma: query_pre_attn_scalar^−½).</param>
/// <param name="Sliding">Whether the layer attends within the sliding window (uses the sliding mask and RoPE).</param>
internal sealed record AttentionSpec(int Layer, int HiddenSize, int Heads, int KvHeads, int HeadDim, double Scale, bool Sliding)
{
    /// <summary>Bias on q/k/v (or the fused qkv_proj).</summary>
    public bool QkvBias { get; init; }

    /// <summary>Bias on o_proj.</summary>
    public bool OutputBias { get; init; }

    /// <summary>One qkv_proj [q; k; v] instead of q_proj, k_proj, v_proj (Phi-3).</summary>
    public bool FusedQkv { get; init; }

    /// <summary>q/k normalisation.</summary>
    public QkNorm QkNorm { get; init; }

    /// <summary>Style of the q/k RMSNorms.</summary>
    public RmsNormStyle NormStyle { get; init; }

    /// <summary>Epsilon of the q/k RMSNorms.</summary>
    public double NormEps { get; init; } = 1e-6;

    /// <summary>Scores become tanh(scores / cap) · cap before the mask (Gemma 2 attn_logit_softcapping), or null.</summary>
    public double? Softcap { get; init; }
}

/// <summary>
/// Multi-head attention with grouped-query heads, rotary positions, an optional KV cache, optional q/k norms, and either
/// SDPA or, where SDPA cannot express the family (logit softcapping, which acts on the scores before softmax), the eager
/// path transformers' eager_attention_forward computes. Linear submodules keep the checkpoint's names (q_proj … o_proj,
/// or Phi-3's qkv_proj), so weights load as they are and LoRA finds them by name.
/// </summary>
internal sealed class Attention : nn.Module
{
    private readonly HfLinear? q_proj;
    private readonly HfLinear? k_proj;
    private readonly HfLinear? v_proj;
    private readonly HfLinear? qkv_proj;
    private readonly HfLinear o_proj;
    private readonly RmsNorm? q_norm;
    private readonly RmsNorm? k_norm;
    private readonly AttentionSpec _spec;

    public AttentionSpec Spec => _spec;

    public Attention(AttentionSpec spec, ScalarType dtype, Device device) : base("self_attn")
    {
        _spec = spec;
        long q = (long)spec.Heads * spec.HeadDim, kv = (long)spec.KvHeads * spec.HeadDim;
        if (spec.FusedQkv)
            qkv_proj = new HfLinear("qkv_proj", spec.HiddenSize, q + 2 * kv, spec.QkvBias, dtype, device);
        else
        {
            q_proj = new HfLinear("q_proj", spec.HiddenSize, q, spec.QkvBias, dtype, device);
            k_proj = new HfLinear("k_proj", spec.HiddenSize, kv, spec.QkvBias, dtype, device);
            v_proj = new HfLinear("v_proj", spec.HiddenSize, kv, spec.QkvBias, dtype, device);
        }
        o_proj = new HfLinear("o_proj", q, spec.HiddenSize, spec.OutputBias, dtype, device);
        if (spec.QkNorm != QkNorm.None)
        {
            bool perHead = spec.QkNorm == QkNorm.PerHead;
            q_norm = new RmsNorm("q_norm", perHead ? spec.HeadDim : q, spec.NormEps, spec.NormStyle, dtype, device);
            k_norm = new RmsNorm("k_norm", perHead ? spec.HeadDim : kv, spec.NormEps, spec.NormStyle, dtype, device);
        }
        RegisterComponents();
    }

    /// <param name="hidden">[batch, seq, hidden]</param>
    /// <param name="state">RoPE tables and masks of this forward (the layer's type picks full or sliding), and the cache.</param>
    public Tensor Forward(Tensor hidden, DecoderState state)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1];
        int heads = _spec.Heads, kvHeads = _spec.KvHeads, d = _spec.HeadDim;
        Tensor q, k, v;
        var (cos, sin) = _spec.Sliding ? state.SlidingRope : state.FullRope;
        // One [q; k; v] product: the module's own qkv_proj (Phi-3), or the inference-time stack of q/k/v_proj.
        Tensor? qkv = qkv_proj?.forward(hidden)
            ?? (state.Fused?.Qkv(_spec.Layer) is { } fused ? nn.functional.linear(hidden, fused.Weight, fused.Bias) : null); // [b, t, (heads + 2·kv)·d]
        if (qkv is not null && _spec.QkNorm == QkNorm.None)
        {
            // Heads of q, k and v side by side: RoPE rotates the q and k heads in one pass (it acts per head, with the
            // same cos/sin for every head), then q, k, v are views of the result and of the product.
            var all = qkv.view(b, t, heads + 2 * kvHeads, d).transpose(1, 2);   // [b, heads + 2·kv, t, d]
            var qk = RotaryEmbedding.Apply(all.narrow(1, 0, heads + kvHeads), cos, sin); // [b, heads + kv, t, d]
            q = qk.narrow(1, 0, heads);                                           // [b, heads, t, d]
            k = qk.narrow(1, heads, kvHeads);                                     // [b, kv, t, d]
            v = all.narrow(1, heads + kvHeads, kvHeads);                          // [b, kv, t, d]
        }
        else
        {
            if (qkv is not null)
            {
                q = qkv.narrow(-1, 0, (long)heads * d);                           // [b, t, heads·d]
                k = qkv.narrow(-1, (long)heads * d, (long)kvHeads * d);           // [b, t, kv·d]
                v = qkv.narrow(-1, (long)(heads + kvHeads) * d, (long)kvHeads * d);
            }
            else
            {
                q = q_proj!.forward(hidden);                                      // [b, t, heads·d]
                k = k_proj!.forward(hidden);                                      // [b, t, kv·d]
                v = v_proj!.forward(hidden);
            }
            if (_spec.QkNorm == QkNorm.WholeProjection)
            {
                q = q_norm!.forward(q);
                k = k_norm!.forward(k);
            }
            q = q.view(b, t, heads, d);
            k = k.view(b, t, kvHeads, d);
            if (_spec.QkNorm == QkNorm.PerHead)
            {
                q = q_norm!.forward(q);                                           // over head_dim
                k = k_norm!.forward(k);
            }
            q = q.transpose(1, 2);                                                // [b, heads, t, d]
            k = k.transpose(1, 2);                                                // [b, kv, t, d]
            v = v.view(b, t, kvHeads, d).transpose(1, 2);                         // [b, kv, t, d]
            q = RotaryEmbedding.Apply(q, cos, sin);
            k = RotaryEmbedding.Apply(k, cos, sin);
        }
        if (state.Cache is not null) (k, v) = state.Cache.Update(_spec.Layer, k, v); // [b, kv, keys, d]
        var mask = _spec.Sliding ? state.SlidingMask : state.FullMask;
        var merged = _spec.Softcap is double cap ? Eager(q, k, v, mask, cap) : Sdpa(q, k, v, mask); // [b, t, heads·d]
        return o_proj.forward(merged).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// q_proj, k_proj, v_proj stacked as one [q; k; v] matrix, or null where the module holds qkv_proj already or a
    /// projection is not a plain linear map any more (<see cref="InferenceWeights.Plain"/>).
    /// </summary>
    internal LinearWeights? StackQkv() =>
        q_proj is null || !InferenceWeights.Plain(this, [q_proj, k_proj!, v_proj!]) ? null : InferenceWeights.Stack([q_proj, k_proj!, v_proj!]);

    private Tensor Sdpa(Tensor q, Tensor k, Tensor v, AttentionMasking mask)
    {
        long b = q.shape[0], t = q.shape[2];
        int heads = _spec.Heads, kvHeads = _spec.KvHeads, d = _spec.HeadDim;
        // SDPA scales by 1/√d; a family with another scale (Gemma's query_pre_attn_scalar) pre-scales the queries.
        double defaultScale = 1.0 / Math.Sqrt(d);
        if (Math.Abs(_spec.Scale - defaultScale) > 1e-12 * defaultScale) q = q * (_spec.Scale / defaultScale);
        if (t == 1 && heads != kvHeads && mask.Additive is null)
        {
            // One query per row: fold each kv head's query group into the query axis, so grouped heads read the cache
            // in place instead of copying it groups× per step. A padding mask [b, 1, 1, keys] broadcasts over the groups.
            int groups = heads / kvHeads;
            var folded = q.reshape(b, kvHeads, groups, d);                               // [b, kv, groups, d]
            var attendedFolded = nn.functional.scaled_dot_product_attention(folded, k, v, mask.Additive, 0.0, false); // [b, kv, groups, d]
            return attendedFolded.reshape(b, 1, (long)heads * d);                       // [b, 1, heads·d]
        }
        (k, v) = RepeatKv(k, v);
        var attended = nn.functional.scaled_dot_product_attention(q, k, v, mask.Additive, 0.0, mask.Causal); // [b, heads, t, d]
        return attended.transpose(1, 2).reshape(b, t, (long)heads * d);                  // [b, t, heads·d]
    }

    /// <summary>
    /// transformers' eager attention with logit softcapping (SDPA has no hook between q·kᵀ and softmax):
    /// softmax(tanh(q·kᵀ·scale / cap)·cap + mask) in float32, cast back, times v.
    /// </summary>
    private Tensor Eager(Tensor q, Tensor k, Tensor v, AttentionMasking mask, double cap)
    {
        long b = q.shape[0], t = q.shape[2];
        (k, v) = RepeatKv(k, v);
        long keys = k.shape[2];
        var scores = q.matmul(k.transpose(2, 3)) * _spec.Scale;                          // [b, heads, t, keys]
        scores = (scores / cap).tanh() * cap;
        if (mask.Additive is not null) scores = scores + mask.Additive;
        else if (mask.Causal)
        {
            var future = ones(new[] { t, keys }, ScalarType.Bool, q.device).triu(keys - t + 1); // [t, keys] true above the diagonal
            scores = scores.masked_fill(future, float.NegativeInfinity);
        }
        var probs = scores.softmax(-1, float32).to(q.dtype);                              // [b, heads, t, keys]
        return probs.matmul(v).transpose(1, 2).reshape(b, t, (long)_spec.Heads * _spec.HeadDim); // [b, t, heads·d]
    }

    private (Tensor K, Tensor V) RepeatKv(Tensor k, Tensor v)
    {
        if (_spec.Heads == _spec.KvHeads) return (k, v);
        int groups = _spec.Heads / _spec.KvHeads;
        return (k.repeat_interleave(groups, dim: 1), v.repeat_interleave(groups, dim: 1)); // [b, heads, keys, d]
    }
}

/// <summary>How attention is masked: an additive mask [batch, 1, seq, keys], or causal without a mask tensor, or neither (one query sees all keys).</summary>
/// <param name="Additive">Additive mask, or null.</param>
/// <param name="Causal">SDPA's is_causal flag (only without <paramref name="Additive"/>).</param>
internal readonly record struct AttentionMasking(Tensor? Additive, bool Causal);

/// <summary>What every layer of one forward shares: RoPE tables and masks per attention type, and the KV cache.</summary>
/// <param name="FullRope">cos and signed sin for full-attention layers, each [batch, 1, seq, rotary_dim].</param>
/// <param name="SlidingRope">The same for sliding-window layers (Gemma 3's local base).</param>
/// <param name="FullMask">Causal + padding masking.</param>
/// <param name="SlidingMask">Causal + padding + sliding-window masking.</param>
/// <param name="Cache">KV cache, or null.</param>
/// <param name="Fused">Fused q/k/v and gate/up projections for inference, or null (the modules' own projections).</param>
internal sealed record DecoderState((Tensor Cos, Tensor SignedSin) FullRope, (Tensor Cos, Tensor SignedSin) SlidingRope,
    AttentionMasking FullMask, AttentionMasking SlidingMask, KvCache? Cache, InferenceWeights? Fused = null);
