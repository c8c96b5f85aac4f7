using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using PrefPipe.Models.Generation;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.Scoring;
using PrefPipe.Trainer;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Optimization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PrefPipe.Benchmarks;

/// <summary>One measured figure (the same shape as bench/Bench's BenchFigure and the Python peers' JSON).</summary>
/// <param name="Benchmark">Benchmark name, e.g. "dpo".</param>
/// <param name="Case">Case within it, e.g. "ref-every-step 8x1024".</param>
/// <param name="Metric">What was measured, e.g. "tokens/s".</param>
/// <param name="Value">The number.</param>
/// <param name="Unit">Its unit.</param>
public sealed record PerfFigure(string Benchmark, string Case, string Metric, double Value, string Unit);

/// <summary>What to run and at which sizes.</summary>
public sealed class PerfOptions
{
    /// <summary>"cpu" or "cuda".</summary>
    [Required, RegularExpression("^(cpu|cuda)$", ErrorMessage = "device must be cpu or cuda")]
    public string Device { get; set; } = "cpu";

    /// <summary>Model shape: 8b, 1b, 100m, small or demo.</summary>
    [Required, RegularExpression("^(8b|1b|100m|small|demo)$", ErrorMessage = "model must be 8b, 1b, 100m, small or demo")]
    public string Model { get; set; } = "small";

    /// <summary>Sequences per training / scoring batch (DPO: chosen + rejected, so pairs = half).</summary>
    [Range(2, 4096)]
    public int Batch { get; set; } = 8;

    /// <summary>Tokens per training / scoring sequence.</summary>
    [Range(8, 1 << 17)]
    public int SeqLen { get; set; } = 1024;

    /// <summary>Generation batch sizes.</summary>
    public IReadOnlyList<int> GenerationBatches { get; set; } = [1, 8, 32, 64];

    /// <summary>Generation prompt length.</summary>
    [Range(1, 1 << 16)]
    public int PromptTokens { get; set; } = 128;

    /// <summary>Generation new tokens.</summary>
    [Range(1, 1 << 16)]
    public int NewTokens { get; set; } = 128;

    /// <summary>Timed steps (after warm-up).</summary>
    [Range(1, 1000)]
    public int Steps { get; set; } = 5;

    /// <summary>Warm-up steps.</summary>
    [Range(0, 100)]
    public int Warmup { get; set; } = 2;

    /// <summary>LoRA rank for the "lora" benchmark's LoRA case (alpha 2r, all-linear); 0 runs full fine-tuning.</summary>
    [Range(0, 4096)]
    public int LoraR { get; set; }

    /// <summary>Activation checkpointing in the "lora" benchmark.</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>The "lora" benchmark runs the reference forward (the base with the adapters off) in every step, as TRL + PEFT do by default, instead of reading stored log-probs as our trainer does.</summary>
    public bool ReferenceEveryStep { get; set; }

    /// <summary>Throws when an option is out of range, naming every one.</summary>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate()
    {
        var result = new PerfOptionsValidator().Validate(Options.DefaultName, this);
        if (result.Failed) throw new OptionsValidationException(Options.DefaultName, typeof(PerfOptions), result.Failures);
    }
}

/// <summary>Checks <see cref="PerfOptions"/>: generated from its attributes.</summary>
[OptionsValidator]
internal sealed partial class PerfOptionsValidator : IValidateOptions<PerfOptions>;

/// <summary>
/// The model-stack benchmarks: the DPO trainer's step (<see cref="DpoStep"/>, with the reference forward in every step
/// as TRL does by default, or with stored reference log-probs as our trainer does), SFT step, optimizer step
/// alone (FlatAdamW vs TorchSharp's AdamW), PPO rollout and update, generation, reference log-prob pass and reward
/// scoring. Each reports ms, tokens/s, peak memory and (on CUDA) MFU against 989 TFLOP/s (H100 bf16 dense).
/// </summary>
public static class PerfSuite
{
    /// <summary>H100 SXM bf16 dense peak, FLOP/s.</summary>
    public const double PeakFlops = 989e12;

    /// <summary>Benchmark names, in run order.</summary>
    public static readonly IReadOnlyList<string> Names = ["dpo", "sft", "optimizer", "ppo", "generate", "continuous", "refpass", "reward", "overhead", "lora"];

    /// <summary>Runs one benchmark by name.</summary>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static IReadOnlyList<PerfFigure> Run(string name, PerfOptions options, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.SeqLen < 4) throw new ArgumentException("sequence length must be at least 4", nameof(options));
        TorchRuntime.EnsureLoaded();
        bool cuda = options.Device == "cuda";
        if (cuda && !TorchRuntime.Describe().CudaAvailable)
            throw new InvalidOperationException("--device cuda: libtorch sees no CUDA device (run 'prefpipe doctor').");
        var ctx = new Context(options, cuda ? CUDA : CPU, cuda ? ScalarType.BFloat16 : ScalarType.Float32, ModelShapes.Config(options.Model), log ?? (_ => { }), cancellationToken);
        return name switch
        {
            "dpo" => Dpo(ctx),
            "sft" => Sft(ctx),
            "optimizer" => Optimizer(ctx),
            "ppo" => Ppo(ctx),
            "generate" => Generate(ctx),
            "continuous" => Continuous(ctx),
            "refpass" => RefPass(ctx),
            "reward" => Reward(ctx),
            "overhead" => Overhead(ctx),
            "lora" => Lora(ctx),
            _ => throw new ArgumentException($"unknown benchmark '{name}'; expected one of {string.Join(", ", Names)} or all", nameof(name)),
        };
    }

    private sealed record Context(PerfOptions Options, Device Device, ScalarType DType, DecoderConfig Config, Action<string> Log, CancellationToken Cancel)
    {
        public bool Cuda => Device.type == DeviceType.CUDA;

        public string Size => $"{Options.Batch}x{Options.SeqLen}";

        public void Sync()
        {
            if (Cuda) torch.cuda.synchronize();
        }

        /// <summary>Median milliseconds of <paramref name="step"/> over the timed steps, after warm-up.</summary>
        public double TimeMs(Action step, int? steps = null, int? warmup = null)
        {
            for (int i = 0; i < (warmup ?? Options.Warmup); i++) { Cancel.ThrowIfCancellationRequested(); step(); }
            Sync();
            var times = new List<double>();
            // Live tensors on this thread (created minus disposed): a step that leaks shows as growth over the timed steps.
            long liveBefore = DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;
            for (int i = 0; i < (steps ?? Options.Steps); i++)
            {
                Cancel.ThrowIfCancellationRequested();
                var sw = Stopwatch.StartNew();
                step();
                Sync();
                times.Add(sw.Elapsed.TotalMilliseconds);
            }
            long liveAfter = DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;
            Log($"    live tensors: {liveBefore} before {times.Count} timed steps, {liveAfter} after ({liveAfter - liveBefore:+0;-0;0})");
            times.Sort();
            return times[times.Count / 2];
        }

        public List<PerfFigure> Figures(string bench, string @case, double ms, double tokens, double flops, DeviceMemory memory)
        {
            var list = new List<PerfFigure>
            {
                new(bench, @case, "time", ms, "ms"),
                new(bench, @case, "throughput", tokens / (ms / 1000), "tokens/s"),
                new(bench, @case, "peak memory", memory.PeakMiB(), Cuda ? "MiB (device)" : "MiB (RSS)"),
            };
            if (Cuda && flops > 0) list.Add(new(bench, @case, "MFU", 100 * flops / (ms / 1000) / PeakFlops, "%"));
            Log($"  {bench} {@case}: {ms:F1} ms, {tokens / (ms / 1000):F0} tokens/s");
            return list;
        }
    }

    /// <summary>Random token ids [batch, seq] int64 in [3, vocab).</summary>
    private static Tensor RandomIds(Context ctx, long batch, long seq, long seed)
    {
        var g = new torch.Generator((ulong)seed, CPU);
        using var ids = randint(3, ctx.Config.VocabSize, new[] { batch, seq }, int64, CPU, generator: g);
        return ids.to(ctx.Device).DetachFromDisposeScope();
    }

    /// <summary>A right-padded, unpadded batch: prompt = first <paramref name="promptTokens"/>, completion = the rest.</summary>
    private static CompletionBatch Batch(Context ctx, long batch, long seq, long promptTokens, long seed)
    {
        using var scope = NewDisposeScope();
        var ids = RandomIds(ctx, batch, seq, seed);
        var completion = zeros(new[] { batch, seq }, ScalarType.Bool, ctx.Device);                   // [b, t] bool
        completion.narrow(1, promptTokens, seq - promptTokens).fill_(true);
        var mask = ones(new[] { batch, seq }, int64, ctx.Device);                                    // [b, t] int64
        return new CompletionBatch(ids.DetachFromDisposeScope(), mask.DetachFromDisposeScope(), completion.DetachFromDisposeScope()) { RightPadded = true };
    }

    private static List<PerfFigure> Dpo(Context ctx)
    {
        var o = ctx.Options;
        var figures = new List<PerfFigure>();
        long pairs = o.Batch / 2;
        using var batch = Batch(ctx, 2 * pairs, o.SeqLen, o.SeqLen / 2, 11);
        double fwd = ModelShapes.ForwardFlops(ctx.Config, 2 * pairs, o.SeqLen);
        foreach (bool storedRef in new[] { false, true })
        {
            using var memory = DeviceMemory.Start(ctx.Cuda);
            using var policy = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
            using var reference = storedRef ? null : ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
            reference?.eval();
            policy.train();
            using var optimizer = new FlatAdamW(policy.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
            // The trainer's own step with the shipping defaults: sigmoid DPO at β 0.1, no accumulation, clipping at max_grad_norm 1.
            var trainerDefaults = new DpoTrainingOptions();
            var step = new DpoStep(policy, optimizer, ObjectiveFactory.Create(trainerDefaults.Objective), 1, trainerDefaults.MaxGradNorm);
            Tensor stored;
            using (no_grad())
            using (var s = NewDisposeScope())
                stored = CompletionScorer.Score(policy, batch).LogprobSum.DetachFromDisposeScope(); // [2·pairs] float32
            long done = 0;
            void Step()
            {
                using var scope = NewDisposeScope();
                Tensor refLogp;
                if (reference is not null)
                {
                    // TRL without precompute_ref_log_probs: the reference forward in every step.
                    using var _ = no_grad();
                    refLogp = CompletionScorer.Score(reference, batch).LogprobSum;                      // [2·pairs] float32
                }
                else refLogp = stored;
                var sums = new Dictionary<string, double>();
                step.Accumulate(batch, refLogp.narrow(0, 0, pairs), refLogp.narrow(0, pairs, pairs), null, sums);
                step.Update(1e-6, done++, sums);
            }
            double ms = ctx.TimeMs(Step);
            double flops = 3 * fwd + (storedRef ? 0 : fwd);
            figures.AddRange(ctx.Figures("dpo", $"{(storedRef ? "stored-ref" : "ref-every-step")} {ctx.Size}", ms, 2.0 * pairs * o.SeqLen, flops, memory));
            stored.Dispose();
        }
        return figures;
    }

    /// <summary>
    /// One DPO step as the trainer runs it (stored reference log-probs, prompt = first half) with full fine-tuning, or
    /// LoRA of rank <see cref="PerfOptions.LoraR"/> (alpha 2r, all-linear) on the frozen model, with or without activation
    /// checkpointing; reports the memory plan's estimate beside the measured peak. One case per process, so the peak is the case's.
    /// </summary>
    private static List<PerfFigure> Lora(Context ctx)
    {
        var o = ctx.Options;
        long pairs = o.Batch / 2;
        var lora = o.LoraR > 0 ? new LoraOptions { R = o.LoraR, Alpha = 2 * o.LoraR, TargetModules = [LoraTargets.AllLinear] } : null;
        string @case = $"{(lora is null ? "full" : $"lora-r{o.LoraR}")}{(o.GradientCheckpointing ? "+ckpt" : "")}{(o.ReferenceEveryStep ? " ref-every-step" : "")} {ctx.Size}";
        var plan = MemoryPlan.Estimate(ctx.Config, new MemoryPlanInput((int)pairs, o.SeqLen, o.SeqLen / 2, ctx.Cuda, lora, o.GradientCheckpointing,
            ProcessBaselineBytes: ctx.Cuda ? null : MemoryPlan.ProcessResidentBytes()));
        using var memory = DeviceMemory.Start(ctx.Cuda);
        double runtimeMiB = memory.PeakMiB();
        TraceRss(ctx, "start");
        using var batch = Batch(ctx, 2 * pairs, o.SeqLen, o.SeqLen / 2, 11);
        using var policy = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        TraceRss(ctx, "model");
        policy.train();
        policy.GradientCheckpointing = o.GradientCheckpointing;
        using var adapter = lora is null ? null : LoraAdapter.Inject(policy, lora, seed: 1);
        using var optimizer = new FlatAdamW(adapter?.Parameters() ?? policy.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        var defaults = new DpoTrainingOptions();
        var step = new DpoStep(policy, optimizer, ObjectiveFactory.Create(defaults.Objective), 1, defaults.MaxGradNorm);
        TraceRss(ctx, "optimizer");
        Tensor stored;
        using (no_grad())
        using (var s = NewDisposeScope())
            stored = CompletionScorer.Score(policy, batch).LogprobSum.DetachFromDisposeScope(); // [2·pairs] float32
        TraceRss(ctx, "stored ref");
        long done = 0;
        void Step()
        {
            TraceRss(ctx, "step start");
            using var scope = NewDisposeScope();
            var sums = new Dictionary<string, double>();
            var reference = stored;
            if (o.ReferenceEveryStep)
            {
                // The reference is the frozen base: the adapters off (full fine-tuning has no frozen copy here: stored figures only).
                using var _ = no_grad();
                if (adapter is not null) adapter.Enabled = false;
                reference = CompletionScorer.Score(policy, batch).LogprobSum;                           // [2·pairs] float32
                if (adapter is not null) adapter.Enabled = true;
            }
            step.Accumulate(batch, reference.narrow(0, 0, pairs), reference.narrow(0, pairs, pairs), null, sums);
            TraceRss(ctx, "after backward");
            step.Update(1e-6, done++, sums);
            TraceRss(ctx, "after update");
        }
        double ms = ctx.TimeMs(Step);
        var figures = ctx.Figures("lora", @case, ms, 2.0 * pairs * o.SeqLen, (lora is null ? 3 : 2) * ModelShapes.ForwardFlops(ctx.Config, 2 * pairs, o.SeqLen), memory);
        double measured = figures.Single(f => f.Metric == "peak memory").Value;
        double planned = plan.Total / (1024.0 * 1024);
        figures.Add(new("lora", @case, "runtime before the model", runtimeMiB, "MiB"));
        figures.Add(new("lora", @case, "planned peak", planned, "MiB"));
        figures.Add(new("lora", @case, "plan error", 100 * (planned - measured) / measured, "%"));
        figures.Add(new("lora", @case, "trainable parameters", plan.Trainable, "count"));
        foreach (var (part, bytes) in plan.Rows()) ctx.Log($"    plan {part}: {bytes / (1024.0 * 1024):F0} MiB");
        stored.Dispose();
        return figures;
    }

    private static void TraceRss(Context ctx, string label)
    {
        if (ctx.Cuda) return;
        var v = File.ReadLines("/proc/self/status").Where(l => l.StartsWith("Vm", StringComparison.Ordinal) || l.StartsWith("Rss", StringComparison.Ordinal))
            .ToDictionary(l => l[..l.IndexOf(':', StringComparison.Ordinal)], l => long.Parse(l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0);
        ctx.Log($"    rss {label}: rss {v["VmRSS"]:F0} hwm {v["VmHWM"]:F0} anon {v["RssAnon"]:F0} file {v["RssFile"]:F0} MiB, gc {GC.GetTotalMemory(false) / 1048576.0:F0} MiB");
    }

    private static List<PerfFigure> Sft(Context ctx)
    {
        var o = ctx.Options;
        using var memory = DeviceMemory.Start(ctx.Cuda);
        using var batch = Batch(ctx, o.Batch, o.SeqLen, 1, 12);
        using var policy = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        policy.train();
        using var optimizer = new FlatAdamW(policy.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        void Step()
        {
            using var scope = NewDisposeScope();
            var scores = CompletionScorer.Score(policy, batch);
            (-scores.LogprobSum.sum() / scores.TokenCount.sum()).backward();
            optimizer.StepWith(1e-5);
            optimizer.ZeroGrad();
        }
        double ms = ctx.TimeMs(Step);
        return ctx.Figures("sft", ctx.Size, ms, (double)o.Batch * o.SeqLen, 3 * ModelShapes.ForwardFlops(ctx.Config, o.Batch, o.SeqLen), memory);
    }

    private static List<PerfFigure> Optimizer(Context ctx)
    {
        var figures = new List<PerfFigure>();
        using var memory = DeviceMemory.Start(ctx.Cuda);
        using var model = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        var parameters = model.named_parameters().ToList();
        long count = parameters.Sum(p => p.parameter.numel());
        using (no_grad())
        {
            foreach (var (_, p) in parameters) p.grad = randn_like(p).mul_(1e-3).DetachFromDisposeScope();
        }
        // TorchSharp's stock AdamW: one tensor at a time from managed code.
        using (var stock = torch.optim.AdamW(parameters.Select(p => p.parameter), lr: 1e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0))
        {
            double ms = ctx.TimeMs(() => stock.step());
            figures.AddRange(ctx.Figures("optimizer", $"torchsharp-adamw {count / 1e6:F0}M", ms, 0, 0, memory));
        }
        using (var flat = new FlatAdamW(parameters, new AdamWSettings()))
        {
            using (no_grad())
            {
                foreach (var (_, p) in parameters) p.grad!.normal_(0, 1e-3);
            }
            double ms = ctx.TimeMs(() => flat.StepWith(1e-5));
            figures.AddRange(ctx.Figures("optimizer", $"flat-adamw {count / 1e6:F0}M", ms, 0, 0, memory));
        }
        // Throughput of an optimizer step is meaningless in tokens: report parameters/s instead.
        return figures.Where(f => f.Metric != "throughput").ToList();
    }

    private static List<PerfFigure> Generate(Context ctx)
    {
        var o = ctx.Options;
        var figures = new List<PerfFigure>();
        using var model = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        model.eval();
        var generator = new TextGenerator(model, ctx.Config.PadTokenId ?? 0);
        foreach (int b in o.GenerationBatches)
        {
            using var memory = DeviceMemory.Start(ctx.Cuda);
            var requests = Prompts(ctx, b, o.PromptTokens, 21);
            var options = new GenerationOptions { MaxNewTokens = o.NewTokens, Greedy = true, EosTokenIds = [] };
            double ms = ctx.TimeMs(() => generator.Generate(requests, options, ctx.Cancel), steps: b <= 8 ? 3 : 2, warmup: 1);
            double flops = ModelShapes.ForwardFlops(ctx.Config, b, o.PromptTokens + o.NewTokens);
            string label = $"batch={b} prompt={o.PromptTokens} new={o.NewTokens}";
            figures.AddRange(ctx.Figures("generate", label, ms, (double)b * o.NewTokens, flops, memory));
            // Prefill + first token alone, so the per-token decoding cost can be separated from the prompt's.
            var one = new GenerationOptions { MaxNewTokens = 1, Greedy = true, EosTokenIds = [] };
            double prefillMs = ctx.TimeMs(() => generator.Generate(requests, one, ctx.Cancel), steps: 3, warmup: 1);
            figures.Add(new("generate", label, "prefill+1", prefillMs, "ms"));
            if (o.NewTokens > 1) figures.Add(new("generate", label, "decode step", (ms - prefillMs) / (o.NewTokens - 1), "ms"));
            // Tensor operations per decoding step (tensors created, views included, in-place operations not: TensorOps).
            double ops = TensorOps.PerDecodingStep(generator, requests);
            figures.Add(new("generate", label, "tensor ops per decoding step", ops, "tensors"));
            // Mixed prompt lengths (left padding: an additive mask each step), as ingest's batches have.
            var mixed = requests.Select((r, i) => r with { PromptIds = r.PromptIds.Take(Math.Max(1, o.PromptTokens - i % 4 * o.PromptTokens / 8)).ToList() }).ToList();
            double mixedOps = b > 1 ? TensorOps.PerDecodingStep(generator, mixed) : ops;
            if (b > 1) figures.Add(new("generate", label, "tensor ops per decoding step, mixed prompt lengths", mixedOps, "tensors"));
            // Sampled at temperature 1 with mixed prompt lengths: what ingest runs.
            double sampledOps = TensorOps.PerDecodingStep(generator, mixed, sample: true);
            figures.Add(new("generate", label, "tensor ops per decoding step, sampled, mixed prompt lengths", sampledOps, "tensors"));
            string line = $"  generate {label}: {ops:F1} tensor ops per decoding step ({mixedOps:F1} with mixed prompt lengths, {sampledOps:F1} sampled)";
            if (b == o.GenerationBatches[0])
            {
                // Per layer: the same shape with 2 and 1 layers, so embedding, head, sampling and masks cancel.
                double perLayer = TensorOps.PerLayerPerDecodingStep(
                    n => ModelShapes.Create(ModelShapes.Config(o.Model, n), ctx.DType, ctx.Device, 1), ctx.Config.PadTokenId ?? 0, requests);
                figures.Add(new("generate", label, "tensor ops per layer per decoding step", perLayer, "tensors"));
                line += $"; {perLayer:F1} per layer ({ctx.Config.NumHiddenLayers} layers), {ops - ctx.Config.NumHiddenLayers * perLayer:F1} outside the layers";
                if (b > 1)
                {
                    double mixedPerLayer = TensorOps.PerLayerPerDecodingStep(
                        n => ModelShapes.Create(ModelShapes.Config(o.Model, n), ctx.DType, ctx.Device, 1), ctx.Config.PadTokenId ?? 0, mixed);
                    figures.Add(new("generate", label, "tensor ops per layer per decoding step, mixed prompt lengths", mixedPerLayer, "tensors"));
                    line += $"; mixed prompt lengths: {mixedPerLayer:F1} per layer";
                }
            }
            ctx.Log(line);
        }
        return figures;
    }

    /// <summary>
    /// Continuous batching against batch-at-a-time decoding, for each generation batch size B: 4·B sampled requests with
    /// prompts of ½–1 × prompt-tokens and lengths that vary as real samples do (the end-of-sequence ids are every
    /// (new-tokens / 2)-th vocabulary id, so a near-uniform random-weights model ends a sequence with probability about
    /// 2 / new-tokens per token). "chunks": B requests per call (finished rows still leave the batch); "continuous": one
    /// call with B rows, waiting requests joining as others end. Tokens/s counts the tokens the samples kept; the row
    /// figures are the engine's (<see cref="GenerationCounters"/>); "static row-steps" is what a batch that runs every row
    /// to its longest sample would have computed.
    /// </summary>
    private static List<PerfFigure> Continuous(Context ctx)
    {
        var o = ctx.Options;
        var figures = new List<PerfFigure>();
        using var model = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        model.eval();
        int every = Math.Max(2, o.NewTokens / 2);
        var eos = Enumerable.Range(0, ctx.Config.VocabSize).Where(v => v % every == every - 1).ToList();
        var options = new GenerationOptions { MaxNewTokens = o.NewTokens, Temperature = 1.0, EosTokenIds = eos };
        using var fused = model.FuseProjections();   // both sides stack the projections once, as ingest does
        foreach (int b in o.GenerationBatches)
        {
            var prompts = Prompts(ctx, 4 * b, o.PromptTokens, 41);
            var requests = prompts.Select((r, i) => r with { PromptIds = r.PromptIds.Take(o.PromptTokens / 2 + (i * 7919) % Math.Max(1, o.PromptTokens / 2 + 1)).ToList(), Seed = 500 + i }).ToList();
            string label = $"rows={b} requests={4 * b} prompt≤{o.PromptTokens} new≤{o.NewTokens}";
            var chunked = new TextGenerator(model, ctx.Config.PadTokenId ?? 0) { Fused = fused };
            IReadOnlyList<GenerationResult>? last = null;
            double chunkMs = ctx.TimeMs(() => last = requests.Chunk(b).SelectMany(c => chunked.Generate(c, options, ctx.Cancel)).ToList(), steps: 2, warmup: 1);
            var chunkResults = last!;
            long tokens = chunkResults.Sum(r => (long)r.NewIds.Count);
            long staticRowSteps = requests.Chunk(b).Select((c, i) => (long)c.Length * (chunkResults.Skip(i * b).Take(c.Length).Max(r => r.NewIds.Count) - 1)).Sum();
            var continuous = new TextGenerator(model, ctx.Config.PadTokenId ?? 0) { Fused = fused };
            double contMs = ctx.TimeMs(() => last = continuous.Generate(requests, options, b, null, ctx.Cancel), steps: 2, warmup: 1);
            long contTokens = last!.Sum(r => (long)r.NewIds.Count);
            int calls = 2 + 1; // warm-up + timed calls share the counters
            figures.Add(new("continuous", label, "tokens/s chunks", tokens / (chunkMs / 1000), "tok/s"));
            figures.Add(new("continuous", label, "tokens/s continuous", contTokens / (contMs / 1000), "tok/s"));
            figures.Add(new("continuous", label, "speed-up", chunkMs / contMs * contTokens / tokens, "x"));
            figures.Add(new("continuous", label, "forwards per call chunks", (double)(chunked.Counters.DecodingSteps + chunked.Counters.Prefills) / calls, "forwards"));
            figures.Add(new("continuous", label, "forwards per call continuous", (double)(continuous.Counters.DecodingSteps + continuous.Counters.Prefills) / calls, "forwards"));
            figures.Add(new("continuous", label, "utilisation chunks", chunked.Counters.Utilisation, "share"));
            figures.Add(new("continuous", label, "utilisation continuous", continuous.Counters.Utilisation, "share"));
            figures.Add(new("continuous", label, "utilisation static batches", (double)(tokens - requests.Count) / staticRowSteps, "share"));
            ctx.Log(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"  continuous {label}: {tokens / (chunkMs / 1000):F0} tok/s in chunks of {b}, {contTokens / (contMs / 1000):F0} continuous; " +
                $"forwards/call {(chunked.Counters.DecodingSteps + chunked.Counters.Prefills) / calls} vs {(continuous.Counters.DecodingSteps + continuous.Counters.Prefills) / calls}; " +
                $"utilisation {chunked.Counters.Utilisation:P1} vs {continuous.Counters.Utilisation:P1} (static batches {(double)(tokens - requests.Count) / staticRowSteps:P1}); mean length {tokens / (double)requests.Count:F1}"));
        }
        return figures;
    }

    /// <summary>Host cost per tensor operation: an in-place add on a 1-element tensor, and two allocating ops in a dispose scope.</summary>
    private static List<PerfFigure> Overhead(Context ctx)
    {
        const int n = 20000;
        using var x = ones(1, ctx.DType, ctx.Device).DetachFromDisposeScope();                  // [1]
        double inplace = ctx.TimeMs(() =>
        {
            for (int i = 0; i < n; i++) x.add_(1.0);
        }, steps: 3, warmup: 1) * 1000 / n;
        double scoped = ctx.TimeMs(() =>
        {
            for (int i = 0; i < n / 2; i++)
            {
                using var scope = NewDisposeScope();
                var y = x * 2.0;
                _ = y + 1.0;
            }
        }, steps: 3, warmup: 1) * 1000 / n;
        ctx.Log($"  overhead: in-place {inplace:F2} µs/op, allocating in a scope {scoped:F2} µs/op");
        return
        [
            new("overhead", "in-place add_, 1 element", "per op", inplace, "µs"),
            new("overhead", "x*2 then +1 in a dispose scope", "per op", scoped, "µs"),
        ];
    }

    private static List<GenerationRequest> Prompts(Context ctx, int batch, int promptTokens, long seed)
    {
        using var ids = RandomIds(ctx, batch, promptTokens, seed);
        using var cpu = ids.cpu();
        var all = cpu.data<long>().ToArray();
        return Enumerable.Range(0, batch).Select(r => new GenerationRequest(all.Skip(r * promptTokens).Take(promptTokens).Select(x => (int)x).ToList(), r)).ToList();
    }

    private static List<PerfFigure> RefPass(Context ctx)
    {
        var o = ctx.Options;
        using var memory = DeviceMemory.Start(ctx.Cuda);
        using var batch = Batch(ctx, o.Batch, o.SeqLen, o.SeqLen / 2, 13);
        using var model = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        model.eval();
        void Step()
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            CompletionScorer.Score(model, batch);
        }
        double ms = ctx.TimeMs(Step);
        return ctx.Figures("refpass", ctx.Size, ms, (double)o.Batch * o.SeqLen, ModelShapes.ForwardFlops(ctx.Config, o.Batch, o.SeqLen), memory);
    }

    private static List<PerfFigure> Reward(Context ctx)
    {
        var o = ctx.Options;
        using var memory = DeviceMemory.Start(ctx.Cuda);
        using var ids = RandomIds(ctx, o.Batch, o.SeqLen, 14);
        using var model = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        model.eval();
        using var head = randn(new long[] { 1, ctx.Config.HiddenSize }, ctx.DType, ctx.Device).mul_(0.02).DetachFromDisposeScope(); // [1, hidden] score head
        void Step()
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var hidden = model.Hidden(new CausalLMInput(ids));                                   // [b, t, h]
            var last = hidden.select(1, o.SeqLen - 1);                                           // [b, h]
            F.linear(last, head).squeeze(-1).to(float32).cpu();                                  // [b] scores
        }
        double ms = ctx.TimeMs(Step);
        double flops = ModelShapes.ForwardFlops(ctx.Config, o.Batch, o.SeqLen) - 2.0 * ctx.Config.HiddenSize * ctx.Config.VocabSize * o.Batch * o.SeqLen;
        return ctx.Figures("reward", ctx.Size, ms, (double)o.Batch * o.SeqLen, flops, memory);
    }

    private static List<PerfFigure> Ppo(Context ctx)
    {
        var o = ctx.Options;
        var figures = new List<PerfFigure>();
        using var memory = DeviceMemory.Start(ctx.Cuda);
        int b = Math.Max(1, o.Batch);
        int seq = o.PromptTokens + o.NewTokens;
        using var policy = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        using var reference = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 1);
        using var rewardBody = ModelShapes.Create(ctx.Config, ctx.DType, ctx.Device, 2);
        using var rewardHead = randn(new long[] { 1, ctx.Config.HiddenSize }, ctx.DType, ctx.Device).mul_(0.02).DetachFromDisposeScope(); // [1, hidden]
        reference.eval();
        rewardBody.eval();
        using var optimizer = new FlatAdamW(policy.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        var generator = new TextGenerator(policy, ctx.Config.PadTokenId ?? 0);
        var requests = Prompts(ctx, b, o.PromptTokens, 31);
        var genOptions = new GenerationOptions { MaxNewTokens = o.NewTokens, Greedy = false, Temperature = 1.0, EosTokenIds = [] };
        CompletionBatch? rollout = null;
        Tensor? oldLogp = null, advantages = null;

        void Rollout()
        {
            using var scope = NewDisposeScope();
            policy.eval();
            var samples = generator.Generate(requests, genOptions, ctx.Cancel);
            rollout?.Dispose();
            rollout = CompletionBatch.Build(requests.Select((r, i) => (r.PromptIds, samples[i].NewIds)).ToList(), ctx.Config.PadTokenId ?? 0, ctx.Device);
            using var _ = no_grad();
            var old = CompletionScorer.Score(policy, rollout).TokenLogprobs;                   // [N]
            var refTok = CompletionScorer.Score(reference, rollout).TokenLogprobs;             // [N]
            var hidden = rewardBody.Hidden(new CausalLMInput(rollout.InputIds));               // [b, t, h]
            var score = F.linear(hidden.select(1, hidden.shape[1] - 1), rewardHead).squeeze(-1).to(float32); // [b]
            var kl = (old - refTok).mean();
            var adv = score - score.mean() - 0.05 * kl;                                         // [b] (value model not included)
            oldLogp?.Dispose();
            advantages?.Dispose();
            oldLogp = old.DetachFromDisposeScope();
            advantages = adv.DetachFromDisposeScope();
        }

        void Update()
        {
            using var scope = NewDisposeScope();
            policy.train();
            var scores = CompletionScorer.Score(policy, rollout!);
            var ratio = (scores.TokenLogprobs - oldLogp!).exp();                                 // [N]
            var perRow = rollout!.CompletionMask.narrow(1, 1, seq - 1).sum(1);                   // [b]
            var adv = advantages!.repeat_interleave(perRow);                                     // [N]
            var loss = max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean();
            loss.backward();
            optimizer.StepWith(1e-6);
            optimizer.ZeroGrad();
        }

        double rolloutMs = ctx.TimeMs(Rollout, steps: 2, warmup: 1);
        double rolloutFlops = ModelShapes.ForwardFlops(ctx.Config, b, seq) * 4;                   // generation + policy, reference, reward passes
        figures.AddRange(ctx.Figures("ppo", $"rollout batch={b} prompt={o.PromptTokens} new={o.NewTokens}", rolloutMs, (double)b * o.NewTokens, rolloutFlops, memory));
        double updateMs = ctx.TimeMs(Update);
        figures.AddRange(ctx.Figures("ppo", $"update {b}x{seq}", updateMs, (double)b * seq, 3 * ModelShapes.ForwardFlops(ctx.Config, b, seq), memory));
        rollout?.Dispose();
        oldLogp?.Dispose();
        advantages?.Dispose();
        return figures;
    }
}
