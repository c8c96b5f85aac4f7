using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Models.Llama.Modules;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Llama;

/// <summary>Inputs of a forward pass.</summary>
/// <param name="InputIds">Token ids. [batch, seq] int64</param>
/// <param name="AttentionMask">1 for tokens, 0 for padding, covering cached positions too. [batch, past + seq]; null = all ones.</param>
/// <param name="PositionIds">Positions. [batch, seq]; null = past … past + seq − 1 (right padding or none).</param>
/// <param name="Cache">KV cache to read and extend, or null.</param>
public sealed record CausalLMInput(Tensor InputIds, Tensor? AttentionMask = null, Tensor? PositionIds = null, KvCache? Cache = null);

/// <summary>
/// The Llama-family decoder (Llama 2/3, Qwen2/2.5, Mistral) as in transformers' modeling_llama.py, with the checkpoint's
/// parameter names (model.embed_tokens, model.layers.N.self_attn.q_proj, …, lm_head), so safetensors load and save as is.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module
{
    private readonly LlamaModel model;
    private readonly HfLinear? lm_head;
    private readonly RotaryEmbedding _rotary;

    /// <summary>Builds the module with uninitialised weights (load them with <see cref="Load"/>).</summary>
    public LlamaForCausalLM(LlamaConfig config, ScalarType dtype, Device device) : base("LlamaForCausalLM")
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
        DType = dtype;
        Device = device;
        model = new LlamaModel(config, dtype, device);
        if (!config.TieWordEmbeddings) lm_head = new HfLinear("lm_head", config.HiddenSize, config.VocabSize, false, dtype, device);
        _rotary = new RotaryEmbedding(config, device);
        RegisterComponents();
    }

    /// <summary>The config.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Parameter dtype.</summary>
    public ScalarType DType { get; }

    /// <summary>Device of the parameters.</summary>
    public Device Device { get; }

    /// <summary>
    /// In training mode with gradients on (and no KV cache), recompute each decoder layer's activations in the backward
    /// pass instead of keeping them (<see cref="ActivationCheckpoint"/>): the same losses and gradients in less memory.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>Loads config.json and safetensors weights from a Hugging Face model folder.</summary>
    /// <param name="directory">The model folder.</param>
    /// <param name="device">Target device; default CUDA when available, else CPU.</param>
    /// <param name="dtype">Parameter dtype; default float32 on CPU, bfloat16 on CUDA.</param>
    /// <exception cref="InvalidDataException">Unknown architecture, or tensors missing or of the wrong shape (all named).</exception>
    public static LlamaForCausalLM Load(string directory, Device? device = null, ScalarType? dtype = null)
    {
        TorchRuntime.EnsureLoaded();
        var config = LlamaConfig.Load(directory);
        device ??= TorchRuntime.DefaultDevice();
        dtype ??= device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;
        var module = new LlamaForCausalLM(config, dtype.Value, device);
        try
        {
            using var weights = ModelWeights.Open(directory);
            module.LoadWeights(weights, directory);
        }
        catch
        {
            module.Dispose();
            throw;
        }
        module.eval();
        return module;
    }

    /// <summary>
    /// Copies every parameter from <paramref name="weights"/>; fails naming all missing, mis-shaped and unexpected tensors.
    /// Ignored, as transformers ignores them: a tied lm_head.weight (the embedding is used) and saved rotary_emb.inv_freq buffers.
    /// An unexpected tensor otherwise means the config does not describe the checkpoint (a bias the config turns off, qk-norm
    /// weights, a classification head), so transformers would drop it and compute something else than the checkpoint's author did.
    /// </summary>
    public void LoadWeights(ModelWeights weights, string source)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var missing = new List<string>();
        var wrong = new List<string>();
        var expected = new HashSet<string>(StringComparer.Ordinal);
        using var _ = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            expected.Add(name);
            if (!weights.Contains(name)) { missing.Add(name); continue; }
            var info = weights.Info(name);
            if (!info.Shape.SequenceEqual(parameter.shape))
            {
                wrong.Add($"{name}: file [{string.Join(", ", info.Shape)}], model [{string.Join(", ", parameter.shape)}]");
                continue;
            }
            using var loaded = weights.Load(name, parameter.device, parameter.dtype);
            parameter.copy_(loaded);
        }
        var unexpected = weights.Names
            .Where(n => !expected.Contains(n) && !n.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal) && !(Config.TieWordEmbeddings && n == "lm_head.weight"))
            .Order(StringComparer.Ordinal).ToList();
        static string List(List<string> names, string separator) => string.Join(separator, names.Take(10)) + (names.Count > 10 ? $"{separator}…" : "");
        if (missing.Count > 0 || wrong.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException($"{source}: the weights do not match the {Config.ModelType} config: " +
                (missing.Count > 0 ? $"missing {missing.Count} tensor(s): {List(missing, ", ")}. " : "") +
                (wrong.Count > 0 ? $"wrong shape: {List(wrong, "; ")}. " : "") +
                (unexpected.Count > 0 ? $"unexpected {unexpected.Count} tensor(s) the config has no place for: {List(unexpected, ", ")}." : ""));
    }

    /// <summary>Runs the decoder body. Returns the final hidden states [batch, seq, hidden].</summary>
    public Tensor Hidden(CausalLMInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        long b = input.InputIds.shape[0], t = input.InputIds.shape[1];
        long past = input.Cache?.Length ?? 0;
        if (Config.SlidingWindow is int window && past + t > window)
            throw new NotSupportedException(
                $"{past + t} tokens exceed this {Config.ModelType} model's sliding_window of {window}: sliding-window attention is not implemented, " +
                $"so longer sequences would not match transformers. Keep prompt + response within {window} tokens (truncate the prompts or lower max_new_tokens).");
        RotaryEmbedding.CheckPositions(Config, past + t);
        var mask = input.AttentionMask ?? (past > 0 && t > 1 ? ones(new[] { b, past + t }, int64, Device) : null); // [b, keys]
        var positions = input.PositionIds ?? arange(past, past + t, int64, Device).unsqueeze(0).expand(b, t); // [b, t]
        var (cos, sin) = _rotary.Compute(positions, DType);                                      // [b, 1, t, d] each
        // No padding mask: causal attention needs no mask tensor (SDPA's is_causal fast path, flash attention on CUDA),
        // and a single new token after a cache sees every cached key. Otherwise an explicit additive mask.
        Tensor? additive = null;
        bool causal = false;
        if (input.AttentionMask is not null || (past > 0 && t > 1))
            additive = CausalPaddingMask(mask!.to(Device), past, t, DType);                        // [b, 1, t, keys]
        else
            causal = t > 1;
        var hidden = model.Forward(input.InputIds, cos, sin, new AttentionMasking(additive, causal), input.Cache, GradientCheckpointing);
        input.Cache?.Advance(t);
        return hidden.MoveToOuterDisposeScope();
    }

    /// <summary>Logits for hidden states: [..., hidden] → [..., vocab].</summary>
    public Tensor Head(Tensor hidden) =>
        lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden, model.EmbedWeight);

    /// <summary>Logits for every position. [batch, seq, vocab]</summary>
    public Tensor Logits(CausalLMInput input)
    {
        using var scope = NewDisposeScope();
        return Head(Hidden(input)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Saves config.json and safetensors weights with HF names (a tied lm_head is not written, as transformers does),
    /// sharded above <paramref name="maxShardBytes"/>; transformers' from_pretrained reads the folder.
    /// </summary>
    public void Save(string directory, long maxShardBytes = 5L << 30)
    {
        Directory.CreateDirectory(directory);
        var tensors = named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        SafeTensorsWriter.WriteSharded(directory, tensors, maxShardBytes, new Dictionary<string, string> { ["format"] = "pt" });
        var json = Config.Raw is { } raw ? JsonNode.Parse(raw.GetRawText())!.AsObject() : new JsonObject();
        json["torch_dtype"] = DType switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
        if (json.ContainsKey("dtype")) json["dtype"] = json["torch_dtype"]!.GetValue<string>();
        string path = Path.Combine(directory, "config.json");
        File.WriteAllText(path + ".tmp", json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Builds the additive mask: query i (absolute past + i) may see key j when j ≤ past + i and key j is not padding.</summary>
    internal static Tensor CausalPaddingMask(Tensor keyMask, long past, long t, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        long keys = keyMask.shape[1];
        var device = keyMask.device;
        var queryPos = arange(past, past + t, int64, device).view(1, 1, t, 1);   // [1, 1, t, 1]
        var keyPos = arange(0, keys, int64, device).view(1, 1, 1, keys);         // [1, 1, 1, keys]
        var allowed = keyPos.le(queryPos).logical_and(keyMask.view(keyMask.shape[0], 1, 1, keys).to(ScalarType.Bool)); // [b, 1, t, keys]
        double min = dtype switch { ScalarType.BFloat16 => -3.3895313892515355e38, ScalarType.Float16 => -65504.0, ScalarType.Float64 => double.MinValue, _ => float.MinValue };
        var additive = zeros(allowed.shape, dtype, device).masked_fill(allowed.logical_not(), min);
        return additive.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>Embeddings, decoder layers and the final norm (HF's LlamaModel, checkpoint prefix "model.").</summary>
internal sealed class LlamaModel : nn.Module
{
    private readonly HfEmbedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly RmsNorm norm;

    public LlamaModel(LlamaConfig config, ScalarType dtype, Device device) : base("model")
    {
        embed_tokens = new HfEmbedding("embed_tokens", config.VocabSize, config.HiddenSize, dtype, device);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new LlamaDecoderLayer(config, i, dtype, device)).ToArray());
        norm = new RmsNorm("norm", config.HiddenSize, config.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public Parameter EmbedWeight => embed_tokens.Weight;

    public Tensor Forward(Tensor inputIds, Tensor cos, Tensor sin, AttentionMasking mask, KvCache? cache, bool gradientCheckpointing = false)
    {
        using var scope = NewDisposeScope();
        var hidden = embed_tokens.forward(inputIds); // [b, t, hidden]
        if (gradientCheckpointing && training && cache is null && is_grad_enabled())
        {
            // The recomputation in the backward pass reads these after this scope ends: handles of their own.
            var (keptCos, keptSin) = (ActivationCheckpoint.Keep(cos)!, ActivationCheckpoint.Keep(sin)!);
            var keptMask = mask with { Additive = ActivationCheckpoint.Keep(mask.Additive) };
            foreach (var layer in layers) hidden = ActivationCheckpoint.Apply(h => layer.Forward(h, keptCos, keptSin, keptMask, null), hidden);
        }
        else
        {
            foreach (var layer in layers) hidden = layer.Forward(hidden, cos, sin, mask, cache);
        }
        return norm.forward(hidden).MoveToOuterDisposeScope();
    }
}
