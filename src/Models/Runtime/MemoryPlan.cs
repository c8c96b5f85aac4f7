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
/// <param name="ProcessBaselineBytes">On CPU, the resident memory of the training process before the model (.NET and
/// libtorch loaded): <see cref="MemoryPlan.ProcessResidentBytes"/> when the plan is made in the process that will train
/// (or one like it); null takes <see cref="MemoryPlan.DefaultCpuBaselineBytes"/>. Not used on CUDA.</param>
public sealed record MemoryPlanInput(int Pairs, int MaxLength, int PromptLength, bool Cuda, LoraOptions? Lora, bool GradientCheckpointing,
    double? ProcessBaselineBytes = null);

/// <summary>Estimated peak memory of one training step, by part, in bytes.</summary>
/// <param name="Parameters">Model parameters.</param>
/// <param name="Trainable">Trainable parameters (all, or the adapters').</param>
/// <param name="Weights">The model's weights (the adapters' included).</param>
/// <param name="Gradients">Gradients of the trainable parameters.</param>
/// <param name="OptimizerStates">AdamW's two moments per trainable parameter, and the update's temporary of the same size.</param>
/// <param name="Activations">Decoder activations kept for the backward pass.</param>
/// <param name="Logits">LM-head outputs at the scored positions (and their log-softmax) kept for the backward pass.</param>
/// <param name="Runtime">On CPU: the process before the model (.NET, libtorch), a training step's fixed overhead (kernel
/// code, thread workspaces) and the LM head's freed temporaries the heap keeps; on a GPU: the CUDA context.</param>
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
/// at scored positions; on CPU also what the process and the step's temporaries hold besides tensors (see
/// <see cref="Estimate"/>). Checked against measured peaks on CPU (bench/RESULTS.md, bench/cpu/lora.sh).
/// </summary>
public static class MemoryPlan
{
    private const double GiB = 1024.0 * 1024 * 1024;
    private const double MiB = 1024.0 * 1024;

    /// <summary>
    /// The CPU baseline when none is measured: a prefpipe process with .NET and libtorch loaded, before the model
    /// (VmRSS 161–163 MiB on the bench machine, Debian 12, libtorch 2.10).
    /// </summary>
    public const double DefaultCpuBaselineBytes = 165 * MiB;

    /// <summary>
    /// A CPU training step's own overhead besides tensors: the libtorch kernels it runs are paged in (RssFile +20 MiB)
    /// and the intra-op threads' workspaces and malloc arenas (about 50 MiB). Measured on the 0.8M demo model, whose
    /// tensors are tiny: peak − baseline − tensors = 57–83 MiB over full, LoRA and LoRA + checkpointing.
    /// </summary>
    private const double CpuStepOverheadBytes = 70 * MiB;

    /// <summary>glibc's largest dynamic mmap threshold (64-bit): freed blocks below it stay in the heap, larger ones return to the system.</summary>
    private const double MmapThresholdMax = 32 * MiB;

    /// <summary>Completion positions per LM-head chunk in the scorer (<c>CompletionScorer.Score</c>'s default).</summary>
    private const int HeadChunkRows = 1024;

    /// <summary>
    /// The resident memory of this process now (VmRSS, after loading libtorch), the CPU baseline of a plan made where the
    /// training will run; null where /proc is not there.
    /// </summary>
    public static double? ProcessResidentBytes()
    {
        TorchRuntime.EnsureLoaded();
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return null;
        foreach (string line in File.ReadLines(status))
        {
            if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
            var parts = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            return parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib) ? kib * 1024.0 : null;
        }
        return null;
    }

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
        long adaptedInputs = 0;
        if (input.Lora is { } lora)
        {
            var targets = lora.TargetModules.ToList();
            var adapted = layer.Linears.Where(l => LoraTargets.Matches(targets, $"model.layers.0.{l.Name}")).ToList();
            adaptedPerLayer = adapted.Count;
            adaptedInputs = adapted.Sum(l => l.In);
            adapter = layers * adapted.Sum(l => (long)lora.R * (l.In + l.Out));
            if (!config.TieWordEmbeddings && LoraTargets.Matches(targets, "lm_head")) adapter += (long)lora.R * (h + v);
        }
        long trainable = input.Lora is null ? parameters : adapter;
        double a = input.Lora is null ? w : 4;             // adapters train in float32 (PEFT's choice beside a bf16 base)
        double weights = parameters * w + adapter * 4;
        double gradients = trainable * a;
        // AdamW's two moments, and the update's temporary √v̂ + ε (FlatAdamW.StepWith: one trainable-sized buffer), made
        // while the allocator still holds what the backward pass freed: the CPU peak is at the update (measured on 100m
        // full: RSS after the backward pass + 4 bytes × trainable parameters = the peak, to the MiB).
        double optimizer = 2 * trainable * a + trainable * a;

        // Activations autograd keeps per token of one decoder layer, in elements: each RMSNorm's input, float32 copy and
        // normalised output (3 × its width: two norms of h in Llama, four in Gemma, q/k norms where the family has them);
        // attention's q, k, v (repeated to all heads), output and o_proj's input (5 q); the MLP's gate and up outputs, the
        // activation's output and their product (4 intermediate). LoRA's branch adds, per adapted layer, its float32 rank-r
        // intermediate, and its input when that is not the base layer's kept input: the float32 copy of a bf16 input, or
        // the dropped-out input with its uint8 mask (LoraLinear).
        long tokens = 2L * input.Pairs * input.MaxLength;
        double perToken = 3 * layer.NormWidth + 5 * q + 4 * inter;
        double loraPerToken = input.Lora is { } l2
            ? adaptedPerLayer * l2.R * 4.0 + adaptedInputs * ((input.Cuda || l2.Dropout > 0 ? 4 : 0) + (l2.Dropout > 0 ? 1 : 0))
            : 0;
        double layerBytes = tokens * (perToken * w + loraPerToken);
        double activations = input.GradientCheckpointing
            ? layers * tokens * h * w + layerBytes           // each layer's input, plus one layer recomputed
            : layers * layerBytes;
        activations += tokens * h * w * 2;                   // the embedding output and final norm's output

        // The LM head at scored positions: its output and the float32 log-softmax kept for backward (and a float32 copy of a bf16 output).
        long scored = 2L * input.Pairs * Math.Max(1, input.MaxLength - input.PromptLength);
        double logits = scored * (double)v * (w + 4 + (input.Cuda ? 4 : 0));
        double runtime = input.Cuda
            ? 0.6 * GiB                                         // the CUDA context, measured on the bench GPUs
            : (input.ProcessBaselineBytes ?? DefaultCpuBaselineBytes) + CpuStepOverheadBytes + HeadTemporaries(Math.Min(scored, HeadChunkRows) * (double)v * 4);
        return new MemoryPlanEstimate(parameters, trainable, weights, gradients, optimizer, activations, logits, runtime);
    }

    /// <summary>
    /// The LM head's temporaries on CPU, for one chunk's [rows, vocab] float32 buffer of <paramref name="buffer"/> bytes:
    /// the backward pass makes three at once (the log-softmax's gradient, its softmax, the logits' gradient) beside the
    /// reference pass's freed logits. Buffers below glibc's mmap threshold are freed into the heap, which keeps them, and
    /// the step's other freed temporaries fragment it: there 7 buffers fit the measured peaks (40M and 100M models, vocab
    /// 32k, 128–512 scored positions: 4–12 buffers beyond the step overhead); larger ones go back to the system, and 4 count.
    /// </summary>
    private static double HeadTemporaries(double buffer) => (buffer <= MmapThresholdMax ? 7 : 4) * buffer;

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
