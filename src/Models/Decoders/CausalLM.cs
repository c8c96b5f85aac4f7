using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Models.Decoders.Modules;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders;

/// <summary>Inputs of a forward pass.</summary>
/// <param name="InputIds">Token ids. [batch, seq] int64</param>
/// <param name="AttentionMask">1 for tokens, 0 for padding, covering cached positions too. [batch, past + seq]; null = all ones.</param>
/// <param name="PositionIds">Positions. [batch, seq]; null = past … past + seq − 1 (right padding or none).</param>
/// <param name="Cache">KV cache to read and extend, or null.</param>
/// <param name="Fused">Fused projections from <see cref="CausalLM.FuseProjections"/> (inference only), or null.</param>
/// <param name="Masks">Additive masks kept by the caller (decoding with a cache), used as they are instead of building them from
/// <paramref name="AttentionMask"/>; null = built here.</param>
public sealed record CausalLMInput(Tensor InputIds, Tensor? AttentionMask = null, Tensor? PositionIds = null, KvCache? Cache = null, InferenceWeights? Fused = null,
    AdditiveMasks? Masks = null);

/// <summary>
/// Additive attention masks a caller keeps across decoding steps (updated in place, not rebuilt per step): 0 where a query
/// may see a key, the dtype's lowest value where not, causal order, padding and sliding windows already applied.
/// </summary>
/// <param name="Full">[batch, 1, seq, keys] in the model's dtype, for full-attention layers.</param>
/// <param name="Sliding">The same for sliding-window layers; null when the model has no window (or it is not reached).</param>
public sealed record AdditiveMasks(Tensor Full, Tensor? Sliding);

/// <summary>
/// A decoder-only causal LM of any registered family (<see cref="ModelFamilies"/>: Llama, Qwen2/3, Mistral, Gemma 2/3,
/// Phi-3, OLMo 2), as transformers computes it, with the checkpoint's parameter names (model.embed_tokens,
/// model.layers.N.self_attn.q_proj, …, lm_head), so safetensors load and save in the family's own layout. The family's
/// config builds its layers; embeddings (optionally scaled), the final norm, the head (optionally soft-capped), masks,
/// RoPE tables and the KV cache are shared.
/// </summary>
public sealed class CausalLM : nn.Module
{
    private readonly DecoderModel model;
    private readonly HfLinear? lm_head;
    private readonly RotaryEmbedding _rotary;
    private readonly RotaryEmbedding? _slidingRotary;

    /// <summary>Builds the module with uninitialised weights (load them with <see cref="Load"/>).</summary>
    public CausalLM(DecoderConfig config, ScalarType dtype, Device device) : base("CausalLM")
    {
        Config = config ?? throw new ArgumentNullException(nameof(config));
        DType = dtype;
        Device = device;
        model = new DecoderModel(config, dtype, device);
        if (!config.TieWordEmbeddings) lm_head = new HfLinear("lm_head", config.HiddenSize, config.VocabSize, false, dtype, device);
        _rotary = new RotaryEmbedding(config.Rope, config.HeadDim, config.MaxPositionEmbeddings, config.ModelType, device);
        if (config.SlidingRope != config.Rope)
            _slidingRotary = new RotaryEmbedding(config.SlidingRope, config.HeadDim, config.MaxPositionEmbeddings, config.ModelType, device);
        RegisterComponents();
    }

    /// <summary>The config (the family's record).</summary>
    public DecoderConfig Config { get; }

    /// <summary>Parameter dtype.</summary>
    public ScalarType DType { get; }

    /// <summary>Device of the parameters.</summary>
    public Device Device { get; }

    /// <summary>
    /// In training mode with gradients on (and no KV cache), recompute each decoder layer's activations in the backward
    /// pass instead of keeping them (<see cref="ActivationCheckpoint"/>): the same losses and gradients in less memory.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>
    /// The generator dropout inside the decoder layers draws from (a LoRA adapter's, set when it is injected with dropout),
    /// or null when nothing draws. Activation checkpointing saves its state before each layer and replays it in the
    /// recomputation, so the backward pass sees the forward pass's masks.
    /// </summary>
    public torch.Generator? DropoutGenerator { get; set; }

    /// <summary>Loads config.json and safetensors weights from a Hugging Face model folder.</summary>
    /// <param name="directory">The model folder.</param>
    /// <param name="device">Target device; default CUDA when available, else CPU.</param>
    /// <param name="dtype">Parameter dtype; default float32 on CPU, bfloat16 on CUDA.</param>
    /// <exception cref="InvalidDataException">Unknown architecture, or tensors missing or of the wrong shape (all named).</exception>
    public static CausalLM Load(string directory, Device? device = null, ScalarType? dtype = null)
    {
        TorchRuntime.EnsureLoaded();
        var config = DecoderConfig.Load(directory);
        device ??= TorchRuntime.DefaultDevice();
        dtype ??= device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;
        var module = new CausalLM(config, dtype.Value, device);
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
        _rotary.CheckPositions(past + t);
        _slidingRotary?.CheckPositions(past + t);
        var positions = input.PositionIds ?? arange(past, past + t, int64, Device).unsqueeze(0).expand(b, t); // [b, t]
        // Longrope switches to its long factors when max(position_ids) + 1 over the batch exceeds the original context,
        // as transformers' longrope_frequency_update does (a host read, longrope models only).
        bool Long(RotaryEmbedding r) => r.LongFactorsBeyond is int limit && (input.PositionIds is null ? past + t : positions.max().item<long>() + 1) > limit;
        var fullRope = _rotary.Compute(positions, DType, Long(_rotary));                                  // [b, 1, t, rotary] each
        var slidingRope = _slidingRotary is null ? fullRope : _slidingRotary.Compute(positions, DType, Long(_slidingRotary));

        // No padding mask: causal attention needs no mask tensor (SDPA's is_causal fast path, flash attention on CUDA),
        // and a single new token after a cache sees every cached key. Otherwise an explicit additive mask. Sliding-window
        // layers need one as soon as the keys outnumber the window: key j is visible to query i when i − window < j ≤ i.
        AttentionMasking full, sliding;
        if (input.Masks is { } given)
        {
            full = new AttentionMasking(given.Full, false);
            sliding = given.Sliding is { } s ? new AttentionMasking(s, false) : full;
        }
        else
        {
            bool explicitMask = input.AttentionMask is not null || (past > 0 && t > 1);
            Tensor KeyMask() => input.AttentionMask?.to(Device) ?? ones(new[] { b, past + t }, int64, Device); // [b, keys]
            full = explicitMask ? new AttentionMasking(CausalPaddingMask(KeyMask(), past, t, DType), false) : new AttentionMasking(null, t > 1);
            sliding = full;
            if (Config.SlidingWindow is int window && past + t > window)
                sliding = new AttentionMasking(CausalPaddingMask(KeyMask(), past, t, DType, window), false);     // [b, 1, t, keys]
        }
        var hidden = model.Forward(input.InputIds, new DecoderState(fullRope, slidingRope, full, sliding, input.Cache, input.Fused), GradientCheckpointing, DropoutGenerator);
        input.Cache?.Advance(t);
        return hidden.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Stacks each layer's q_proj, k_proj, v_proj into one [q; k; v] matrix and gate_proj, up_proj into one [gate; up]
    /// (families that store them fused, Phi-3, need no copy), for forwards that pass the result in
    /// <see cref="CausalLMInput.Fused"/>. A snapshot of the current weights, detached from autograd: build it again after
    /// the weights change, and use it for inference only. Costs one more copy of those matrices while it lives.
    /// </summary>
    public InferenceWeights FuseProjections()
    {
        int layers = Config.NumHiddenLayers;
        var qkv = new LinearWeights?[layers];
        var gateUp = new LinearWeights?[layers];
        foreach (var (name, module) in named_modules())
        {
            // model.layers.N.self_attn / model.layers.N.mlp
            var parts = name.Split('.');
            if (parts.Length != 4 || parts[0] != "model" || parts[1] != "layers" || !int.TryParse(parts[2], System.Globalization.CultureInfo.InvariantCulture, out int layer)) continue;
            if (module is Attention attention) qkv[layer] = attention.StackQkv();
            else if (module is GatedMlp mlp) gateUp[layer] = mlp.StackGateUp();
        }
        return new InferenceWeights(qkv, gateUp);
    }

    /// <summary>
    /// Whether a KV cache filled up to <paramref name="cached"/> positions must be re-encoded before positions up to
    /// <paramref name="total"/> are added: longrope's frequencies switch to the long factors once the sequence passes the
    /// original context, so keys cached with the short factors are stale (transformers drops the cache at that step).
    /// </summary>
    public bool CacheGoesStale(long cached, long total) =>
        cached > 0 && new[] { _rotary, _slidingRotary }.Any(r => r?.LongFactorsBeyond is int limit && cached <= limit && total > limit);

    /// <summary>Logits for hidden states: [..., hidden] → [..., vocab] (soft-capped where the family caps them).</summary>
    public Tensor Head(Tensor hidden)
    {
        var logits = lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden, model.EmbedWeight);
        if (Config.FinalLogitSoftcapping is not double cap) return logits;
        using var scope = NewDisposeScope();
        using (logits)
            return ((logits / cap).tanh() * cap).MoveToOuterDisposeScope();
    }

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
    public void Save(string directory, long maxShardBytes = SafeTensorsWriter.DefaultMaxShardBytes)
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

    /// <summary>What an additive mask holds where a key is hidden: the dtype's lowest finite value (as transformers).</summary>
    internal static double MaskedValue(ScalarType dtype) =>
        dtype switch { ScalarType.BFloat16 => -3.3895313892515355e38, ScalarType.Float16 => -65504.0, ScalarType.Float64 => double.MinValue, _ => float.MinValue };

    /// <summary>
    /// Builds the additive mask [batch, 1, t, keys]: query i (absolute past + i) may see key j when j ≤ past + i, key j is
    /// not padding, and, with a <paramref name="window"/>, j &gt; past + i − window (transformers' sliding_window_overlay).
    /// </summary>
    internal static Tensor CausalPaddingMask(Tensor keyMask, long past, long t, ScalarType dtype, int? window = null)
    {
        using var scope = NewDisposeScope();
        long keys = keyMask.shape[1];
        var device = keyMask.device;
        var queryPos = arange(past, past + t, int64, device).view(1, 1, t, 1);   // [1, 1, t, 1]
        var keyPos = arange(0, keys, int64, device).view(1, 1, 1, keys);         // [1, 1, 1, keys]
        var allowed = keyPos.le(queryPos).logical_and(keyMask.view(keyMask.shape[0], 1, 1, keys).to(ScalarType.Bool)); // [b, 1, t, keys]
        if (window is int w) allowed = allowed.logical_and(keyPos.gt(queryPos - w));
        var additive = zeros(allowed.shape, dtype, device).masked_fill(allowed.logical_not(), MaskedValue(dtype));
        return additive.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rotary.Dispose();
            _slidingRotary?.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>Embeddings, decoder layers and the final norm (HF's XxxModel, checkpoint prefix "model.").</summary>
internal sealed class DecoderModel : nn.Module
{
    private readonly HfEmbedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly RmsNorm norm;
    private readonly double? _embeddingScale;

    public DecoderModel(DecoderConfig config, ScalarType dtype, Device device) : base("model")
    {
        embed_tokens = new HfEmbedding("embed_tokens", config.VocabSize, config.HiddenSize, dtype, device);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(i => config.CreateLayer(i, dtype, device)).ToArray());
        norm = new RmsNorm("norm", config.HiddenSize, config.RmsNormEps, config.NormStyle, dtype, device);
        _embeddingScale = config.EmbeddingScale;
        RegisterComponents();
    }

    public Parameter EmbedWeight => embed_tokens.Weight;

    public Tensor Forward(Tensor inputIds, DecoderState state, bool gradientCheckpointing = false, torch.Generator? dropoutGenerator = null)
    {
        using var scope = NewDisposeScope();
        var hidden = embed_tokens.forward(inputIds); // [b, t, hidden]
        // Gemma: the scale is a tensor in the hidden states' dtype (√hidden rounded to it), as transformers multiplies.
        if (_embeddingScale is double scale) hidden = hidden * tensor((float)scale, hidden.dtype, hidden.device);
        if (gradientCheckpointing && training && state.Cache is null && is_grad_enabled())
        {
            // The recomputation in the backward pass reads the RoPE tables and masks after this scope ends: handles of their own.
            var kept = Keep(state);
            foreach (var layer in layers) hidden = ActivationCheckpoint.Apply(h => layer.Forward(h, kept), hidden, dropoutGenerator);
        }
        else
        {
            foreach (var layer in layers) hidden = layer.Forward(hidden, state);
        }
        return norm.forward(hidden).MoveToOuterDisposeScope();
    }

    /// <summary>The same state on handles outside every dispose scope (<see cref="ActivationCheckpoint.Keep"/>); no cache (training).</summary>
    private static DecoderState Keep(DecoderState state)
    {
        static (Tensor, Tensor) Rope((Tensor Cos, Tensor SignedSin) rope) => (ActivationCheckpoint.Keep(rope.Cos)!, ActivationCheckpoint.Keep(rope.SignedSin)!);
        static AttentionMasking Mask(AttentionMasking mask) => mask with { Additive = ActivationCheckpoint.Keep(mask.Additive) };
        var fullRope = Rope(state.FullRope);
        var fullMask = Mask(state.FullMask);
        // Shared tables stay shared (one kept handle) when sliding layers use the full ones.
        var slidingRope = ReferenceEquals(state.SlidingRope.Cos, state.FullRope.Cos) ? fullRope : Rope(state.SlidingRope);
        var slidingMask = ReferenceEquals(state.SlidingMask.Additive, state.FullMask.Additive) ? fullMask with { Causal = state.SlidingMask.Causal } : Mask(state.SlidingMask);
        return new DecoderState(fullRope, slidingRope, fullMask, slidingMask, null);
    }
}
