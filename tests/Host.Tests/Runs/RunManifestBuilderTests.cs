using PrefPipe.Artifacts;
using RunManifests = PrefPipe.Artifacts.Manifests.RunManifests;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

public sealed class RunManifestBuilderTests
{
    private static StageRecord Completed(PipelineStage name, ArtifactRecord output) =>
        new() { Name = name, Status = StageStatus.Completed, RowsIn = 1, RowsOut = 1, Outputs = [output] };

    [Fact]
    public async Task SaveAsync_RowAndModelOutputs_ManifestListsEachRowTypesSchemaVersion()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-manifest-").FullName;
        var store = new LocalArtifactStore(root);
        var candidates = await ParquetArtifacts.WriteAsync(store, "r1/ingest/candidates.parquet", [new CandidateRow { PromptId = "p" }]);
        var preferences = await ParquetArtifacts.WriteAsync(store, "r1/rank/preferences.parquet", [new PreferenceRow { PromptId = "p" }]);
        string model = Directory.CreateDirectory(Path.Combine(root, "model")).FullName;
        await File.WriteAllBytesAsync(Path.Combine(model, "model.safetensors"), [1, 2, 3]);
        var run = new RunRecord
        {
            RunId = "r1", Plan = PrefPipe.Host.Pipelines.TrainingPlan.Dpo,
            Stages =
            [
                Completed(PipelineStage.Ingest, ArtifactRecord.From("candidates", candidates)),
                Completed(PipelineStage.Rank, ArtifactRecord.From("preferences", preferences)),
                Completed(PipelineStage.Dpo, ArtifactRecord.Of("model", PrefPipe.Trainer.Stages.TrainedModel.Of(model))),
            ],
        };

        await run.SaveAsync(store, CancellationToken.None);
        var manifest = await RunManifests.ReadAsync(store, "r1");
        var saved = await RunRecord.LoadAsync(store, "r1", CancellationToken.None);

        Assert.Equal(CandidateRow.SchemaVersion, manifest.Stages[0].Outputs.Single().SchemaVersion);
        Assert.Equal(CandidateRow.SchemaVersion, manifest.Stages[1].Inputs.Single().SchemaVersion);
        Assert.Equal(PreferenceRow.SchemaVersion, manifest.Stages[1].Outputs.Single().SchemaVersion);
        Assert.Equal(PreferenceRow.SchemaVersion, manifest.Stages[2].Inputs.Single().SchemaVersion);
        Assert.Equal(0, manifest.Stages[2].Outputs.Single().SchemaVersion); // a model is not a row artifact
        // run.json keeps it, so resume and rerun rebuild the same manifest.
        Assert.Equal(CandidateRow.SchemaVersion, saved!.Stage(PipelineStage.Ingest).Outputs.Single().SchemaVersion);
    }

    [Fact]
    public async Task SaveAsync_MpoPlan_EachStagesInputsFollowTheStageTable()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-manifest-").FullName;
        var store = new LocalArtifactStore(root);
        async Task<ArtifactRecord> Write(PipelineStage stage, string name) =>
            ArtifactRecord.From(name, await ParquetArtifacts.WriteAsync(store, $"r2/{stage.Name()}/{name}.parquet", [new PreferenceRow { PromptId = "p" }]));
        string evalFile = Path.Combine(root, "eval.jsonl");
        await File.WriteAllTextAsync(evalFile, "{\"prompt\":\"x\"}\n");
        var easy = await Write(PipelineStage.Split, "easy");
        var difficult = await Write(PipelineStage.Split, "difficult");
        var trained = new ArtifactRecord("model", Path.Combine(root, "train-model"), 0, new string('a', 64));
        var final = new ArtifactRecord("model", Path.Combine(root, "ppo-model"), 0, new string('b', 64));
        var run = new RunRecord
        {
            RunId = "r2", Plan = PrefPipe.Host.Pipelines.TrainingPlan.Mpo,
            Stages =
            [
                new StageRecord { Name = PipelineStage.Ingest }, new StageRecord { Name = PipelineStage.Rank },
                new StageRecord { Name = PipelineStage.Split, Status = StageStatus.Completed, RowsIn = 2, RowsOut = 2, Outputs = [easy, difficult] },
                new StageRecord { Name = PipelineStage.Dpo, Status = StageStatus.Completed, RowsIn = 1, RowsOut = 1, Outputs = [trained] },
                new StageRecord { Name = PipelineStage.Ppo, Status = StageStatus.Completed, RowsIn = 1, RowsOut = 1, Outputs = [final] },
                new StageRecord { Name = PipelineStage.Evaluate, Status = StageStatus.Completed, RowsIn = 1, RowsOut = 1, Inputs = [evalFile] },
            ],
        };

        await run.SaveAsync(store, CancellationToken.None);
        var manifest = await RunManifests.ReadAsync(store, "r2");

        Assert.Equal([easy.Uri], manifest.Stages[3].Inputs.Select(i => i.Uri));
        Assert.Equal([difficult.Uri, trained.Uri], manifest.Stages[4].Inputs.Select(i => i.Uri));
        Assert.Equal([evalFile, final.Uri], manifest.Stages[5].Inputs.Select(i => i.Uri));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(evalFile))), manifest.Stages[5].Inputs[0].Sha256);
    }
}
