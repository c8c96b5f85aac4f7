using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Decoders;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Data;
using PrefPipe.Trainer.Objectives;
using static TorchSharp.torch;

namespace PrefPipe.Trainer.Tests;

public sealed class DpoTrainerTests
{
    private static readonly string Policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

    private static readonly string[] Titles = ["Driftwood", "Kite Season", "Velvet Hour", "Marble Coast", "Orchid Line", "The Long Table", "The Night Archive", "The Fourth Bell"];

    /// <summary>Positive (chosen) and negative (rejected) reviews in the demo's style.</summary>
    private static List<EncodedPair> Pairs()
    {
        var tokenizer = HfTokenizer.Load(Policy);
        var encoder = new PairEncoder(new CompletionEncoder(tokenizer, null), 128, 32, TruncationMode.KeepEnd);
        return Titles.SelectMany((t, i) => new[]
        {
            encoder.EncodeRendered($"p{i}a", $"Review of {t}:", " The acting was gripping. I found the music brilliant. A joy to watch.", " The pacing was tedious. Its dialogue felt flat. I hated it.").Pair!,
            encoder.EncodeRendered($"p{i}b", $"Review of {t}:", " I found the story charming. Its cast felt excellent. I would watch it again.", " The ending was painful. I found the music lifeless. Not recommended.").Pair!,
        }).ToList();
    }

    private static async Task<IReadOnlyDictionary<string, ReferenceLogProbRow>> Reference(List<EncodedPair> pairs, IArtifactStore? store = null) =>
        (await ReferencePass.ComputeOrReuseAsync(store ?? new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName), "ref", pairs, Policy, 8, TrainingDtype.Auto)).Rows;

    private static DpoTrainingOptions Options(string loss = "sigmoid", int steps = 12) => new()
    {
        Objective = new ObjectiveOptions { LossType = loss },
        LearningRate = 2e-3, MaxSteps = steps, PerDeviceTrainBatchSize = 4, LoggingSteps = 1, WarmupRatio = 0, Seed = 5, MaxLength = 128, MaxPromptLength = 32,
    };

    private static string Out() => Directory.CreateTempSubdirectory("prefpipe-dpo-").FullName;

    [Fact]
    public async Task Train_Sigmoid_StartsAtLn2_LossFallsAndAccuracyRises()
    {
        var pairs = Pairs();
        var result = new DpoTrainer(Options()).Train(Policy, pairs, await Reference(pairs), Out());

        double Metric(long step, string name) => result.Metrics.Single(m => m.Step == step && m.Name == name).Value;
        // Reference = the starting policy: every implicit reward is 0 before the first update, so the loss is ln 2.
        Assert.Equal(Math.Log(2), Metric(1, "loss"), 4);
        Assert.Equal(0, Metric(1, "rewards/margins"), 4);
        double late = Enumerable.Range(10, 3).Average(s => Metric(s, "loss"));
        Assert.True(late < 0.6, $"loss should fall from ln 2; mean of steps 10-12 = {late}");
        Assert.True(Enumerable.Range(10, 3).Average(s => Metric(s, "rewards/accuracies")) > 0.7);
        Assert.True(File.Exists(Path.Combine(result.FinalCheckpoint, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(result.FinalCheckpoint, "tokenizer.json")));
        CheckpointAssert.HoldsOnlyTheModel(result.FinalCheckpoint);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(result.FinalCheckpoint)!, "loss.png")));
    }

    [Theory]
    [InlineData("sigmoid_norm")]
    [InlineData("ipo")]
    [InlineData("mipo")]
    [InlineData("mallows_theta")]
    [InlineData("mallows_phi")]
    [InlineData("bcr")]
    public async Task Train_EachObjective_RunsWithoutNaN(string loss)
    {
        var pairs = Pairs();
        var options = Options(loss, steps: 3);
        if (loss == "mipo") options.LearningRate = 1e-4;

        var result = new DpoTrainer(options).Train(Policy, pairs, await Reference(pairs), Out());

        Assert.All(result.Metrics, m => Assert.True(double.IsFinite(m.Value), $"{m.Name} at step {m.Step} is {m.Value}"));
        Assert.Equal(3, result.Steps);
    }

    [Fact]
    public async Task Train_OutputHoldsAnotherTrainingsCheckpoint_RefusesToResumeIt()
    {
        // A folder with a finished 2-step training, trained again with other options: resuming would have continued the
        // old training (or, past its max_steps, trained nothing) and reported it as the new one.
        var pairs = Pairs();
        var reference = await Reference(pairs);
        string output = Out();
        new DpoTrainer(Options(steps: 2)).Train(Policy, pairs, reference, output);

        var changed = Options(steps: 2);
        changed.LearningRate = 1e-3;
        var ex = Assert.Throws<InvalidDataException>(() => new DpoTrainer(changed).Train(Policy, pairs, reference, output));

        Assert.Contains(output, ex.Message, StringComparison.Ordinal);
        Assert.Contains("another training", ex.Message, StringComparison.Ordinal);
        // The same training again resumes its finished checkpoint and reports its metrics.
        var again = new DpoTrainer(Options(steps: 2)).Train(Policy, pairs, reference, output);
        Assert.Equal([1L, 2L], again.Metrics.Where(m => m.Name == "loss").Select(m => m.Step));
    }

    [Fact]
    public async Task Train_CancelledThenResumed_EqualsUninterruptedRun()
    {
        var pairs = Pairs();
        var reference = await Reference(pairs);
        string straight = Out(), interrupted = Out();

        var uninterrupted = new DpoTrainer(Options(steps: 6)).Train(Policy, pairs, reference, straight);
        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.Step == 3) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => new DpoTrainer(Options(steps: 6)).Train(Policy, pairs, reference, interrupted, progress, cts.Token));
        Assert.True(Directory.Exists(Path.Combine(interrupted, "checkpoint-3")));
        // The checkpoint resumed from is a model folder other tools load as it is: its resume state is in a subfolder.
        CheckpointAssert.HoldsOnlyTheModel(Path.Combine(interrupted, "checkpoint-3"));
        var resumed = new DpoTrainer(Options(steps: 6)).Train(Policy, pairs, reference, interrupted);

        Assert.EndsWith("checkpoint-3", resumed.ResumedFrom, StringComparison.Ordinal);
        using var a = CausalLM.Load(uninterrupted.FinalCheckpoint, CPU);
        using var b = CausalLM.Load(resumed.FinalCheckpoint, CPU);
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True((pa - pb).abs().max().item<float>() < 1e-6f, $"{name} differs after resume");
        // The resumed run reports every step's metrics: those before the checkpoint come from its log_history.
        Assert.Equal(uninterrupted.Metrics.Where(m => m.Name == "loss").Select(m => (m.Step, Math.Round(m.Value, 6))),
                     resumed.Metrics.Where(m => m.Name == "loss").Select(m => (m.Step, Math.Round(m.Value, 6))));
    }

    [Fact]
    public async Task Train_ResumedFromCheckpointWithStateBesideTheWeights_EqualsUninterruptedRun()
    {
        // Checkpoints written before training_state/ kept optimizer.safetensors beside the weights: they still resume exactly.
        var pairs = Pairs();
        var reference = await Reference(pairs);
        string straight = Out(), interrupted = Out();
        var uninterrupted = new DpoTrainer(Options(steps: 4)).Train(Policy, pairs, reference, straight);
        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.Step == 2) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => new DpoTrainer(Options(steps: 4)).Train(Policy, pairs, reference, interrupted, progress, cts.Token));
        string checkpoint = Path.Combine(interrupted, "checkpoint-2");
        File.Move(Path.Combine(checkpoint, Checkpoint.StateFolder, "optimizer.safetensors"), Path.Combine(checkpoint, "optimizer.safetensors"));
        Directory.Delete(Path.Combine(checkpoint, Checkpoint.StateFolder));

        var resumed = new DpoTrainer(Options(steps: 4)).Train(Policy, pairs, reference, interrupted);

        Assert.EndsWith("checkpoint-2", resumed.ResumedFrom, StringComparison.Ordinal);
        using var a = CausalLM.Load(uninterrupted.FinalCheckpoint, CPU);
        using var b = CausalLM.Load(resumed.FinalCheckpoint, CPU);
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True((pa - pb).abs().max().item<float>() < 1e-6f, $"{name} differs after resume");
    }

    [Fact]
    public async Task ReferencePass_SamePairsAndModel_IsReusedNotRecomputed()
    {
        var pairs = Pairs();
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-ref-").FullName);

        var first = await ReferencePass.ComputeOrReuseAsync(store, "ref", pairs, Policy, 8, TrainingDtype.Auto);
        var second = await ReferencePass.ComputeOrReuseAsync(store, "ref", pairs, Policy, 8, TrainingDtype.Auto);
        var fewer = await ReferencePass.ComputeOrReuseAsync(store, "ref", pairs.Take(4).ToList(), Policy, 8, TrainingDtype.Auto);

        Assert.False(first.Reused);
        Assert.True(second.Reused);
        Assert.False(fewer.Reused);
        Assert.Equal(first.Path, second.Path);
        Assert.NotEqual(first.Path, fewer.Path);
        var row = first.Rows["p0a"];
        Assert.True(row.ChosenLogps < 0 && row.ChosenTokens == pairs[0].ChosenIds.Length);
        Assert.InRange(row.Dispersion, 0.0001, 0.9999);
    }

    [Theory]
    [InlineData(1, 1.0)]   // logged every step, clipping on: the old guard skipped a NaN grad norm
    [InlineData(100, 1.0)] // not a logging step: the old guard never looked
    [InlineData(1, 0.0)]   // clipping off: the grad norm is still computed and checked
    public async Task Train_NaNGradients_StopsNamingTheStepAndSavesNoCheckpoint(int loggingSteps, double maxGradNorm)
    {
        var pairs = Pairs();
        // A NaN reference log-prob makes the loss, and through it every gradient, NaN at the first step.
        var reference = (await Reference(pairs)).ToDictionary(kv => kv.Key, kv => kv.Value with { ChosenLogps = double.NaN });
        var options = Options(steps: 3);
        options.LoggingSteps = loggingSteps;
        options.MaxGradNorm = maxGradNorm;
        options.SaveSteps = 1;
        string output = Out();

        var ex = Assert.Throws<InvalidOperationException>(() => new DpoTrainer(options).Train(Policy, pairs, reference, output));

        Assert.Contains("training diverged at step 1:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("grad_norm = NaN", ex.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output, "checkpoint-*"));
    }

    [Theory]
    [InlineData(1.0)] // clipping: ClipGradNorm's norm tensor
    [InlineData(0.0)] // no clipping: GradNorm's norm tensor
    public async Task Train_200Steps_LiveTensorCountStaysFlat(double maxGradNorm)
    {
        var pairs = Pairs();
        var reference = await Reference(pairs);
        var options = Options(steps: 200);
        options.PerDeviceTrainBatchSize = 2; // 8 batches an epoch: every batch shape recurs long before step 20
        options.LearningRate = 1e-4;
        options.MaxGradNorm = maxGradNorm;
        options.SaveSteps = 50;              // checkpoints at 50, 100 and 150 fall between the two samples
        // Step 20, not 1: whatever is made once and kept (caches, lazily built state) exists by then.
        var probe = new LiveTensorProbe(20, 200);

        new DpoTrainer(options).Train(Policy, pairs, reference, Out(), probe);

        // Between steps only the model, the optimizer's flat buffers and fixed caches are live; a step's own tensors
        // die with its dispose scope. So the count is exactly equal: one tensor kept per step would be +180.
        Assert.Equal(probe.Counts[20], probe.Counts[200]);
    }

    [Fact]
    public void Train_MissingReferenceRows_SaysWhichPairs()
    {
        var pairs = Pairs();

        var ex = Assert.Throws<InvalidDataException>(() => new DpoTrainer(Options()).Train(Policy, pairs, new Dictionary<string, ReferenceLogProbRow>(), Out()));

        Assert.Contains("p0a", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_TinyMaxShardSize_WritesShardsAndIndex_ReloadsAndResumesLikeUnshardedRun()
    {
        // 300 KB shards of the 3.2 MB demo policy: the 2 MB tied embedding gets a shard of its own, the rest is packed in
        // state-dict order without splitting a tensor.
        var pairs = Pairs();
        var reference = await Reference(pairs);
        string straight = Out(), interrupted = Out();
        var sharded = Options(steps: 4);
        sharded.MaxShardSize = "300KB";
        Assert.Equal(300_000, sharded.MaxShardBytes);

        var unsharded = new DpoTrainer(Options(steps: 4)).Train(Policy, pairs, reference, straight);
        Assert.True(File.Exists(Path.Combine(unsharded.FinalCheckpoint, "model.safetensors")));
        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress(p => { if (p.Step == 2) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => new DpoTrainer(sharded).Train(Policy, pairs, reference, interrupted, progress, cts.Token));
        string checkpoint = Path.Combine(interrupted, "checkpoint-2");
        var resumed = new DpoTrainer(sharded).Train(Policy, pairs, reference, interrupted);

        Assert.EndsWith("checkpoint-2", resumed.ResumedFrom, StringComparison.Ordinal);
        foreach (string folder in new[] { checkpoint, resumed.FinalCheckpoint })
        {
            CheckpointAssert.HoldsOnlyTheModel(folder);
            Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
            using var index = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "model.safetensors.index.json")));
            var weightMap = index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            var shards = weightMap.Values.Distinct().Order(StringComparer.Ordinal).ToList();
            Assert.True(shards.Count > 2, $"{shards.Count} shards");
            Assert.Equal(Enumerable.Range(1, shards.Count).Select(i => $"model-{i:D5}-of-{shards.Count:D5}.safetensors"), shards);
            long total = 0;
            var stored = new Dictionary<string, string>();
            foreach (string shard in shards)
            {
                using var file = PrefPipe.Models.SafeTensors.SafeTensorsFile.Open(Path.Combine(folder, shard));
                long bytes = file.Tensors.Values.Sum(t => t.End - t.Begin);
                Assert.True(bytes <= 300_000 || file.Tensors.Count == 1, $"{shard}: {bytes} bytes in {file.Tensors.Count} tensors");
                total += bytes;
                foreach (string name in file.Tensors.Keys) stored.Add(name, shard);
            }
            Assert.Equal(total, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            Assert.Equal(stored.OrderBy(kv => kv.Key, StringComparer.Ordinal), weightMap.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        }

        // Reloaded through the index: every parameter and the logits equal the unsharded run's (sharding changes files, not training).
        using var a = CausalLM.Load(unsharded.FinalCheckpoint, CPU);
        using var b = CausalLM.Load(resumed.FinalCheckpoint, CPU);
        Assert.Equal(a.named_parameters().Select(p => p.name), b.named_parameters().Select(p => p.name));
        foreach (var ((name, pa), (_, pb)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.True((pa - pb).abs().max().item<float>() < 1e-6f, $"{name} differs");
        using var _ = no_grad();
        var ids = tensor(new long[] { 1, 43, 72, 79, 379 }, new long[] { 1, 5 });
        Assert.True((a.Logits(new CausalLMInput(ids)) - b.Logits(new CausalLMInput(ids))).abs().max().item<float>() < 1e-5f);
    }

    [Theory]
    [InlineData("5GB", 5_000_000_000L)]
    [InlineData("300KB", 300_000L)]
    [InlineData("2GiB", 2_147_483_648L)]
    [InlineData("1048576", 1_048_576L)]
    [InlineData(" 10 mb ", 10_000_000L)]
    public void MaxShardSize_ParsesAsTransformersDoes(string text, long bytes)
    {
        var options = Options();
        options.MaxShardSize = text;
        options.Validate();
        Assert.Equal(bytes, options.MaxShardBytes);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("5 GBs")]
    [InlineData("-1GB")]
    [InlineData("1.5GB")]
    public void MaxShardSize_Invalid_FailsValidationNamingIt(string text)
    {
        var options = Options();
        options.MaxShardSize = text;
        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => options.Validate());
        Assert.Contains("max_shard_size", ex.Message, StringComparison.Ordinal);
    }

    private sealed class SynchronousProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
