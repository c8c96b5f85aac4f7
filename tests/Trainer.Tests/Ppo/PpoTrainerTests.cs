using System.Text.Json;
using PrefPipe.Models.Decoders;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Evaluation;
using PrefPipe.Trainer.Ppo;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests.Ppo;

public sealed class PpoTrainerTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static List<TrainingPrompt> Prompts(string file, int take) => RawPrompts(file, take)
        .Select(p => TrainingPrompt.Encode(p.Item1, p.Item2, null, PromptEncoder.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy")))).ToList();

    private static List<(string, string)> RawPrompts(string file, int take) =>
        File.ReadLines(Path.Combine(Demo, file)).Take(take)
            .Select((l, i) => ($"{file}-{i}", JsonDocument.Parse(l).RootElement.GetProperty("prompt").GetString()!)).ToList();

    private static PpoOptions Options(int steps, int batch = 16, int length = 24) => new()
    {
        MaxSteps = steps, LearningRate = 3e-4, RolloutBatchSize = batch, NumPpoEpochs = 2, KlCoef = 0.05, ResponseLength = length, Temperature = 1.0, Seed = 3,
    };

    [Fact]
    public void Train_DemoTask_RaisesHeldOutRewardWithBoundedKl()
    {
        string output = Directory.CreateTempSubdirectory("prefpipe-ppo-").FullName;
        string policy = Path.Combine(Demo, "policy"), reward = Path.Combine(Demo, "reward");

        var result = new PpoTrainer(Options(8)).Train(policy, policy, reward, Prompts("prompts.jsonl", 128), output);
        var (summary, _) = PolicyEvaluator.Evaluate(policy, result.FinalCheckpoint, reward, Prompts("eval_prompts.jsonl", 30), new EvaluationOptions { SamplesPerPrompt = 2, MaxNewTokens = 24, Temperature = 1.0, Seed = 11 });

        Assert.True(summary.MeanRewardFinal > summary.MeanRewardStart + 0.3, $"mean reward {summary.MeanRewardStart:F3} → {summary.MeanRewardFinal:F3}");
        Assert.True(summary.WinRate > 0.6, $"win rate {summary.WinRate:P1}");
        Assert.InRange(summary.MeanKl, 0, 40);
        Assert.Contains(result.Metrics, m => m.Name == "objective/kl");
        Assert.Contains(result.Metrics, m => m.Name == "policy/clipfrac");
        Assert.True(File.Exists(Path.Combine(output, "reward_kl.png")));
    }

    [Fact]
    public void Train_CancelledThenResumed_EqualsUninterruptedRun()
    {
        string policy = Path.Combine(Demo, "policy"), reward = Path.Combine(Demo, "reward");
        var prompts = Prompts("prompts.jsonl", 24);
        string straight = Directory.CreateTempSubdirectory("prefpipe-ppo-a-").FullName;
        string interrupted = Directory.CreateTempSubdirectory("prefpipe-ppo-b-").FullName;

        var full = new PpoTrainer(Options(3, batch: 8, length: 12)).Train(policy, policy, reward, prompts, straight);
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => new PpoTrainer(Options(3, batch: 8, length: 12)).Train(policy, policy, reward, prompts, interrupted,
            new Sync(p => { if (p.Step == 1) cts.Cancel(); }), cts.Token));
        // The checkpoint resumed from holds the policy alone beside its config: the value model and both optimizers' state
        // are in its training_state subfolder, where the resume below reads them.
        CheckpointAssert.HoldsOnlyTheModel(Path.Combine(interrupted, "checkpoint-1"));
        Assert.True(File.Exists(Path.Combine(interrupted, "checkpoint-1", Checkpoint.StateFolder, "extra.safetensors")));
        var resumed = new PpoTrainer(Options(3, batch: 8, length: 12)).Train(policy, policy, reward, prompts, interrupted);

        Assert.EndsWith("checkpoint-1", resumed.ResumedFrom, StringComparison.Ordinal);
        using var a = CausalLM.Load(full.FinalCheckpoint, CPU);
        using var b = CausalLM.Load(resumed.FinalCheckpoint, CPU);
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True((pa - pb).abs().max().item<float>() < 1e-5f, $"{name} differs after resume");
        CheckpointAssert.HoldsOnlyTheModel(resumed.FinalCheckpoint);
    }

    [Fact]
    public void Train_ManyIterations_LiveTensorCountStaysFlat()
    {
        string policy = Path.Combine(Demo, "policy"), reward = Path.Combine(Demo, "reward");
        // 100 iterations, not 200: an iteration also generates, and 200 took ~35 s here. 80 iterations between the
        // samples are 160 updates of each optimizer (two PPO epochs of one minibatch): a tensor kept per update or per
        // iteration shows as +80 or more. Two prompts, eight tokens: the rollout shapes recur long before iteration 20.
        var options = Options(100, batch: 2, length: 8);
        options.SaveSteps = 40; // checkpoints at 40 and 80 fall between the two samples
        var probe = new LiveTensorProbe(20, 100);

        new PpoTrainer(options).Train(policy, policy, reward, Prompts("prompts.jsonl", 16), Directory.CreateTempSubdirectory("prefpipe-ppo-").FullName, probe);

        // Between iterations only the three models, the two optimizers' buffers and fixed caches are live.
        Assert.Equal(probe.Counts[20], probe.Counts[100]);
    }

    private sealed class Sync(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
