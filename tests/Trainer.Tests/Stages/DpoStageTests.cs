using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Trainer.Tests.Stages;

/// <summary>The dpo unit on the demo policy: pairs in, every row accounted for, a trained model and its artifacts out.</summary>
public sealed class DpoStageTests
{
    private static readonly string Policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

    private static readonly string[] Titles = ["Driftwood", "Kite Season", "Velvet Hour", "Marble Coast"];

    private const string Praise = " The acting was gripping. I found the music brilliant. A joy to watch.";
    private const string Pan = " The pacing was tedious. Its dialogue felt flat. I hated it.";

    private static DpoTrainingOptions Options() => new()
    {
        Objective = new ObjectiveOptions { LossType = "sigmoid" },
        LearningRate = 2e-3, MaxSteps = 3, PerDeviceTrainBatchSize = 4, LoggingSteps = 1, WarmupRatio = 0, Seed = 5, MaxLength = 64, MaxPromptLength = 32,
    };

    /// <summary>
    /// Eight trainable pairs (the first two carry the ids generation used, as the data stages write them), then one pair
    /// whose chosen and rejected differ only past max_length 64: identical once cut, so it cannot train.
    /// </summary>
    private static List<PreferenceRow> Rows()
    {
        var encoder = PromptEncoder.Load(Policy);
        var rows = new List<PreferenceRow>();
        foreach (string title in Titles)
        {
            string prompt = $"Review of {title}:";
            rows.Add(new PreferenceRow { PromptId = $"{title}-a", Prompt = prompt, Chosen = Praise, Rejected = Pan });
            rows.Add(new PreferenceRow { PromptId = $"{title}-b", Prompt = prompt, Chosen = " I found the story charming. I would watch it again.", Rejected = " The ending was painful. Not recommended." });
        }
        for (int i = 0; i < 2; i++)
        {
            rows[i] = rows[i] with
            {
                PromptInputIds = [.. encoder.EncodeText(rows[i].Prompt).Ids],
                ChosenInputIds = [.. encoder.Tokenizer.Encode(rows[i].Chosen, addSpecialTokens: false), encoder.EosTokenId],
                RejectedInputIds = [.. encoder.Tokenizer.Encode(rows[i].Rejected, addSpecialTokens: false), encoder.EosTokenId],
            };
        }
        string shared = string.Concat(Enumerable.Repeat(" The acting was gripping.", 20));
        rows.Add(new PreferenceRow { PromptId = "too-long", Prompt = "Review of Orchid Line:", Chosen = shared + " Loved it.", Rejected = shared + " Hated it." });
        return rows;
    }

    private static LocalArtifactStore NewStore() => new(Directory.CreateTempSubdirectory("prefpipe-dpo-stage-").FullName);

    private static string NewWorkDirectory() => Directory.CreateTempSubdirectory("prefpipe-dpo-work-").FullName;

    private static async Task<StoreFile> WritePairs(IEnumerable<PreferenceRow> rows)
    {
        var input = NewStore();
        await ParquetArtifacts.WriteAsync(input, "pairs.parquet", rows);
        return new StoreFile(input, "pairs.parquet");
    }

    private static Task<DpoStageResult> Run(StoreFile pairs, IArtifactStore store, string prefix, string work) =>
        new DpoStage(Options()).RunAsync(pairs, Policy, Policy, new PromptFormat(), store, prefix, work);

    private static string FileSha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public async Task RunAsync_PreferenceArtifact_EveryRowTrainedOrRejectedAndThePolicyTrained()
    {
        var pairs = await WritePairs(Rows());
        var store = NewStore();

        string work = NewWorkDirectory();
        var result = await Run(pairs, store, "dpo", work);

        Assert.Equal(9, result.RowsIn);
        Assert.Equal(8, result.Trained);
        Assert.Equal(result.RowsIn, result.Trained + result.Rejects.Rows);
        var reject = Assert.Single(await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "dpo/rejects.parquet"));
        Assert.Equal((DpoStage.Name, pairs.Uri, 8L, "too-long"), (reject.Stage, reject.Source, reject.Row, reject.Key));
        Assert.Contains("identical after truncation to max_length 64", reject.Reason, StringComparison.Ordinal);

        var metrics = await ParquetArtifacts.ReadAllAsync<MetricRow>(store, "dpo/metrics.parquet");
        Assert.Equal([1L, 2L, 3L], metrics.Where(m => m.Name == "loss").Select(m => m.Step));
        Assert.All(metrics, m => Assert.Equal(DpoStage.Name, m.Stage));
        Assert.Equal(3, result.Steps);
        // TensorBoard: every logged metric under TRL's train/ names, the values metrics.parquet holds (as float32).
        var events = Logging.TfEventReader.Read(Assert.Single(Directory.GetFiles(Path.Combine(work, "tensorboard"))));
        Assert.Equal(metrics.Select(m => (m.Step, "train/" + m.Name, (float)m.Value)), events.Scalars.Select(e => (e.Step, e.Tag, e.Value)));
        Assert.Contains(events.Scalars, e => e.Tag == "train/loss");
        Assert.Contains(events.Scalars, e => e.Tag == "train/rewards/chosen");

        Assert.Equal(TrainedModel.Of(result.Model.Directory).Sha256, result.Model.Sha256);
        Assert.NotEqual(TrainedModel.Of(Policy).Sha256, result.Model.Sha256);
        // The hash also covers the checkpoint's optimizer state: check the weights themselves moved.
        Assert.NotEqual(FileSha256(Path.Combine(Policy, "model.safetensors")), FileSha256(Path.Combine(result.Model.Directory, "model.safetensors")));
        Assert.Null(result.Model.Uri); // a local store: the checkpoint is the work folder's, nothing uploaded

        Assert.StartsWith("dpo/reference_logps-", result.ReferencePath, StringComparison.Ordinal);
        Assert.True(await store.ExistsAsync(result.ReferencePath));
        Assert.False(result.ReferenceReused);
        Assert.Equal(8, (await ParquetArtifacts.ReadAllAsync<ReferenceLogProbRow>(store, result.ReferencePath)).Count);
    }

    [Fact]
    public async Task RunAsync_SamePairsAgain_ReusesTheStoredReferenceLogProbs()
    {
        var pairs = await WritePairs(Rows());
        var store = NewStore();

        var first = await Run(pairs, store, "dpo", NewWorkDirectory());
        var second = await Run(pairs, store, "dpo", NewWorkDirectory());

        Assert.False(first.ReferenceReused);
        Assert.True(second.ReferenceReused);
        Assert.Equal(first.ReferencePath, second.ReferencePath);
        // Same pairs, options and seed from scratch: the same training, so the same weights.
        Assert.Equal(FileSha256(Path.Combine(first.Model.Directory, "model.safetensors")), FileSha256(Path.Combine(second.Model.Directory, "model.safetensors")));
    }

    [Fact]
    public async Task RunAsync_EmptyPrefix_WritesAtTheStoreRoot()
    {
        var pairs = await WritePairs(Rows());
        var store = NewStore();

        var result = await Run(pairs, store, "", NewWorkDirectory());

        var files = new List<string>();
        await foreach (string path in store.ListAsync("")) files.Add(path);
        Assert.Contains("rejects.parquet", files);
        Assert.Contains("metrics.parquet", files);
        Assert.Contains(result.ReferencePath, files);
        Assert.Matches("^reference_logps-[0-9a-f]{16}\\.parquet$", result.ReferencePath);
        Assert.Equal("rejects.parquet", result.Rejects.Path);
        Assert.Equal("metrics.parquet", result.Metrics.Path);
    }

    [Fact]
    public async Task EncodeAsync_RowsCarryingGenerationIds_TrainsOnThoseIds()
    {
        // Ids that text encoding would never give (the prompt has no BOS): only the stored ones can come out.
        int[] promptIds = [40, 41, 42], chosenIds = [50, 51], rejectedIds = [60, 61, 62];
        var encoder = PromptEncoder.Load(Policy);
        var pairs = await WritePairs([new PreferenceRow { PromptId = "ids", Prompt = "Review of Driftwood:", Chosen = Praise, Rejected = Pan, PromptInputIds = [.. promptIds], ChosenInputIds = [.. chosenIds], RejectedInputIds = [.. rejectedIds] }]);

        var encoded = await new DpoStage(Options()).EncodeAsync(pairs, encoder);

        var pair = Assert.Single(encoded.Pairs);
        Assert.Equal(promptIds, pair.PromptIds);
        Assert.Equal([.. chosenIds, encoder.EosTokenId], pair.ChosenIds);
        Assert.Equal([.. rejectedIds, encoder.EosTokenId], pair.RejectedIds);
    }

    [Fact]
    public async Task EncodeAsync_ConversationalPairsOnTemplatedPolicy_PromptIsTheTemplatedConversationWithOneBos()
    {
        string policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "templated-bos-policy");
        Assert.True(File.Exists(Path.Combine(policy, "model.safetensors")), "the test project links the demo weights into templated-bos-policy");
        var file = new StoreFile(new LocalArtifactStore(Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets")), "conversational_preference.parquet");
        var encoder = PromptEncoder.Load(policy);
        var options = Options();
        options.MaxLength = 4096;
        options.MaxPromptLength = 2048;

        var encoded = await new DpoStage(options).EncodeAsync(file, encoder);

        var expected = new Dictionary<string, IReadOnlyList<int>>(StringComparer.Ordinal);
        await foreach (var input in PreferenceSource.ReadAsync(file.Store, file.Path))
            expected[input.Pair!.PromptId] = PromptEncoder.Load(policy).Encode([.. input.Pair.PromptMessages!.Select(t => new Turn(t.Role, t.Content))]).Ids;
        Assert.Equal(2, encoded.RowsIn);
        Assert.Empty(encoded.Rejects);
        Assert.Equal(expected.Keys, encoded.Pairs.Select(p => p.Key));
        Assert.All(encoded.Pairs, p =>
        {
            Assert.Equal(expected[p.Key], p.PromptIds);
            Assert.Single(p.PromptIds.TakeWhile(i => i == encoder.Tokenizer.BosTokenId));
        });
    }

    [Fact]
    public async Task RunAsync_EveryRowRejected_ThrowsNamingTheFileAndStillWritesRejects()
    {
        var pairs = await WritePairs(Rows().Select(r => r with { Rejected = r.Chosen, RejectedInputIds = r.ChosenInputIds }));
        var store = NewStore();

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => Run(pairs, store, "dpo", NewWorkDirectory()));

        Assert.Contains(pairs.Uri, ex.Message, StringComparison.Ordinal);
        Assert.Contains("no trainable pairs (9 of 9 rejected", ex.Message, StringComparison.Ordinal);
        var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "dpo/rejects.parquet");
        Assert.Equal(Enumerable.Range(0, 9).Select(i => (long)i), rejects.Select(r => r.Row));
        Assert.All(rejects, r => Assert.Contains("chosen and rejected are identical", r.Reason, StringComparison.Ordinal));
        Assert.False(await store.ExistsAsync("dpo/metrics.parquet"));
    }

    [Fact]
    public void Constructor_NegativeLearningRate_RefusedNamingTheOption()
    {
        var options = Options();
        options.LearningRate = -1e-4;

        var ex = Assert.Throws<OptionsValidationException>(() => new DpoStage(options));

        Assert.Contains(ex.Failures, f => f.Contains("LearningRate", StringComparison.Ordinal));
    }

    [Fact]
    public void Constructor_PromptLimitAboveMaxLength_RefusedNamingBothOptions()
    {
        var options = Options();
        options.MaxPromptLength = 128;

        var ex = Assert.Throws<OptionsValidationException>(() => new DpoStage(options));

        Assert.Contains(ex.Failures, f => f.Contains("max_prompt_length (128) must be less than max_length (64)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ClearAsync_WorkFolderWithCheckpoints_RemovesThemAndKeepsTheRest()
    {
        var store = NewStore();
        string work = NewWorkDirectory();
        foreach (string name in new[] { "checkpoint-1", "checkpoint-2", "checkpoint-3.partial" })
        {
            Directory.CreateDirectory(Path.Combine(work, name));
            await File.WriteAllTextAsync(Path.Combine(work, name, "trainer_state.json"), "{}");
        }
        await File.WriteAllTextAsync(Path.Combine(work, "loss.png"), "png");
        Directory.CreateDirectory(Path.Combine(work, "notes"));
        Directory.CreateDirectory(Path.Combine(work, "tensorboard"));
        await File.WriteAllTextAsync(Path.Combine(work, "tensorboard", "events.out.tfevents.1.host.1.1"), "");
        Assert.Equal(Path.Combine(work, "checkpoint-2"), await TrainedModel.LatestAsync(store, "dpo", work));

        await DpoStage.ClearAsync(store, "dpo", work);

        Assert.Empty(Directory.EnumerateDirectories(work, "checkpoint-*"));
        Assert.False(Directory.Exists(Path.Combine(work, "tensorboard"))); // a fresh attempt draws its curves from step 1
        Assert.True(File.Exists(Path.Combine(work, "loss.png")));
        Assert.True(Directory.Exists(Path.Combine(work, "notes")));
        Assert.Null(await TrainedModel.LatestAsync(store, "dpo", work));
    }

    [Fact]
    public async Task ClearAsync_NoWorkFolderYet_DoesNothing()
    {
        string work = Path.Combine(Path.GetTempPath(), $"prefpipe-dpo-absent-{Guid.NewGuid():N}");

        await DpoStage.ClearAsync(NewStore(), "dpo", work);

        Assert.False(Directory.Exists(work));
    }

    [Fact]
    public async Task EncodeAsync_RowWithoutIdNamedLikeAnotherRow_IsRejectedNotACrash()
    {
        // A row without prompt_id is named row-N; here row 1 carries the id row-1 and row 0 has none.
        var rows = Rows().Take(3).ToList();
        rows[0] = rows[0] with { PromptId = "" };
        rows[1] = rows[1] with { PromptId = "row-0" };

        var encoded = await new DpoStage(Options()).EncodeAsync(await WritePairs(rows), PromptEncoder.Load(Policy));

        Assert.Equal(3, encoded.RowsIn);
        Assert.Equal(["row-0", rows[2].PromptId], encoded.Pairs.Select(p => p.Key));
        var reject = Assert.Single(encoded.Rejects);
        Assert.Equal(1, reject.Row);
        Assert.Contains("prompt_id 'row-0' is used by an earlier row", reject.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainedModelOf_CheckpointWithOptimizerAndValueModel_HashesThePolicyWeightsOnly()
    {
        string checkpoint = NewWorkDirectory();
        File.Copy(Path.Combine(Policy, "model.safetensors"), Path.Combine(checkpoint, "model.safetensors"));
        Directory.CreateDirectory(Path.Combine(checkpoint, Checkpoint.StateFolder));
        File.WriteAllBytes(Path.Combine(checkpoint, Checkpoint.StateFolder, "optimizer.safetensors"), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(checkpoint, Checkpoint.StateFolder, "extra.safetensors"), [4, 5, 6]);
        // A checkpoint written before the state had its subfolder kept it beside the weights.
        File.WriteAllBytes(Path.Combine(checkpoint, "optimizer.safetensors"), [7, 8, 9]);
        File.WriteAllBytes(Path.Combine(checkpoint, "extra.safetensors"), [10, 11, 12]);

        Assert.Equal(TrainedModel.Of(Policy).Sha256, TrainedModel.Of(checkpoint).Sha256);
        Assert.Equal(FileSha256(Path.Combine(Policy, "model.safetensors")), TrainedModel.Of(checkpoint).Sha256);
    }
}
