using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Trainer.Evaluation;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Trainer.Tests.Stages;

/// <summary>The evaluate unit on the demo policy and reward model.</summary>
public sealed class EvaluateStageTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Policy = Path.Combine(Demo, "policy");
    private static readonly string Reward = Path.Combine(Demo, "reward");

    private static LocalArtifactStore NewStore() => new(Directory.CreateTempSubdirectory("prefpipe-eval-stage-").FullName);

    [Fact]
    public async Task RunAsync_FinalPolicyIsTheStart_WinRateOneHalfAndNoKl()
    {
        var input = NewStore();
        await File.WriteAllLinesAsync(input.UriOf("eval.jsonl"), File.ReadLines(Path.Combine(Demo, "eval_prompts.jsonl")).Take(3));
        var store = NewStore();
        var options = new EvaluationOptions { SamplesPerPrompt = 2, MaxNewTokens = 8, Temperature = 1.0, Seed = 11 };

        var result = await new EvaluateStage(options).RunAsync(new StoreFile(input, "eval.jsonl"), Policy, Policy, Reward, new PromptFormat(), store, "evaluate");

        // Same weights, same seeds: every pair of samples ties, and ties count ½.
        Assert.Equal(0.5, result.Summary.WinRate);
        Assert.Equal(0, result.Summary.MeanKl, 4);
        Assert.Equal(result.Summary.MeanRewardStart, result.Summary.MeanRewardFinal);
        Assert.Equal((3L, 3, 6), (result.RowsIn, result.Prompts, result.Summary.Samples));
        Assert.Equal(0, result.Rejects.Rows);

        var samples = await ParquetArtifacts.ReadAllAsync<EvaluationRow>(store, "evaluate/samples.parquet");
        Assert.Equal(12, result.Samples.Rows);
        // Rows are named by position, not by the file's id column (sample seeds derive from the name).
        Assert.Equal(["eval-0", "eval-1", "eval-2"], samples.Select(s => s.PromptId).Distinct());
        Assert.All(samples.GroupBy(s => s.PromptId), g =>
            Assert.Equal([("final", 0), ("final", 1), ("start", 0), ("start", 1)], g.Select(s => (s.Policy, s.SampleIndex)).Order()));
        Assert.All(samples.Where(s => s.Policy == "start"), s => Assert.Equal(0, s.Kl));
        // Sample i of a prompt is drawn with the same seed from both policies: the same responses.
        Assert.Equal(samples.Where(s => s.Policy == "start").Select(s => (s.PromptId, s.SampleIndex, s.Response)),
                     samples.Where(s => s.Policy == "final").Select(s => (s.PromptId, s.SampleIndex, s.Response)));

        Assert.True(await store.ExistsAsync("evaluate/reward_distributions.png"));
        await using var png = await store.OpenReadAsync("evaluate/reward_distributions.png");
        var signature = new byte[8];
        await png.ReadExactlyAsync(signature);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, signature);
    }
}
