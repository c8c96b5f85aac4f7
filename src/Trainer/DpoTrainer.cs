using System.Diagnostics;
using System.Globalization;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.Scoring;
using PrefPipe.Reporting;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Logging;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Optimization;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>Progress of a training run (one report per optimizer step).</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TotalSteps">Steps in the run.</param>
/// <param name="Metrics">This step's metrics (TRL names), when logged; else empty.</param>
public sealed record TrainProgress(long Step, long TotalSteps, IReadOnlyDictionary<string, double> Metrics);

/// <summary>The outcome of a training run.</summary>
/// <param name="FinalCheckpoint">The final checkpoint folder (a Hugging Face model folder).</param>
/// <param name="Steps">Optimizer steps done in total.</param>
/// <param name="Metrics">Logged metrics (TRL names) per step.</param>
/// <param name="ResumedFrom">The checkpoint the run resumed from, or null.</param>
public sealed record TrainResult(string FinalCheckpoint, long Steps, IReadOnlyList<MetricRow> Metrics, string? ResumedFrom);

/// <summary>
/// The dpo stage's trainer: a DPO-family objective on preference pairs against stored reference log-probs. AdamW over flat
/// buffers, warmup + cosine/linear schedule, gradient accumulation and clipping, length-bucketed batches, deterministic
/// on CPU for a seed. Checkpoints (HF format + optimizer + trainer state) every save_steps and at the end; a run resumes
/// from the latest checkpoint in its output folder and continues exactly as an uninterrupted run would. Cancellation
/// stops at a step boundary after writing a checkpoint.
/// </summary>
internal sealed class DpoTrainer(DpoTrainingOptions options)
{
    /// <summary>Trains <paramref name="policyDirectory"/> on <paramref name="pairs"/>; checkpoints go to <paramref name="outputDirectory"/>.</summary>
    public TrainResult Train(string policyDirectory, IReadOnlyList<EncodedPair> pairs, IReadOnlyDictionary<string, ReferenceLogProbRow> reference,
        string outputDirectory, IProgress<TrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(reference);
        if (pairs.Count == 0) throw new ArgumentException("no training pairs", nameof(pairs));
        var missing = pairs.Where(p => !reference.ContainsKey(p.Key)).Select(p => p.Key).Take(5).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"reference log-probs are missing for pair(s) {string.Join(", ", missing)}: run the reference pass on exactly these pairs.");
        var objective = ObjectiveFactory.Create(options.Objective);

        var device = TorchRuntime.DefaultDevice();
        ScalarType dtype = TrainingDtypes.Resolve(options.Dtype, device);
        // This training: options, the pairs' ids, the start model (every weight byte, tokenizer, dtype) and the reference log-probs.
        string fingerprint = TrainingResume.Fingerprint(options, ReferencePass.Fingerprint(pairs, policyDirectory, dtype),
            string.Join(',', pairs.Select(p => reference[p.Key]).Select(r => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{r.ChosenLogps:R}/{r.RejectedLogps:R}"))));
        var (resumeFrom, state) = TrainingResume.From(outputDirectory, fingerprint);
        if (options.Lora is not null && AdapterConfig.IsAdapter(policyDirectory))
            throw new InvalidDataException($"{policyDirectory} is a LoRA adapter: LoRA training starts from a full model. Merge it first (prefpipe model merge-lora --model BASE --adapter {policyDirectory} --output DIR).");
        // LoRA: the frozen start with fresh adapters (a resume loads its adapters); otherwise every weight, from the checkpoint on resume.
        using var model = AdapterModels.Load(options.Lora is null ? resumeFrom ?? policyDirectory : policyDirectory, device, dtype);
        model.train();
        model.GradientCheckpointing = options.GradientCheckpointing;
        // The adapter's generator (its A, then the dropout masks) is this training's own: nothing here draws from torch's global one.
        using var adapter = options.Lora is null ? null : LoraAdapter.Inject(model, options.Lora, options.Seed);
        if (adapter is not null && resumeFrom is not null) Checkpoint.LoadAdapter(resumeFrom, adapter);
        var trainable = adapter?.Parameters().ToList() ?? [.. model.named_parameters().Select(p => (p.name, p.parameter))];
        using var optimizer = new FlatAdamW(trainable, new AdamWSettings(WeightDecay: options.WeightDecay));
        if (resumeFrom is not null) Checkpoint.LoadOptimizer(resumeFrom, optimizer);
        var dpoStep = new DpoStep(model, optimizer, objective, options.GradientAccumulationSteps, options.MaxGradNorm);

        var sampler = new LengthBucketSampler(pairs.Select(p => p.Length).ToList(), options.PerDeviceTrainBatchSize, options.Seed);
        long stepsPerEpoch = Math.Max(1, sampler.BatchesPerEpoch / options.GradientAccumulationSteps);
        long totalSteps = options.MaxSteps > 0 ? options.MaxSteps : stepsPerEpoch * options.NumTrainEpochs;
        var schedule = new LearningRateSchedule(options.LearningRate, (long)Math.Ceiling(totalSteps * options.WarmupRatio), totalSteps, options.LrSchedulerType);
        long step = state?.GlobalStep ?? 0;
        var position = state is null ? new DataPosition(0, 0) : new DataPosition(state.Epoch, state.Batch);
        int pad = model.Config.PadTokenId ?? (model.Config.EosTokenIds.Count > 0 ? model.Config.EosTokenIds[0] : 0);
        var metrics = new List<MetricRow>(state?.LogHistory ?? []);
        // TensorBoard curves under TRL's names (train/loss, train/rewards/chosen, …), written as each step is logged.
        using var board = new TensorBoardEventWriter(Path.Combine(outputDirectory, TensorBoardEventWriter.Folder));
        IReadOnlyList<int[]> epochBatches = sampler.Epoch(position.Epoch);
        int epochOfBatches = position.Epoch;

        void SaveCheckpoint()
        {
            // The per-step check keeps NaN gradients out of the weights; this also refuses weights an update made infinite.
            using (var check = NewDisposeScope())
            using (no_grad())
                foreach (var (name, parameter) in trainable)
                    if (!isfinite(parameter).all().item<bool>())
                        throw new InvalidOperationException($"training diverged at step {step}: {name} is not finite; no checkpoint was written. Lower the learning rate.");
            Checkpoint.Save(Path.Combine(outputDirectory, $"checkpoint-{step}"), model, optimizer,
                new TrainerState { GlobalStep = step, MaxSteps = totalSteps, Epoch = position.Epoch, Batch = position.Batch, Seed = options.Seed, Stage = "dpo", TrainingFingerprint = fingerprint, LogHistory = [.. metrics] }, policyDirectory,
                adapter: adapter, adapterBase: policyDirectory, maxShardBytes: options.MaxShardBytes);
        }

        var clock = Stopwatch.StartNew();
        long tokensSinceLog = 0;
        while (step < totalSteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                SaveCheckpoint();
                cancellationToken.ThrowIfCancellationRequested();
            }
            var sums = new Dictionary<string, double>();
            for (int micro = 0; micro < options.GradientAccumulationSteps; micro++)
            {
                if (position.Epoch != epochOfBatches) { epochBatches = sampler.Epoch(position.Epoch); epochOfBatches = position.Epoch; }
                var batch = epochBatches[position.Batch].Select(i => pairs[i]).ToList();
                position = Checkpoint.Advance(position, sampler.BatchesPerEpoch, 1);
                using var scope = NewDisposeScope();
                var items = batch.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.ChosenIds))
                    .Concat(batch.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.RejectedIds))).ToList();
                using var inputs = CompletionBatch.Build(items, pad, device);
                var refRows = batch.Select(p => reference[p.Key]).ToList();
                tokensSinceLog += dpoStep.Accumulate(inputs,
                    tensor(refRows.Select(r => (float)r.ChosenLogps).ToArray(), float32, device),     // [B] float32
                    tensor(refRows.Select(r => (float)r.RejectedLogps).ToArray(), float32, device),
                    objective.NeedsDispersion ? tensor(refRows.Select(r => (float)r.Dispersion).ToArray(), float32, device) : null,
                    sums);
            }
            double lr = schedule.At(step);
            double gradNorm = dpoStep.Update(lr, step, sums);
            step++;

            bool log = step % options.LoggingSteps == 0 || step == totalSteps;
            var logged = new Dictionary<string, double>();
            if (log)
            {
                logged = new Dictionary<string, double>(sums)
                {
                    ["learning_rate"] = lr,
                    ["grad_norm"] = gradNorm,
                    ["epoch"] = position.Epoch + (double)position.Batch / sampler.BatchesPerEpoch,
                    ["tokens_per_second"] = tokensSinceLog / Math.Max(1e-9, clock.Elapsed.TotalSeconds),
                };
                foreach (var (k, v) in logged) metrics.Add(new MetricRow { Stage = "dpo", Step = step, Name = k, Value = v });
                board.AddScalars(step, logged);
                clock.Restart();
                tokensSinceLog = 0;
            }
            progress?.Report(new TrainProgress(step, totalSteps, logged));
            if (options.SaveSteps > 0 && step % options.SaveSteps == 0 && step < totalSteps) SaveCheckpoint();
        }
        SaveCheckpoint();
        string final = Path.Combine(outputDirectory, $"checkpoint-{step}");
        WriteChart(Path.Combine(outputDirectory, "loss.png"), metrics);
        return new TrainResult(final, step, metrics, resumeFrom);
    }

    /// <summary>
    /// A warning when the memory plan of this training's step (<see cref="MemoryPlan"/>) exceeds the memory the process
    /// may use (the machine's or the container's limit on CPU; on CUDA the device memory libtorch cannot tell us here, so
    /// $PREFPIPE_DEVICE_MEMORY_GIB gives it); null when it fits or nothing is known.
    /// </summary>
    internal static string? MemoryWarning(DpoTrainingOptions options, string policyDirectory)
    {
        bool cuda = TorchRuntime.DefaultDevice().type == TorchSharp.DeviceType.CUDA;
        double? available = DeviceMemoryInfo.ConfiguredBytes ?? (cuda ? null : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        return MemoryWarning(options, policyDirectory, cuda, available);
    }

    /// <summary>The warning for <paramref name="available"/> bytes of memory (null: unknown, no warning).</summary>
    internal static string? MemoryWarning(DpoTrainingOptions options, string policyDirectory, bool cuda, double? available)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (available is not double bytes) return null;
        var config = DecoderConfig.Load(AdapterModels.ModelFolder(policyDirectory));
        var plan = MemoryPlan.Estimate(config, new MemoryPlanInput(options.PerDeviceTrainBatchSize, options.MaxLength, options.MaxPromptLength, cuda, options.Lora, options.GradientCheckpointing,
            ProcessBaselineBytes: cuda ? null : MemoryPlan.ProcessResidentBytes())); // this process is the one that trains
        return plan.Fits(bytes) ? null
            : $"warning: the memory plan says this training will not fit: it {MemoryPlan.Describe(plan, bytes)} (see prefpipe plan); lower per_device_train_batch_size or max_length, or use lora / gradient_checkpointing.";
    }

    /// <summary>Loss and reward margin over steps.</summary>
    internal static void WriteChart(string path, IReadOnlyList<MetricRow> metrics)
    {
        ChartSeries Series(string name) => new(name,
            metrics.Where(m => m.Name == name).Select(m => (double)m.Step).ToArray(),
            metrics.Where(m => m.Name == name).Select(m => m.Value).ToArray());
        Charts.Lines(path, "DPO training", "step", "value", [Series("loss"), Series("rewards/margins"), Series("rewards/accuracies")]);
    }

    private static readonly string[] SummaryMetrics = ["loss", "rewards/margins", "rewards/accuracies", "learning_rate"];

    /// <summary>A one-line summary of logged metrics.</summary>
    public static string Describe(IReadOnlyDictionary<string, double> m) => string.Join("  ",
        SummaryMetrics.Where(m.ContainsKey)
            .Select(k => string.Create(CultureInfo.InvariantCulture, $"{k}={m[k]:G4}")));
}
