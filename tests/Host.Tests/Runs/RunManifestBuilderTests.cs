using PrefPipe.Artifacts;
using RunManifests = PrefPipe.Artifacts.Manifests.RunManifests;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;
using StageNames = PrefPipe.Host.Runs.Stages; // PrefPipe.Host.Tests.Stages would hide the plain name

namespace PrefPipe.Host.Tests.Runs;

public sealed class RunManifestBuilderTests
{
    private static StageRecord Completed(string name, ArtifactRecord output) =>
        new() { Name = name, Status = "completed", RowsIn = 1, RowsOut = 1, Outputs = [output] };

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
            RunId = "r1", Plan = "dpo", ManifestInputs = (null, null),
            Stages =
            [
                Completed(StageNames.Ingest, ArtifactRecord.From("candidates", candidates)),
                Completed(StageNames.Rank, ArtifactRecord.From("preferences", preferences)),
                Completed(StageNames.Train, ArtifactRecord.Model("model", model)),
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
        Assert.Equal(CandidateRow.SchemaVersion, saved!.Stage(StageNames.Ingest).Outputs.Single().SchemaVersion);
    }
}
