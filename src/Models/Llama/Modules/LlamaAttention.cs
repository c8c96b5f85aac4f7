using TorchSharp;
using static TorchSharp.torch;

namespace PrefPipe.Models.Llama.Modules;

/// <summary>Multi-head attention with grouped-query heads, rotary positions and an optional KV cache.</summary>
internal sealed class LlamaAttention : nn.Module
{
    private readonly HfLinear q_proj;
    private readonly HfLinear k_proj;
    private readonly HfLinear v_proj;
    private readonly HfLinear o_proj;
    private readonly int _heads, _kvHeads, _headDim, _layer;

    public LlamaAttention(LlamaConfig config, int layer, ScalarType dtype, Device device) : base("self_attn")
    {
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        _layer = layer;
        q_proj = new HfLinear("q_proj", config.HiddenSize, (long)_heads * _headDim, config.AttentionQkvBias, dtype, device);
        k_proj = new HfLinear("k_proj", config.HiddenSize, (long)_kvHeads * _headDim, config.AttentionQkvBias, dtype, device);
        v_proj = new HfLinear("v_proj", config.HiddenSize, (long)_kvHeads * _headDim, config.AttentionQkvBias, dtype, device);
        o_proj = new HfLinear("o_proj", (long)_heads * _headDim, config.HiddenSize, config.AttentionOutputBias, dtype, device);
        RegisterComponents();
    }

    /// <param name="hidden">[batch, seq, hidden]</param>
    /// <param name="cos">[batch, 1, seq, head_dim]</param>
    /// <param name="sin">Signed sine (first half negated). [batch, 1, seq, head_dim]</param>
    /// <param name="mask">An additive mask [batch, 1, seq, keys] (0 where allowed, the dtype's minimum elsewhere), or the causal flag, or neither.</param>
    /// <param name="cache">KV cache, or null.</param>
    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, AttentionMasking mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1];
        var q = q_proj.forward(hidden).view(b, t, _heads, _headDim).transpose(1, 2);   // [b, heads, t, d]
        var k = k_proj.forward(hidden).view(b, t, _kvHeads, _headDim).transpose(1, 2); // [b, kv, t, d]
        var v = v_proj.forward(hidden).view(b, t, _kvHeads, _headDim).transpose(1, 2); // [b, kv, t, d]
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Update(_layer, k, v);                  // [b, kv, keys, d]
        Tensor merged;
        if (t == 1 && mask.Additive is null && _heads != _kvHeads)
        {
            // One query per row sees every key: fold each kv head's query group into the query axis, so grouped heads
            // read the cache in place instead of copying it groups× per step.
            int groups = _heads / _kvHeads;
            var folded = q.reshape(b, _kvHeads, groups, _headDim);                      // [b, kv, groups, d]
            var attendedFolded = nn.functional.scaled_dot_product_attention(folded, k, v, null, 0.0, false); // [b, kv, groups, d]
            merged = attendedFolded.reshape(b, 1, (long)_heads * _headDim);             // [b, 1, heads·d]
        }
        else
        {
            if (_heads != _kvHeads)
            {
                int groups = _heads / _kvHeads;
                k = k.repeat_interleave(groups, dim: 1);                                // [b, heads, keys, d]
                v = v.repeat_interleave(groups, dim: 1);
            }
            var attended = nn.functional.scaled_dot_product_attention(q, k, v, mask.Additive, 0.0, mask.Causal); // [b, heads, t, d]
            merged = attended.transpose(1, 2).reshape(b, t, (long)_heads * _headDim);   // [b, t, heads·d]
        }
        return o_proj.forward(merged).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(·)).</summary>
internal sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMlp mlp;
    private readonly RmsNorm input_layernorm;
    private readonly RmsNorm post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig config, int layer, ScalarType dtype, Device device) : base($"{layer}")
    {
        self_attn = new LlamaAttention(config, layer, dtype, device);
        mlp = new LlamaMlp(config, dtype, device);
        input_layernorm = new RmsNorm("input_layernorm", config.HiddenSize, config.RmsNormEps, dtype, device);
        post_attention_layernorm = new RmsNorm("post_attention_layernorm", config.HiddenSize, config.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, AttentionMasking mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = hidden + self_attn.Forward(input_layernorm.forward(hidden), cos, sin, mask, cache);
        return (h + mlp.forward(post_attention_layernorm.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>How attention is masked: an additive mask [batch, 1, seq, keys], or causal without a mask tensor, or neither (one query sees all keys).</summary>
/// <param name="Additive">Additive mask, or null.</param>
/// <param name="Causal">SDPA's is_causal flag (only without <paramref name="Additive"/>).</param>
internal readonly record struct AttentionMasking(Tensor? Additive, bool Causal);
