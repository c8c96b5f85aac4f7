using System.Globalization;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Decoders.Modules;
using static TorchSharp.torch;
using PrefPipe.Models.Lora;

namespace PrefPipe.Models.Runtime;

/// <summary>What a DPO-family training step is planned on.</summary>
/// <param name="Pairs">Pairs per micro-batch (2 × this sequences: chosen and rejected).</param>
/// <param name="MaxLength">Tokens per sequence (prompt + completion).</param>
/// <param name="PromptLength">Prompt tokens per sequence (not scored: no LM-head activations for them).</param>
/// <param name="Cuda">bfloat16 weights on CUDA, else float32 on CPU.</param>
/// <param name="Lora">LoRA options, or null for full fine-tuning.</param>
/// <param name="GradientCheckpointing">Whether decoder layers recompute their activations in the backward pass.</param>
public sealed record MemoryPlanInput(int Pairs, int MaxLength, int PromptLength, bool Cuda, LoraOptions? Lora, bool GradientCheckpointing);

/// <summary>Estimated peak memory of one training step, by part, in bytes.</summary>
/// <param name="Parameters">Model parameters.</param>
/// <param name="Trainable">Trainable parameters (all, or the adapters').</param>
/// <param name="Weights">The model's weights (the adapters' included).</param>
/// <param name="Gradients">Gradients of the trainable parameters.</param>
/// <param name="OptimizerStates">AdamW's two moments per trainable parameter, and the allocator's copy of them left by flattening.</param>
/// <param name="Activations">Decoder activations kept for the backward pass.</param>
/// <param name="Logits">LM-head outputs at the scored positions (and their log-softmax) kept for the backward pass.</param>
/// <param name="Runtime">The runtime itself: libtorch and .NET on CPU, the CUDA context on a GPU.</param>
public sealed record MemoryPlanEstimate(long Parameters, long Trainable, double Weights, double Gradients, double OptimizerStates, double Activations, double Logits, double Runtime)
{
    /// <summary>The estimated peak, bytes.</summary>
    public double Total => Weights + Gradients + OptimizerStates + Activations + Logits + Runtime;

    /// <summary>The parts as (name, bytes) rows, the total last.</summary>
    public IReadOnlyList<(string Part, double Bytes)> Rows() =>
    [
        ("weights", Weights), ("gradients", Gradients), ("optimizer states", OptimizerStates),
        ("activations", Activations), ("logits", Logits), ("runtime", Runtime), ("total", Total),
    ];

    /// <summary>Whether the peak fits in <paramref name="deviceBytes"/>.</summary>
    public bool Fits(double deviceBytes) => Total <= deviceBytes;
}

/// <summary>
/// A peak-memory estimate of the DPO step as this trainer runs it (stored reference log-probs, FlatAdamW, chunked LM
/// head): weights, gradients and AdamW moments of what trains, the activations autograd keeps per decoder layer (or only
/// each layer's input with activation checkpointing, plus one layer's while it is recomputed), and the LM head's outputs
/// at scored positions. Checked against measured peaks on CPU (bench/RESULTS.md).
/// </summary>
public static class MemoryPlan
{
    private const double GiB = 1024.0 * 1024 * 1024;

    /// <summary>Estimates one step of <paramref name="config"/> (any family) under <paramref name="input"/>.</summary>
    public static MemoryPlanEstimate Estimate(DecoderConfig config, MemoryPlanInput input)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(input);
        double w = input.Cuda ? 2 : 4;                    // weight bytes: bf16 on CUDA, float32 on CPU
        long h = config.HiddenSize, inter = config.IntermediateSize, v = config.VocabSize, layers = config.NumHiddenLayers;
        long q = (long)config.NumAttentionHeads * config.HeadDim;
        var layer = LayerShape.Of(config);
        long parameters = v * h * (config.TieWordEmbeddings ? 1 : 2) + layers * layer.Parameters + h;

        long adapter = 0;
        int adaptedPerLayer = 0;
        if (input.Lora is { } lora)
        {
            var targets = lora.TargetModules.ToList();
            var adapted = layer.Linears.Where(l => LoraTargets.Matches(targets, $"model.layers.0.{l.Name}")).ToList();
            adaptedPerLayer = adapted.Count;
            adapter = layers * adapted.Sum(l => (long)lora.R * (l.In + l.Out));
            if (!config.TieWordEmbeddings && LoraTargets.Matches(targets, "lm_head")) adapter += (long)lora.R * (h + v);
        }
        long trainable = input.Lora is null ? parameters : adapter;
        double a = input.Lora is null ? w : 4;             // adapters train in float32 (PEFT's choice beside a bf16 base)
        double weights = parameters * w + adapter * 4;
        double gradients = trainable * a;
        // AdamW's two moments, and FlatAdamW's flat copy of the trainable weights: their first storage is freed into the
        // allocator (glibc's heap on CPU, the caching allocator on CUDA), which keeps it.
        double optimizer = 2 * trainable * a + trainable * a;

        // Activations autograd keeps per token of one decoder layer, in elements: each RMSNorm's input, float32 copy and
        // normalised output (3 × its width: two norms of h in Llama, four in Gemma, q/k norms where the family has them);
        // attention's q, k, v (repeated to all heads), output and o_proj's input (5 q); the MLP's gate and up outputs, the
        // activation's output and their product (4 intermediate). LoRA's branch adds the adapters' rank-r intermediate per
        // adapted layer (its input is the base layer's, already kept).
        long tokens = 2L * input.Pairs * input.MaxLength;
        double perToken = 3 * layer.NormWidth + 5 * q + 4 * inter + (input.Lora is { } l2 ? adaptedPerLayer * l2.R : 0);
        double layerBytes = tokens * perToken * w;
        double activations = input.GradientCheckpointing
            ? layers * tokens * h * w + layerBytes           // each layer's input, plus one layer recomputed
            : layers * layerBytes;
        activations += tokens * h * w * 2;                   // the embedding output and final norm's output

        // The LM head at scored positions: its output and the float32 log-softmax kept for backward (and a float32 copy of a bf16 output).
        long scored = 2L * input.Pairs * Math.Max(1, input.MaxLength - input.PromptLength);
        double logits = scored * (double)v * (w + 4 + (input.Cuda ? 4 : 0));
        double runtime = (input.Cuda ? 0.6 : 0.45) * GiB;     // CUDA context / libtorch + .NET, measured on the bench machines
        return new MemoryPlanEstimate(parameters, trainable, weights, gradients, optimizer, activations, logits, runtime);
    }

    /// <summary>One line: the estimate against the device's memory, e.g. "needs 61.2 GiB of 80 GiB: fits".</summary>
    public static string Describe(MemoryPlanEstimate estimate, double? deviceBytes)
    {
        ArgumentNullException.ThrowIfNull(estimate);
        string needs = string.Create(CultureInfo.InvariantCulture, $"needs about {estimate.Total / GiB:F1} GiB");
        return deviceBytes is double d
            ? string.Create(CultureInfo.InvariantCulture, $"{needs} of {d / GiB:F1} GiB: {(estimate.Fits(d) ? "fits" : "does not fit")}")
            : needs;
    }
}

/// <summary>
/// What one decoder layer of a config holds: its linear layers (module names relative to the layer, as LoRA matches them)
/// and parameter count, read from the family's own layer built on the meta device (shapes only, no memory), so every
/// family's layout (Phi-3's fused qkv_proj and gate_up_proj, Gemma's four norms, q/k norms, biases) counts as it loads.
/// </summary>
internal sealed record LayerShape(IReadOnlyList<(string Name, long In, long Out)> Linears, long Parameters, long NormWidth)
{
    public static LayerShape Of(DecoderConfig config)
    {
        TorchRuntime.EnsureLoaded();
        using var layer = config.CreateLayer(0, ScalarType.Float32, new Device(TorchSharp.DeviceType.META));
        var linears = layer.named_modules().Where(m => m.module is HfLinear)
            .Select(m => (m.name, ((HfLinear)m.module).InFeatures, ((HfLinear)m.module).OutFeatures)).ToList();
        long parameters = layer.parameters().Sum(p => p.numel());
        long normWidth = 0;
        foreach (var (name, module) in layer.named_modules())
        {
            if (module is not RmsNorm norm) continue;
            long width = norm.parameters().Single().numel();
            // A per-head q/k norm ([head_dim]) normalises every head: its activations are the projection's width.
            normWidth += name.EndsWith("q_norm", StringComparison.Ordinal) ? Math.Max(width, (long)config.NumAttentionHeads * config.HeadDim)
                : name.EndsWith("k_norm", StringComparison.Ordinal) ? Math.Max(width, (long)config.NumKeyValueHeads * config.HeadDim)
                : width;
        }
        return new LayerShape(linears, parameters, normWidth);
    }
}
