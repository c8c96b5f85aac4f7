using System.Security.Cryptography;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Trainer.Ppo;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Trainer.Tests.Stages;

/// <summary>The ppo unit on the demo policy and reward model: a prompt file in, rejects, metrics and a trained model out.</summary>
public sealed class PpoStageTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Policy = Path.Combine(Demo, "policy");
    private static readonly string Reward = Path.Combine(Demo, "reward");

    private static PpoOptions Options() => new()
    {
        MaxSteps = 2, LearningRate = 3e-4, RolloutBatchSize = 4, NumPpoEpochs = 1, KlCoef = 0.05, ResponseLength = 8, Temperature = 1.0, Seed = 3,
    };

    private static LocalArtifactStore NewStore() => new(Directory.CreateTempSubdirectory("prefpipe-ppo-stage-").FullName);

    private static string FileSha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public async Task RunAsync_PromptFileWithABlankPrompt_RejectsThatRowAndTrainsOnTheRest()
    {
        // Eight demo prompts with a whitespace-only prompt as row 3.
        var lines = File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(8).ToList();
        lines.Insert(3, """{"id": "blank", "prompt": "   "}""");
        var input = NewStore();
        await File.WriteAllLinesAsync(input.UriOf("prompts.jsonl"), lines);
        var store = NewStore();
        string work = Directory.CreateTempSubdirectory("prefpipe-ppo-work-").FullName;

        var result = await new PpoStage(Options()).RunAsync(new StoreFile(input, "prompts.jsonl"), Policy, Policy, Reward, new PromptFormat(), Policy, store, "ppo", work);

        Assert.Equal(9, result.RowsIn);
        Assert.Equal(8, result.Prompts);
        Assert.Equal(result.RowsIn, result.Prompts + result.Rejects.Rows);
        var reject = Assert.Single(await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "ppo/rejects.parquet"));
        Assert.Equal((PpoStage.Name, input.UriOf("prompts.jsonl"), 3L, "blank"), (reject.Stage, reject.Source, reject.Row, reject.Key));
        Assert.Contains("line 4", reject.Reason, StringComparison.Ordinal);
        Assert.Contains("empty", reject.Reason, StringComparison.Ordinal);

        var metrics = await ParquetArtifacts.ReadAllAsync<MetricRow>(store, "ppo/metrics.parquet");
        Assert.Equal(2, result.Steps);
        Assert.Equal([1L, 2L], metrics.Where(m => m.Name == "objective/kl").Select(m => m.Step));
        // The first rollout comes from the untrained policy, which is the reference: nothing to penalise yet.
        Assert.Equal(0, metrics.Single(m => m.Step == 1 && m.Name == "objective/kl").Value, 5);
        Assert.All(metrics, m => Assert.True(double.IsFinite(m.Value), $"{m.Name} at {m.Step} is {m.Value}"));
        var events = Logging.TfEventReader.Read(Assert.Single(Directory.GetFiles(Path.Combine(work, "tensorboard"))));
        Assert.Equal(metrics.Select(m => (m.Step, "train/" + m.Name, (float)m.Value)), events.Scalars.Select(e => (e.Step, e.Tag, e.Value)));
        Assert.Contains(events.Scalars, e => e.Tag == "train/objective/kl");

        Assert.Equal(TrainedModel.Of(result.Model.Directory).Sha256, result.Model.Sha256);
        Assert.NotEqual(TrainedModel.Of(Policy).Sha256, result.Model.Sha256);
        Assert.NotEqual(FileSha256(Path.Combine(Policy, "model.safetensors")), FileSha256(Path.Combine(result.Model.Directory, "model.safetensors")));
    }

    [Fact]
    public async Task RunAsync_NoUsablePrompt_ThrowsNamingTheFileAndStillWritesRejects()
    {
        var input = NewStore();
        await File.WriteAllLinesAsync(input.UriOf("prompts.jsonl"), ["""{"prompt": ""}""", "not json"]);
        var store = NewStore();

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => new PpoStage(Options()).RunAsync(new StoreFile(input, "prompts.jsonl"), Policy, Policy, Reward,
            new PromptFormat(), Policy, store, "ppo", Directory.CreateTempSubdirectory("prefpipe-ppo-work-").FullName));

        Assert.Contains(input.UriOf("prompts.jsonl"), ex.Message, StringComparison.Ordinal);
        Assert.Equal([0L, 1L], (await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "ppo/rejects.parquet")).Select(r => r.Row));
    }

    [Fact]
    public async Task ClearAsync_WorkFolderWithCheckpoints_RemovesThemAndKeepsTheRest()
    {
        string work = Directory.CreateTempSubdirectory("prefpipe-ppo-work-").FullName;
        Directory.CreateDirectory(Path.Combine(work, "checkpoint-4"));
        await File.WriteAllTextAsync(Path.Combine(work, "reward_kl.png"), "png");

        await PpoStage.ClearAsync(NewStore(), "ppo", work);

        Assert.False(Directory.Exists(Path.Combine(work, "checkpoint-4")));
        Assert.True(File.Exists(Path.Combine(work, "reward_kl.png")));
    }

    [Fact]
    public void Constructor_NegativeLearningRate_RefusedBeforeAnyWork()
    {
        var options = Options();
        options.LearningRate = -1;

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => new PpoStage(options));

        Assert.Contains(ex.Failures, f => f.Contains("LearningRate", StringComparison.Ordinal));
    }
}
