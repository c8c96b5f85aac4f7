using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Models.Decoders;
using static TorchSharp.torch;

namespace PrefPipe.Benchmarks;

/// <summary>Model configurations the benchmarks build with random weights (the Python peers build the same ones).</summary>
public static class ModelShapes
{
    /// <summary>Names accepted by <see cref="Config"/>.</summary>
    public static readonly IReadOnlyList<string> Names = ["8b", "1b", "100m", "small", "demo"];

    /// <summary>config.json text for a shape: "8b" (Llama-3.1-8B), "1b" (Llama-3.2-1B), "100m" (~100M, 12 layers), "small" (~45M), "demo" (the 0.8M demo policy).</summary>
    public static string Json(string name) => name switch
    {
        "8b" => """
            {"model_type":"llama","vocab_size":128256,"hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
             "num_attention_heads":32,"num_key_value_heads":8,"head_dim":128,"rms_norm_eps":1e-5,"rope_theta":500000.0,
             "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
             "max_position_embeddings":131072,"tie_word_embeddings":false,"bos_token_id":128000,"eos_token_id":128001}
            """,
        "100m" => """
            {"model_type":"llama","vocab_size":32000,"hidden_size":768,"intermediate_size":2048,"num_hidden_layers":12,
             "num_attention_heads":12,"num_key_value_heads":4,"head_dim":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,
             "max_position_embeddings":4096,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}
            """,
        "1b" => """
            {"model_type":"llama","vocab_size":128256,"hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,
             "num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,"rms_norm_eps":1e-5,"rope_theta":500000.0,
             "rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
             "max_position_embeddings":131072,"tie_word_embeddings":true,"bos_token_id":128000,"eos_token_id":128001}
            """,
        "small" => """
            {"model_type":"llama","vocab_size":32000,"hidden_size":512,"intermediate_size":1408,"num_hidden_layers":8,
             "num_attention_heads":8,"num_key_value_heads":4,"head_dim":64,"rms_norm_eps":1e-5,"rope_theta":10000.0,
             "max_position_embeddings":4096,"tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2}
            """,
        "demo" => """
            {"model_type":"llama","vocab_size":512,"hidden_size":128,"intermediate_size":344,"num_hidden_layers":4,
             "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"rms_norm_eps":1e-5,"rope_theta":10000.0,
             "max_position_embeddings":2048,"tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0,"pad_token_id":1}
            """,
        _ => throw new ArgumentException($"unknown model shape '{name}'; expected one of {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>The parsed config of a shape; <paramref name="layers"/> replaces its number of decoder layers.</summary>
    public static DecoderConfig Config(string name, int? layers = null)
    {
        var json = JsonNode.Parse(Json(name))!.AsObject();
        if (layers is int n) json["num_hidden_layers"] = n;
        using var doc = JsonDocument.Parse(json.ToJsonString());
        return DecoderConfig.Parse(doc.RootElement.Clone(), $"shape '{name}'");
    }

    /// <summary>A model with random weights: matrices N(0, 0.02²) as transformers initialises them, norm weights 1.</summary>
    public static CausalLM Create(DecoderConfig config, ScalarType dtype, Device device, long seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        manual_seed(seed);
        var model = new CausalLM(config, dtype, device);
        using var _ = no_grad();
        foreach (var (_, p) in model.named_parameters())
        {
            if (p.dim() >= 2) p.normal_(0, 0.02);
            else p.fill_(1);
        }
        return model;
    }

    /// <summary>Weights in matrix products per token (every linear layer and the LM head), for FLOP counts.</summary>
    public static double MatmulParameters(DecoderConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        double h = c.HiddenSize, q = (double)c.NumAttentionHeads * c.HeadDim, kv = (double)c.NumKeyValueHeads * c.HeadDim;
        double layer = h * q + 2 * h * kv + q * h + 3 * h * c.IntermediateSize;
        return c.NumHiddenLayers * layer + h * c.VocabSize;
    }

    /// <summary>Forward FLOPs of <paramref name="batch"/> causal sequences of <paramref name="seq"/> tokens (full LM head).</summary>
    public static double ForwardFlops(DecoderConfig c, long batch, long seq)
    {
        ArgumentNullException.ThrowIfNull(c);
        double tokens = (double)batch * seq;
        double attention = 2.0 * batch * seq * seq * c.NumAttentionHeads * c.HeadDim * c.NumHiddenLayers; // QKᵀ and AV, causal half
        return 2 * MatmulParameters(c) * tokens + attention;
    }
}
