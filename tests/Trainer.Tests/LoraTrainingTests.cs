using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.SafeTensors;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Ppo;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests;

public sealed class LoraTrainingTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Policy = Path.Combine(Demo, "policy");

    private static readonly string[] Titles = ["Driftwood", "Kite Season", "Velvet Hour", "Marble Coast", "Orchid Line", "The Long Table", "The Night Archive", "The Fourth Bell"];

    private static List<EncodedPair> Pairs()
    {
        var encoder = new PairEncoder(new CompletionEncoder(HfTokenizer.Load(Policy), null), 128, 32, TruncationMode.KeepEnd);
        return Titles.SelectMany((t, i) => new[]
        {
            encoder.EncodeRendered($"p{i}a", $"Review of {t}:", " The acting was gripping. I found the music brilliant. A joy to watch.", " The pacing was tedious. Its dialogue felt flat. I hated it.").Pair!,
            encoder.EncodeRendered($"p{i}b", $"Review of {t}:", " I found the story charming. Its cast felt excellent. I would watch it again.", " The ending was painful. I found the music lifeless. Not recommended.").Pair!,
        }).ToList();
    }

    private static async Task<IReadOnlyDictionary<string, ReferenceLogProbRow>> Reference(List<EncodedPair> pairs) =>
        (await ReferencePass.ComputeOrReuseAsync(new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName), "ref", pairs, Policy, 8, TrainingDtype.Auto)).Rows;

    private static DpoTrainingOptions Options(int steps = 12) => new()
    {
        Objective = new ObjectiveOptions { LossType = "sigmoid" },
        LearningRate = 1e-2, MaxSteps = steps, PerDeviceTrainBatchSize = 4, LoggingSteps = 1, WarmupRatio = 0, Seed = 5, MaxLength = 128, MaxPromptLength = 32,
        Lora = new LoraOptions { R = 8, Alpha = 16, TargetModules = ["all-linear"] },
    };

    private static string Out() => Directory.CreateTempSubdirectory("prefpipe-lora-").FullName;

    [Fact]
    public async Task Dpo_Lora_LossFallsAndTheCheckpointIsAPeftAdapterOfTheFrozenPolicy()
    {
        var pairs = Pairs();
        var result = new DpoTrainer(Options()).Train(Policy, pairs, await Reference(pairs), Out());

        double Metric(long step, string name) => result.Metrics.Single(m => m.Step == step && m.Name == name).Value;
        // The adapter starts as B = 0: the policy is its reference, every implicit reward 0, the loss ln 2.
        Assert.Equal(Math.Log(2), Metric(1, "loss"), 4);
        double late = Enumerable.Range(10, 3).Average(s => Metric(s, "loss"));
        Assert.True(late < 0.6, $"loss should fall from ln 2; mean of steps 10-12 = {late}");
        Assert.True(Enumerable.Range(10, 3).Average(s => Metric(s, "rewards/margins")) > 0.2);

        string checkpoint = result.FinalCheckpoint;
        Assert.Equal(["adapter_model.safetensors"], Directory.EnumerateFiles(checkpoint, "*.safetensors").Select(Path.GetFileName));
        Assert.False(File.Exists(Path.Combine(checkpoint, "config.json")));
        Assert.True(File.Exists(Path.Combine(checkpoint, "tokenizer.json")));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "adapter_config.json")))!.AsObject();
        Assert.Equal(Path.GetFullPath(Policy), (string?)config["base_model_name_or_path"]);
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"], config["target_modules"]!.AsArray().Select(n => (string)n!));
        // The optimizer holds state for the adapters only: 2 moments × (A + B) per adapted layer.
        using var scope = NewDisposeScope();
        using var policy = CausalLM.Load(Policy, CPU);
        using var adapter = LoraAdapter.Load(policy, checkpoint);
        using (var state = SafeTensorsFile.Open(Path.Combine(checkpoint, Checkpoint.StateFolder, "optimizer.safetensors")))
            Assert.Equal(2 * adapter.ParameterCount, state.Tensors.Values.Where(t => t.Name.Contains("exp_avg", StringComparison.Ordinal)).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)));
        Assert.True(adapter.ParameterCount < policy.parameters().Sum(p => p.numel()) / 5);
        // The trained adapter moves the policy; off, it is the start again.
        using var batch = Models.Scoring.CompletionBatch.Build([(pairs[0].PromptIds, pairs[0].ChosenIds), (pairs[0].PromptIds, pairs[0].RejectedIds)], 0, CPU);
        using var _ = no_grad();
        float Margin()
        {
            var sums = Models.Scoring.CompletionScorer.Score(policy, batch).LogprobSum.data<float>().ToArray();
            return sums[0] - sums[1];
        }
        float trained = Margin();
        adapter.Enabled = false;
        float start = Margin();
        Assert.True(trained > start + 1, $"log π(chosen) − log π(rejected) should rise: {start} → {trained}");
    }

    /// <summary>
    /// LoRA on families whose linear layers differ from Llama's: Phi-3's fused qkv_proj and gate_up_proj (and an untied
    /// lm_head that all-linear must leave out), Gemma 3's q/k/v/o with tied embeddings. The expected module list, with
    /// each layer's [in → out], is read off config.json by hand (Phi-3: q 4·16 + k, v 2·16 each = 128, gate_up 2·128;
    /// Gemma 3: head_dim 32, so q_proj 64 → 128 and k/v 64 → 64).
    /// </summary>
    [Theory]
    [InlineData("tiny-phi3", 2, "mlp.down_proj:128:64,mlp.gate_up_proj:64:256,self_attn.o_proj:64:64,self_attn.qkv_proj:64:128")]
    [InlineData("tiny-gemma3", 4, "mlp.down_proj:128:64,mlp.gate_proj:64:128,mlp.up_proj:64:128,self_attn.k_proj:64:64,self_attn.o_proj:128:64,self_attn.q_proj:64:128,self_attn.v_proj:64:64")]
    public async Task Dpo_Lora_OtherFamily_SavesPeftKeysOfItsModulesAndBasePlusAdapterEqualsTheMergedModel(string family, int layers, string modules)
    {
        string policy = Path.Combine(AppContext.BaseDirectory, "fixtures", family);
        var encoder = new PairEncoder(new CompletionEncoder(HfTokenizer.Load(policy), null), 60, 16, TruncationMode.KeepEnd);
        var pairs = Titles.Take(6).SelectMany((t, i) => new[]
        {
            encoder.EncodeRendered($"p{i}a", $"Review of {t}:", " The acting was gripping. A joy.", " The pacing was tedious. I hated it.").Pair!,
            encoder.EncodeRendered($"p{i}b", $"Review of {t}:", " The story was charming. Again!", " The ending was painful. Not recommended.").Pair!,
        }).ToList();
        var reference = (await ReferencePass.ComputeOrReuseAsync(new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName), "ref", pairs, policy, 8, TrainingDtype.Auto)).Rows;
        var options = Options(steps: 9);
        options.MaxLength = 60;
        options.MaxPromptLength = 16;
        options.Lora!.R = 4;

        var result = new DpoTrainer(options).Train(policy, pairs, reference, Out());

        double Metric(long step, string name) => result.Metrics.Single(m => m.Step == step && m.Name == name).Value;
        Assert.Equal(Math.Log(2), Metric(1, "loss"), 4);
        double late = Enumerable.Range(7, 3).Average(s => Metric(s, "loss"));
        Assert.True(late < Math.Log(2) - 0.05, $"{family}: loss should fall from ln 2; mean of steps 7-9 = {late}");

        // PEFT's keys: base_model.model.<HF module name>.lora_A.weight [r, in] and .lora_B.weight [out, r], every layer, no lm_head.
        string checkpoint = result.FinalCheckpoint;
        var expected = modules.Split(',').Select(m => m.Split(':')).SelectMany(m => Enumerable.Range(0, layers).SelectMany(l => new[]
        {
            ($"base_model.model.model.layers.{l}.{m[0]}.lora_A.weight", new[] { 4L, long.Parse(m[1], System.Globalization.CultureInfo.InvariantCulture) }),
            ($"base_model.model.model.layers.{l}.{m[0]}.lora_B.weight", new[] { long.Parse(m[2], System.Globalization.CultureInfo.InvariantCulture), 4L }),
        })).OrderBy(k => k.Item1, StringComparer.Ordinal).ToList();
        using (var saved = SafeTensorsFile.Open(Path.Combine(checkpoint, "adapter_model.safetensors")))
        {
            Assert.Equal(expected.Select(e => e.Item1), saved.Tensors.Keys.Order(StringComparer.Ordinal));
            foreach (var (key, shape) in expected) Assert.Equal(shape, saved.Tensors[key].Shape);
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "adapter_config.json")))!.AsObject();
        Assert.Equal(modules.Split(',').Select(m => m.Split(':')[0].Split('.')[1]).Order(StringComparer.Ordinal), config["target_modules"]!.AsArray().Select(n => (string)n!));

        // Base + live adapter = the merged model (merge-lora's folder), in float32; both differ from the base.
        string merged = Out();
        AdapterModels.MergeToFolder(policy, checkpoint, merged);
        Assert.Equal(DecoderConfig.Load(policy).GetType(), DecoderConfig.Load(merged).GetType());
        using var scope = NewDisposeScope();
        using var live = CausalLM.Load(policy, CPU, ScalarType.Float32);
        using var adapter = LoraAdapter.Load(live, checkpoint);
        using var mergedModel = CausalLM.Load(merged, CPU, ScalarType.Float32);
        using var batch = Models.Scoring.CompletionBatch.Build([.. pairs.Take(4).SelectMany(p => new[] { (p.PromptIds, p.ChosenIds), (p.PromptIds, p.RejectedIds) })], 0, CPU);
        using var _ = no_grad();
        var withAdapter = Models.Scoring.CompletionScorer.Score(live, batch).LogprobSum;      // [8] float32
        var ofMerged = Models.Scoring.CompletionScorer.Score(mergedModel, batch).LogprobSum;
        float diff = (withAdapter - ofMerged).abs().max().item<float>();
        Assert.True(diff <= 1e-4f, $"{family}: base + adapter vs merged: max |Δ log p| = {diff}");
        adapter.Enabled = false;
        var ofBase = Models.Scoring.CompletionScorer.Score(live, batch).LogprobSum;
        Assert.True((withAdapter - ofBase).abs().max().item<float>() > 0.01f, $"{family}: the trained adapter should move the log-probs");
    }

    [Fact]
    public async Task Dpo_Lora_CancelledThenResumed_EqualsUninterruptedRun()
    {
        var pairs = Pairs();
        var reference = await Reference(pairs);
        string straight = Out(), interrupted = Out();
        var options = Options(steps: 5);
        options.Lora!.Dropout = 0.1; // dropout's randomness must resume too

        var uninterrupted = new DpoTrainer(options).Train(Policy, pairs, reference, straight);
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => new DpoTrainer(options).Train(Policy, pairs, reference, interrupted, new Sync(p => { if (p.Step == 2) cts.Cancel(); }), cts.Token));
        var resumed = new DpoTrainer(options).Train(Policy, pairs, reference, interrupted);

        Assert.EndsWith("checkpoint-2", resumed.ResumedFrom, StringComparison.Ordinal);
        using var scope = NewDisposeScope();
        using var a = SafeTensorsFile.Open(Path.Combine(uninterrupted.FinalCheckpoint, "adapter_model.safetensors"));
        using var b = SafeTensorsFile.Open(Path.Combine(resumed.FinalCheckpoint, "adapter_model.safetensors"));
        Assert.Equal(a.Tensors.Keys.Order(), b.Tensors.Keys.Order());
        foreach (string key in a.Tensors.Keys)
            Assert.True((a.Load(key) - b.Load(key)).abs().max().item<float>() < 1e-6f, $"{key} differs after resume");
    }

    /// <summary>
    /// Two LoRA-with-dropout trainings at once in one process (one with activation checkpointing, which replays the masks),
    /// while a third thread reseeds and draws from torch's process-wide generator in a loop, as another run of `serve`
    /// could: each adapter's generator is its own, so each training ends bit for bit where it ends alone.
    /// </summary>
    [Fact]
    public async Task Dpo_LoraDropout_TwoTrainingsAtOnceBesideGlobalDraws_EachEqualsItsLoneRun()
    {
        var pairs = Pairs();
        var reference = await Reference(pairs);
        var first = Options(steps: 4);
        first.Lora!.Dropout = 0.1;
        var second = Options(steps: 4);
        second.Seed = 9;
        second.GradientCheckpointing = true;
        second.Lora!.Dropout = 0.2;
        var aloneFirst = new DpoTrainer(first).Train(Policy, pairs, reference, Out());
        var aloneSecond = new DpoTrainer(second).Train(Policy, pairs, reference, Out());

        using var stop = new CancellationTokenSource();
        long globalDraws = 0;
        var noise = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var scope = NewDisposeScope();
                manual_seed(globalDraws);
                nn.functional.dropout(rand(4, 256), 0.5, training: true).sum().item<float>();
                globalDraws++;
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        TrainResult Run(DpoTrainingOptions options) => new DpoTrainer(options).Train(Policy, pairs, reference, Out());
        var together = await Task.WhenAll(
            Task.Factory.StartNew(() => Run(first), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default),
            Task.Factory.StartNew(() => Run(second), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
        await stop.CancelAsync();
        await noise;

        Assert.True(globalDraws > 10, $"the global generator was drawn from {globalDraws} times only");
        foreach (var (alone, concurrent) in new[] { (aloneFirst, together[0]), (aloneSecond, together[1]) })
        {
            Assert.Equal(alone.Metrics.Where(m => m.Name == "loss").Select(m => m.Value), concurrent.Metrics.Where(m => m.Name == "loss").Select(m => m.Value));
            foreach (string file in new[] { "adapter_model.safetensors", Path.Combine(Checkpoint.StateFolder, "rng_state.safetensors"), Path.Combine(Checkpoint.StateFolder, "optimizer.safetensors") })
                Assert.True(File.ReadAllBytes(Path.Combine(alone.FinalCheckpoint, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(concurrent.FinalCheckpoint, file))),
                    $"{file} of the concurrent run differs from the lone run's");
        }
    }

    [Fact]
    public void Ppo_LoraDropout_CancelledThenResumed_EqualsUninterruptedRun()
    {
        var prompts = File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(16)
            .Select((l, i) => TrainingPrompt.Encode($"p{i}", JsonDocument.Parse(l).RootElement.GetProperty("prompt").GetString()!, null, PromptEncoder.Load(Policy))).ToList();
        var options = new PpoOptions
        {
            MaxSteps = 3, LearningRate = 3e-3, RolloutBatchSize = 8, NumPpoEpochs = 2, ResponseLength = 12, Seed = 3,
            Lora = new LoraOptions { R = 4, Alpha = 8, Dropout = 0.2, TargetModules = ["all-linear"] },
        };
        string reward = Path.Combine(Demo, "reward"), straight = Out(), interrupted = Out();

        var uninterrupted = new PpoTrainer(options).Train(Policy, Policy, reward, prompts, straight);
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => new PpoTrainer(options).Train(Policy, Policy, reward, prompts, interrupted, new Sync(p => { if (p.Step == 1) cts.Cancel(); }), cts.Token));
        var resumed = new PpoTrainer(options).Train(Policy, Policy, reward, prompts, interrupted);

        Assert.EndsWith("checkpoint-1", resumed.ResumedFrom, StringComparison.Ordinal);
        using var scope = NewDisposeScope();
        using var a = SafeTensorsFile.Open(Path.Combine(uninterrupted.FinalCheckpoint, "adapter_model.safetensors"));
        using var b = SafeTensorsFile.Open(Path.Combine(resumed.FinalCheckpoint, "adapter_model.safetensors"));
        foreach (string key in a.Tensors.Keys)
            Assert.True((a.Load(key) - b.Load(key)).abs().max().item<float>() < 1e-6f, $"{key} differs after resume");
    }

    [Fact]
    public async Task Ppo_Lora_AfterLoraDpo_StartsFromTheMergedAdapterWithTheAdapterOffAsReference()
    {
        var pairs = Pairs();
        var dpo = new DpoTrainer(Options(steps: 4)).Train(Policy, pairs, await Reference(pairs), Out());
        var prompts = File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(16)
            .Select((l, i) => TrainingPrompt.Encode($"p{i}", JsonDocument.Parse(l).RootElement.GetProperty("prompt").GetString()!, null, PromptEncoder.Load(Policy))).ToList();
        var options = new PpoOptions
        {
            MaxSteps = 2, LearningRate = 3e-3, RolloutBatchSize = 8, NumPpoEpochs = 2, ResponseLength = 12, Seed = 3,
            Lora = new LoraOptions { R = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] },
        };
        string output = Out();

        var result = new PpoTrainer(options).Train(dpo.FinalCheckpoint, dpo.FinalCheckpoint, Path.Combine(Demo, "reward"), prompts, output);

        // Stage 1's adapter merged into its base is PPO's start, written once, and the new adapter's base.
        string merged = Path.Combine(output, "merged-start");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(result.FinalCheckpoint, "adapter_config.json")))!.AsObject();
        Assert.Equal(merged, (string?)config["base_model_name_or_path"]);
        Assert.Equal(["q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(n => (string)n!));
        Assert.True(File.Exists(Path.Combine(merged, "model.safetensors")));
        // The first rollout's policy is the start (B = 0), and the reference is the start with the adapter off: KL exactly 0.
        Assert.Equal(0, result.Metrics.Single(m => m.Step == 1 && m.Name == "objective/kl").Value, 6);
        Assert.True(result.Metrics.Single(m => m.Step == 2 && m.Name == "objective/kl").Value != 0);
        // The value head is trained and kept for a resume; the critic shares the policy's body.
        using var scope = NewDisposeScope();
        var extra = Checkpoint.LoadExtra(result.FinalCheckpoint);
        Assert.Equal(["v_head"], extra.Keys.Where(k => k.StartsWith("value.", StringComparison.Ordinal)).Select(k => k["value.".Length..]));
        Assert.True(extra["value.v_head"].abs().sum().item<float>() > 0);
        // Every later stage loads the checkpoint as a model: base (the merged start) + this adapter.
        using var final = AdapterModels.Load(result.FinalCheckpoint, CPU);
        using var start = CausalLM.Load(merged, CPU);
        Assert.Contains(final.named_parameters().Zip(start.named_parameters()), p => (p.First.parameter - p.Second.parameter).abs().max().item<float>() > 0);
    }

    [Fact]
    public void MemoryWarning_PlanAboveTheGivenMemory_SaysSoAndWhatToChange()
    {
        string? warning = DpoTrainer.MemoryWarning(Options(), Policy, cuda: false, 0.01 * (1L << 30));
        string? none = DpoTrainer.MemoryWarning(Options(), Policy, cuda: false, 64.0 * (1L << 30));
        string? unknown = DpoTrainer.MemoryWarning(Options(), Policy, cuda: true, null);

        Assert.NotNull(warning);
        Assert.Contains("will not fit", warning, StringComparison.Ordinal);
        Assert.Contains("of 0.0 GiB: does not fit", warning, StringComparison.Ordinal);
        Assert.Null(none);
        Assert.Null(unknown);
    }

    private sealed class Sync(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
