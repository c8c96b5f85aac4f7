using System.Text.Json;
using Azure.Storage.Sas;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Artifacts.Tests.Storage;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

/// <summary><c>prefpipe ingest | rank | split</c> with blob URIs in and out, against Azurite (started by the fixture).</summary>
[Collection(AzuriteCollection.Name)]
public sealed class StageCommandsBlobTests(AzuriteFixture azurite)
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    [Fact]
    public async Task IngestRankSplit_BlobUris_WritesEveryArtifactToTheContainer()
    {
        var container = azurite.Container("stages");
        await container.CreateIfNotExistsAsync();
        string sas = container.GenerateSasUri(BlobContainerSasPermissions.All, DateTimeOffset.UtcNow.AddHours(1)).Query;
        string Url(string path) => $"http://127.0.0.1:{azurite.Port}/devstoreaccount1/stages/{path}{sas}";
        // The prompts come from the container too.
        string local = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-blob-in-").FullName, "prompts.jsonl");
        File.WriteAllLines(local, File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Skip(20).Take(6));
        await container.GetBlobClient("inputs/prompts.jsonl").UploadAsync(local, overwrite: true);

        var ingest = await StageCommandsTests.RunJson("ingest", "--prompts", Url("inputs/prompts.jsonl"), "--model", Path.Combine(Demo, "policy"), "--output", Url("runs/r1/ingest"),
            "--candidates", "3", "--max-new-tokens", "16", "--seed", "5");
        var rank = await StageCommandsTests.RunJson("rank", "--candidates", Url("runs/r1/ingest/candidates.parquet"), "--reward-model", Path.Combine(Demo, "reward"), "--output", Url("runs/r1/rank"));
        var split = await StageCommandsTests.RunJson("split", "--preferences", Url("runs/r1/rank/preferences.parquet"), "--output", Url("runs/r1/split"), "--rule", "threshold", "--threshold", "0.5");

        long prompts = ingest.GetProperty("artifacts").GetProperty("prompts").GetProperty("rows").GetInt64();
        Assert.Equal(6, prompts + ingest.GetProperty("artifacts").GetProperty("rejects").GetProperty("rows").GetInt64());
        Assert.Equal(prompts, rank.GetProperty("rows_in").GetInt64());
        long pairs = rank.GetProperty("artifacts").GetProperty("preferences").GetProperty("rows").GetInt64();
        Assert.Equal(pairs, split.GetProperty("rows_in").GetInt64());
        // URIs in the output name the blobs and never carry the SAS.
        string easyUri = split.GetProperty("artifacts").GetProperty("easy").GetProperty("uri").GetString()!;
        Assert.Equal($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/stages/runs/r1/split/easy.parquet", easyUri);
        Assert.DoesNotContain("sig=", split.GetRawText(), StringComparison.Ordinal);
        foreach (string blob in new[] { "runs/r1/ingest/candidates.parquet", "runs/r1/rank/preferences.parquet", "runs/r1/split/easy.parquet", "runs/r1/split/report.json" })
            Assert.True(await container.GetBlobClient(blob).ExistsAsync(), $"{blob} missing");
        var (store, path) = ArtifactStores.OpenFile(Url("runs/r1/split/difficult.parquet"));
        var difficult = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, path);
        Assert.Equal(split.GetProperty("artifacts").GetProperty("difficult").GetProperty("rows").GetInt64(), difficult.Count);
    }
}
