using System.Text.Json;
using PrefPipe.Artifacts.Manifests;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Manifests;

public sealed class RunManifestTests
{
    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-manifest-").FullName);

    private async Task<RunManifest> Sample(string runId = "run-2025-01-01")
    {
        var pairs = await ParquetArtifacts.WriteAsync(_store, $"runs/{runId}/pairs.parquet", new[] { new PreferenceRow { PromptId = "p", Prompt = "x", Chosen = "a", Rejected = "b" } });
        var rejects = await ParquetArtifacts.WriteAsync(_store, $"runs/{runId}/rejects.parquet", new[] { new RejectRow { Stage = "ranking", Reason = "tie" } });
        return new RunManifest
        {
            RunId = runId, ConfigHash = new string('a', 64), CodeVersion = "1.0.0+abc", Created = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero),
            Stages =
            [
                new StageRecord
                {
                    Name = "ranking", Status = "succeeded", Started = new DateTimeOffset(2025, 1, 1, 0, 0, 1, TimeSpan.Zero), Finished = new DateTimeOffset(2025, 1, 1, 0, 1, 0, TimeSpan.Zero),
                    Outputs = [ManifestArtifact.From(pairs, PreferenceRow.SchemaVersion), ManifestArtifact.From(rejects, RejectRow.SchemaVersion)],
                    Counts = new RowAccounting { RowsIn = 2, RowsOut = 1, RowsRejected = 1, Method = "per-prompt: one pair or one reject per prompt" },
                },
            ],
        };
    }

    [Fact]
    public async Task WriteAsync_ThenReadAsync_RoundTripsWithSnakeCaseJson()
    {
        var manifest = await Sample();

        string path = await RunManifests.WriteAsync(_store, manifest);
        var back = await RunManifests.ReadAsync(_store, "run-2025-01-01");

        Assert.Equal("run-2025-01-01/manifest.json", path);
        Assert.Equivalent(manifest, back, strict: true);
        await using var stream = await _store.OpenReadAsync(path);
        using var json = await JsonDocument.ParseAsync(stream);
        var stage = json.RootElement.GetProperty("stages")[0];
        Assert.Equal(2, stage.GetProperty("counts").GetProperty("rows_in").GetInt64());
        Assert.Equal(64, stage.GetProperty("outputs")[0].GetProperty("sha256").GetString()!.Length);
        Assert.Equal(PreferenceRow.SchemaVersion, stage.GetProperty("outputs")[0].GetProperty("schema_version").GetInt32());
    }

    [Fact]
    public async Task WriteAsync_UnbalancedCounts_ThrowsNamingTheStage()
    {
        var manifest = await Sample();
        manifest = manifest with { Stages = [manifest.Stages[0] with { Counts = new RowAccounting { RowsIn = 3, RowsOut = 1, RowsRejected = 1, Method = "one-to-one" } }] };

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => RunManifests.WriteAsync(_store, manifest));

        Assert.Contains("stage ranking: rows_in 3 != rows_out 1 + rows_rejected 1", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../other")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("")]
    public async Task RunIds_ThatAreNotSafeNames_AreRefused(string runId)
    {
        Assert.Throws<ArgumentException>(() => RunManifests.PathOf(runId));
        await Assert.ThrowsAsync<ArgumentException>(() => RunManifests.ReadAsync(_store, runId));
    }

    [Fact]
    public async Task ReadAsync_MissingManifest_ThrowsFileNotFound() =>
        await Assert.ThrowsAsync<FileNotFoundException>(() => RunManifests.ReadAsync(_store, "never-ran"));
}
