using System.Globalization;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Models.Generation;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Reward;
using PrefPipe.Models.Runtime;
using PrefPipe.Reporting;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Logging;
using PrefPipe.Trainer.Optimization;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Ppo;

/// <summary>
/// The ppo stage's trainer: PPO for language models. Each iteration samples responses from the policy for a batch of prompts, scores
/// them with the ONNX reward model (missing-EOS penalty), builds per-token rewards with a KL penalty against the
/// frozen reference (the dpo stage's model in MPO), estimates advantages with GAE from a value model, whitens them, and
/// runs clipped policy and value updates for a few epochs. β_KL is fixed or adapted toward a target KL. Policy,
/// reference and value model live on the device; the reward model runs in ONNX Runtime. Checkpoints hold the policy
/// (HF format), the value model and both optimizers; a run resumes from its latest checkpoint.
/// </summary>
internal sealed class PpoTrainer(PpoOptions options)
{
    /// <summary>Trains; see the class remarks.</summary>
    /// <param name="policyDirectory">The starting policy (its tokenizer decides the end-of-sequence ids).</param>
    /// <param name="referenceDirectory">The frozen reference for the KL penalty.</param>
    /// <param name="rewardDirectory">The ONNX reward model's folder.</param>
    /// <param name="outputDirectory">Checkpoints; a rerun resumes from the latest.</param>
    /// <param name="progress">Progress per iteration.</param>
    /// <param name="cancellationToken">Checked per iteration and decoding step.</param>
    /// <param name="prompts">Rollout prompts with the ids the policy is fed (<see cref="TrainingPrompt"/>: the ids ingest used).</param>
    public TrainResult Train(string policyDirectory, string referenceDirectory, string rewardDirectory, IReadOnlyList<TrainingPrompt> prompts,
        string outputDirectory, IProgress<TrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) throw new ArgumentException("no prompts", nameof(prompts));
        options.Validate();
        var device = TorchRuntime.DefaultDevice();
        var dtype = device.type == TorchSharp.DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;
        // This training: options, the prompts' ids, and the policy, reference and reward models.
        string fingerprint = TrainingResume.Fingerprint(options,
            string.Join(';', prompts.Select(p => $"{p.PromptId}:{string.Join(',', p.Ids)}")),
            ReferencePass.ModelFingerprint(policyDirectory), ReferencePass.ModelFingerprint(referenceDirectory), ReferencePass.ModelFingerprint(rewardDirectory), $"dtype={dtype}");
        var (resumeFrom, state) = TrainingResume.From(outputDirectory, fingerprint);

        var encoder = PromptEncoder.Load(AdapterModels.ModelFolder(policyDirectory));
        var tokenizer = encoder.Tokenizer;
        var eos = encoder.EosTokenIds;
        var promptIds = prompts.Select(p => p.Ids).ToList();
        if (prompts.FirstOrDefault(p => p.Ids.Count == 0) is { } empty) throw new ArgumentException($"prompt {empty.PromptId} has no token ids", nameof(prompts));

        // LoRA: a new adapter on the frozen start (a LoRA start merged into its base, on disk: the adapter's base); the
        // reference is the start with the adapter off when it is the same model, and the critic a head on the policy.
        string? adapterBase = options.Lora is null ? null : LoraStart(policyDirectory, outputDirectory, options.MaxShardBytes);
        bool sharedReference = adapterBase is not null && ReferencePass.ModelFingerprint(referenceDirectory) == ReferencePass.ModelFingerprint(policyDirectory);
        using var policy = AdapterModels.Load(adapterBase ?? resumeFrom ?? policyDirectory, device, dtype);
        using var adapter = options.Lora is null ? null : LoraAdapter.Inject(policy, options.Lora, options.Seed); // its own generator: A, dropout masks
        if (adapter is not null && resumeFrom is not null) Checkpoint.LoadAdapter(resumeFrom, adapter);
        using var reference = sharedReference ? null : AdapterModels.Load(referenceDirectory, device, dtype);
        using var value = adapter is not null ? ValueModel.SharedWith(policy) : new ValueModel(AdapterModels.Load(policyDirectory, device, dtype));
        int pad = encoder.PadTokenId;
        policy.GradientCheckpointing = options.GradientCheckpointing;
        if (adapter is null) value.Body!.GradientCheckpointing = options.GradientCheckpointing;
        policy.train();
        value.train();
        reference?.eval();
        using var policyOpt = new FlatAdamW(adapter?.Parameters() ?? policy.named_parameters().Select(p => (p.name, p.parameter)), new AdamWSettings());
        using var valueOpt = new FlatAdamW(value.Trainable(), new AdamWSettings());
        (Tensor Logprobs, Tensor Entropy) ReferenceLogprobs(RolloutBatch rollout)
        {
            if (reference is not null) return rollout.TokenLogprobs(reference, options.Temperature);
            adapter!.Enabled = false;
            try { return rollout.TokenLogprobs(policy, options.Temperature); }
            finally { adapter.Enabled = true; }
        }
        var kl = new KlController(options.KlCoef, options.TargetKl, options.KlHorizon);
        if (resumeFrom is not null)
        {
            Checkpoint.LoadOptimizer(resumeFrom, policyOpt);
            var extra = Checkpoint.LoadExtra(resumeFrom);
            using (no_grad())
                foreach (var (name, p) in value.Trainable()) p.copy_(extra["value." + name]);
            valueOpt.LoadStateDict(extra.Where(kv => kv.Key.StartsWith("value_opt.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["value_opt.".Length..], kv => kv.Value));
            kl.Restore(state!.Extra.GetValueOrDefault("kl_coef", options.KlCoef));
        }
        using var reward = OnnxRewardModel.Load(rewardDirectory, HfTokenizer.Load(rewardDirectory));
        var generator = new TextGenerator(policy, pad, ids => tokenizer.Decode(ids, skipSpecialTokens: true));
        var metrics = new List<MetricRow>(state?.LogHistory ?? []);
        long step = state?.GlobalStep ?? 0;
        // TensorBoard curves under TRL's names (train/objective/kl, …), written as each iteration is logged.
        using var board = new TensorBoardEventWriter(Path.Combine(outputDirectory, TensorBoardEventWriter.Folder));

        void Save()
        {
            using var scope = NewDisposeScope(); // valueOpt.StateDict()'s step tensor
            var extra = value.Trainable().ToDictionary(p => "value." + p.Name, p => (Tensor)p.Parameter);
            foreach (var (k, v) in valueOpt.StateDict()) extra["value_opt." + k] = v;
            Checkpoint.Save(Path.Combine(outputDirectory, $"checkpoint-{step}"), policy, policyOpt,
                new TrainerState { GlobalStep = step, MaxSteps = options.MaxSteps, Seed = options.Seed, Stage = "ppo", Extra = new() { ["kl_coef"] = kl.Value },
                    TrainingFingerprint = fingerprint, LogHistory = [.. metrics] },
                AdapterModels.ModelFolder(policyDirectory), extra, adapter, adapterBase, options.MaxShardBytes);
        }

        while (step < options.MaxSteps)
        {
            if (cancellationToken.IsCancellationRequested) { Save(); cancellationToken.ThrowIfCancellationRequested(); }
            // Prompt batch: a seeded permutation per pass over the prompts.
            var order = Enumerable.Range(0, prompts.Count).ToArray();
            new Random(unchecked((int)(options.Seed * 31 + step / Math.Max(1, prompts.Count / options.RolloutBatchSize)))).Shuffle(order);
            int offset = (int)(step * options.RolloutBatchSize % prompts.Count);
            var batchIdx = Enumerable.Range(0, Math.Min(options.RolloutBatchSize, prompts.Count)).Select(i => order[(offset + i) % prompts.Count]).ToList();

            // 1. Rollout.
            policy.eval();
            var samples = generator.Generate(batchIdx.Select((p, i) => new GenerationRequest(promptIds[p], options.Seed * 1_000_003 + step * 4099 + i)).ToList(),
                new GenerationOptions { MaxNewTokens = options.ResponseLength, Temperature = options.Temperature, EosTokenIds = eos }, cancellationToken);
            policy.train();
            var scoresRaw = reward.ScoreTexts(batchIdx.Select((p, i) => prompts[p].Text + (samples[i].Text ?? "")).ToList(), cancellationToken: cancellationToken).Scores;
            var scoreList = scoresRaw.Select((s, i) => (double)s - (options.MissingEosPenalty is double pen && samples[i].FinishReason != FinishReason.Eos ? pen : 0)).ToArray();

            // The iteration's tensors die before progress is reported and a checkpoint is written.
            int b = batchIdx.Count;
            Dictionary<string, double> logged;
            double meanKl;
            using (var scope = NewDisposeScope())
            {
                var rollout = RolloutBatch.Build(batchIdx.Select(p => promptIds[p]).ToList(), samples.Select(s => s.NewIds).ToList(), pad, device);
                Tensor oldLogp, refLogp, oldValues, entropy;
                using (no_grad())
                using (ComputeClock.Measure())
                {
                    (oldLogp, entropy) = rollout.TokenLogprobs(policy, options.Temperature);
                    (refLogp, _) = ReferenceLogprobs(rollout);
                    oldValues = rollout.TokenValues(value);
                }
                var mask = rollout.ResponseMask;                                                   // [B, Tr] float32
                var scores = tensor(scoreList.Select(x => (float)x).ToArray(), float32, device);  // [B]
                var (rewards, klTokens) = PpoMath.TokenRewards(oldLogp, refLogp, scores, mask, kl.Value);
                if (options.WhitenRewards) rewards = PpoMath.MaskedWhiten(rewards, mask, shiftMean: false) * mask;
                var (advantages, returns) = PpoMath.Gae(rewards, oldValues, mask, options.Gamma, options.Lam);
                advantages = (PpoMath.MaskedWhiten(advantages, mask) * mask).detach();
                returns = returns.detach();

                // 2. PPO updates.
                var sums = new Dictionary<string, double>();
                int mini = Math.Max(1, b / options.NumMiniBatches);
                int updates = 0;
                for (int epoch = 0; epoch < options.NumPpoEpochs; epoch++)
                {
                    for (int start = 0; start < b; start += mini)
                    {
                        using var inner = NewDisposeScope();
                        using var compute = ComputeClock.Measure();  // forward, losses, backward, optimizer steps (and the few scalar reads after them)
                        long count = Math.Min(mini, b - start);
                        var sub = rollout.Slice(start, count);
                        var (newLogp, _) = sub.TokenLogprobs(policy, options.Temperature);
                        var newValues = sub.TokenValues(value);
                        var m = mask.narrow(0, start, count);
                        var (pgLoss, clipFrac, approxKl) = PpoMath.PolicyLoss(newLogp, oldLogp.narrow(0, start, count), advantages.narrow(0, start, count), m, options.Cliprange);
                        var (vfLoss, vfClip) = PpoMath.ValueLoss(newValues, oldValues.narrow(0, start, count), returns.narrow(0, start, count), m, options.CliprangeValue);
                        (pgLoss + options.VfCoef * vfLoss).backward();
                        if (options.MaxGradNorm > 0) { policyOpt.ClipGradNorm(options.MaxGradNorm); valueOpt.ClipGradNorm(options.MaxGradNorm); }
                        policyOpt.StepWith(options.LearningRate);
                        valueOpt.StepWith(options.LearningRate);
                        policyOpt.ZeroGrad();
                        valueOpt.ZeroGrad();
                        updates++;
                        sums["policy/clipfrac"] = sums.GetValueOrDefault("policy/clipfrac") + clipFrac.item<float>();
                        sums["policy/approxkl"] = sums.GetValueOrDefault("policy/approxkl") + approxKl.item<float>();
                        sums["loss/policy"] = sums.GetValueOrDefault("loss/policy") + pgLoss.item<float>();
                        sums["val/loss"] = sums.GetValueOrDefault("val/loss") + vfLoss.item<float>();
                        sums["val/clipfrac"] = sums.GetValueOrDefault("val/clipfrac") + vfClip.item<float>();
                    }
                }
                meanKl = klTokens.sum(1).mean().item<float>();
                double meanScore = scoreList.Average();
                logged = sums.ToDictionary(kv => kv.Key, kv => kv.Value / updates);
                logged["objective/kl"] = meanKl;
                logged["objective/entropy"] = (entropy * mask).sum(1).mean().item<float>();
                logged["objective/rlhf_reward"] = meanScore - kl.Value * meanKl;
                logged["ppo/mean_scores"] = meanScore;
                logged["objective/scores"] = scoresRaw.Average(x => (double)x);
                logged["kl_coef"] = kl.Value;
                logged["val/mean"] = PpoMath.MaskedMean(oldValues, mask).item<float>();
            }
            logged["eos_fraction"] = samples.Count(s => s.FinishReason == FinishReason.Eos) / (double)samples.Count;
            kl.Update(meanKl, b);
            step++;
            foreach (var (k, v) in logged) metrics.Add(new MetricRow { Stage = "ppo", Step = step, Name = k, Value = v });
            board.AddScalars(step, logged);
            if (logged.Values.Any(double.IsNaN))
                throw new InvalidOperationException($"PPO diverged at iteration {step}: {string.Join(", ", logged.Where(kv => double.IsNaN(kv.Value)).Select(kv => kv.Key))} is NaN; lower learning_rate.");
            progress?.Report(new TrainProgress(step, options.MaxSteps, logged));
            if (options.SaveSteps > 0 && step % options.SaveSteps == 0 && step < options.MaxSteps) Save();
        }
        Save();
        WriteChart(Path.Combine(outputDirectory, "reward_kl.png"), metrics);
        return new TrainResult(Path.Combine(outputDirectory, $"checkpoint-{step}"), step, metrics, resumeFrom);
    }

    /// <summary>
    /// The full model a LoRA run's adapter sits on: the start policy itself, or, when the start is an adapter (MPO after a
    /// LoRA dpo stage), that adapter merged into its base, written once to <paramref name="outputDirectory"/>/merged-start
    /// (the checkpoints' base_model_name_or_path; a resume reuses it).
    /// </summary>
    private static string LoraStart(string policyDirectory, string outputDirectory, long maxShardBytes)
    {
        if (!AdapterConfig.IsAdapter(policyDirectory)) return policyDirectory;
        string merged = Path.Combine(outputDirectory, "merged-start");
        string stamp = Path.Combine(merged, "merged_from.txt");
        string source = ReferencePass.ModelFingerprint(policyDirectory);
        if (File.Exists(stamp) && File.ReadAllText(stamp) == source) return merged;
        string staging = merged + ".partial";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        AdapterModels.MergeToFolder(AdapterConfig.Read(policyDirectory).ResolveBase(policyDirectory), policyDirectory, staging, maxShardBytes: maxShardBytes);
        File.WriteAllText(Path.Combine(staging, "merged_from.txt"), source);
        if (Directory.Exists(merged)) Directory.Delete(merged, recursive: true);
        Directory.Move(staging, merged);
        return merged;
    }

    /// <summary>Reward and KL over iterations.</summary>
    internal static void WriteChart(string path, IReadOnlyList<MetricRow> metrics)
    {
        ChartSeries Series(string name) => new(name,
            metrics.Where(m => m.Name == name).Select(m => (double)m.Step).ToArray(),
            metrics.Where(m => m.Name == name).Select(m => m.Value).ToArray());
        Charts.Lines(path, "PPO", "iteration", "value", [Series("ppo/mean_scores"), Series("objective/kl"), Series("objective/rlhf_reward")]);
    }

    private static readonly string[] SummaryMetrics = ["ppo/mean_scores", "objective/kl", "policy/clipfrac", "val/loss"];

    /// <summary>A one-line summary of PPO metrics.</summary>
    public static string Describe(IReadOnlyDictionary<string, double> m) => string.Join("  ",
        SummaryMetrics.Where(m.ContainsKey)
            .Select(k => string.Create(CultureInfo.InvariantCulture, $"{k}={m[k]:G4}")));
}

/// <summary>A rollout batch: prompts and sampled responses, right-padded, with gather indices for response positions.</summary>
internal sealed class RolloutBatch
{
    private RolloutBatch(Tensor ids, Tensor attention, Tensor predictPositions, Tensor targets, Tensor responseMask)
    {
        Ids = ids; Attention = attention; PredictPositions = predictPositions; Targets = targets; ResponseMask = responseMask;
    }

    /// <summary>[B, T] int64</summary>
    public Tensor Ids { get; }

    /// <summary>[B, T] int64</summary>
    public Tensor Attention { get; }

    /// <summary>Position whose hidden state predicts response token i. [B, Tr] int64</summary>
    public Tensor PredictPositions { get; }

    /// <summary>Response tokens (pad where masked). [B, Tr] int64</summary>
    public Tensor Targets { get; }

    /// <summary>1 for response tokens. [B, Tr] float32</summary>
    public Tensor ResponseMask { get; }

    public static RolloutBatch Build(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<int>> responses, int pad, Device device)
    {
        int b = prompts.Count;
        int t = Enumerable.Range(0, b).Max(i => prompts[i].Count + Math.Max(1, responses[i].Count));
        int tr = Math.Max(1, responses.Max(r => r.Count));
        var ids = new long[b * t];
        var att = new long[b * t];
        var pos = new long[b * tr];
        var tgt = new long[b * tr];
        var msk = new float[b * tr];
        Array.Fill(ids, pad);
        Array.Fill(tgt, pad);
        for (int r = 0; r < b; r++)
        {
            var p = prompts[r];
            var y = responses[r];
            for (int i = 0; i < p.Count; i++) { ids[r * t + i] = p[i]; att[r * t + i] = 1; }
            for (int i = 0; i < y.Count; i++) { ids[r * t + p.Count + i] = y[i]; att[r * t + p.Count + i] = 1; }
            for (int i = 0; i < tr; i++)
            {
                pos[r * tr + i] = Math.Min(p.Count - 1 + i, t - 1);
                if (i < y.Count) { tgt[r * tr + i] = y[i]; msk[r * tr + i] = 1; }
            }
        }
        return new RolloutBatch(tensor(ids, new long[] { b, t }, int64, device), tensor(att, new long[] { b, t }, int64, device),
            tensor(pos, new long[] { b, tr }, int64, device), tensor(tgt, new long[] { b, tr }, int64, device), tensor(msk, new long[] { b, tr }, float32, device));
    }

    public RolloutBatch Slice(long start, long count) =>
        new(Ids.narrow(0, start, count), Attention.narrow(0, start, count), PredictPositions.narrow(0, start, count), Targets.narrow(0, start, count), ResponseMask.narrow(0, start, count));

    private Tensor Gather(Tensor hidden) =>
        hidden.gather(1, PredictPositions.unsqueeze(-1).expand(PredictPositions.shape[0], PredictPositions.shape[1], hidden.shape[2])); // [B, Tr, H]

    /// <summary>log π(response token) at temperature T, and the per-position entropy. Each [B, Tr] float32.</summary>
    public (Tensor Logprobs, Tensor Entropy) TokenLogprobs(CausalLM model, double temperature)
    {
        var hidden = model.Hidden(new CausalLMInput(Ids, Attention));               // [B, T, H]
        var logits = model.Head(Gather(hidden)).to(float32) / temperature;         // [B, Tr, V]
        var logp = logits.log_softmax(-1);
        var tokenLogp = logp.gather(2, Targets.unsqueeze(-1)).squeeze(-1) * ResponseMask;
        var entropy = PpoMath.Entropy(logits);
        return (tokenLogp, entropy);
    }

    /// <summary>Value estimates for the states before each response token. [B, Tr] float32</summary>
    public Tensor TokenValues(ValueModel value)
    {
        var hidden = value.Hidden(new CausalLMInput(Ids, Attention));              // [B, T, H]
        return value.Values(Gather(hidden)).to(float32) * ResponseMask;
    }
}
