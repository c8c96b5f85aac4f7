using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

/// <summary><c>prefpipe ingest | rank | split</c> through the CLI entry, on a slice of the demo assets.</summary>
public sealed class StageCommandsTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static string Dataset(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", name);

    /// <summary>The first <paramref name="take"/> demo prompts plus one blank prompt (a reject).</summary>
    private static string PromptSlice(string folder, int take)
    {
        string path = Path.Combine(folder, "prompts.jsonl");
        File.WriteAllLines(path, File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(take).Append("{\"prompt\": \"   \"}"));
        return path;
    }

    /// <summary>Runs a stage command with --json; fails the test with its standard error unless it exits 0.</summary>
    internal static async Task<JsonElement> RunJson(params string[] args)
    {
        var console = new TestConsole().Width(200);
        await using var error = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync([.. args, "--json"], console);
        Assert.True(exit == 0, $"exit {exit}: {error}");
        return JsonDocument.Parse(console.Output).RootElement.Clone();
    }

    private static async Task<(int Exit, string Error)> RunFailing(params string[] args)
    {
        await using var error = await StderrCapture.StartAsync();
        return (await Cli.InvokeAsync(args, new TestConsole()), error.ToString());
    }

    private static long Rows(JsonElement json, string artifact) => json.GetProperty("artifacts").GetProperty(artifact).GetProperty("rows").GetInt64();

    private static string Sha(JsonElement json, string artifact) => json.GetProperty("artifacts").GetProperty(artifact).GetProperty("sha256").GetString()!;

    private static async Task<(JsonElement Ingest, JsonElement Rank, JsonElement Split)> Chain(string root, string prompts)
    {
        var ingest = await RunJson("ingest", "--prompts", prompts, "--model", Path.Combine(Demo, "policy"), "--output", Path.Combine(root, "ingest"),
            "--candidates", "4", "--max-new-tokens", "24", "--seed", "11", "--batch-size", "4");
        var rank = await RunJson("rank", "--candidates", Path.Combine(root, "ingest", "candidates.parquet"), "--reward-model", Path.Combine(Demo, "reward"),
            "--output", Path.Combine(root, "rank"));
        var split = await RunJson("split", "--preferences", Path.Combine(root, "rank", "preferences.parquet"), "--output", Path.Combine(root, "split"),
            "--rule", "quantile", "--quantile", "0.5", "--negative-gaps", "drop");
        return (ingest, rank, split);
    }

    [Fact]
    public async Task IngestRankSplit_DemoSlice_CountsAddUpAcrossStages()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-stages-").FullName;

        var (ingest, rank, split) = await Chain(root, PromptSlice(root, 10));

        // The demo prompts repeat (duplicates are rejected) and the blank line is rejected: rows in = prompts + rejects.
        Assert.Equal(11, ingest.GetProperty("rows_in").GetInt64());
        long prompts = Rows(ingest, "prompts");
        Assert.Equal(11, prompts + Rows(ingest, "rejects"));
        Assert.InRange(Rows(ingest, "rejects"), 2, 5);
        Assert.Equal(prompts * 4, Rows(ingest, "candidates"));
        Assert.Equal(0, ingest.GetProperty("resumed_batches").GetInt64());
        // Rank reads what ingest wrote: every prompt is paired or unpaired, every candidate scored.
        Assert.Equal(prompts, rank.GetProperty("rows_in").GetInt64());
        Assert.Equal(prompts * 4, Rows(rank, "scored"));
        Assert.Equal(prompts, Rows(rank, "preferences") + Rows(rank, "unpaired"));
        Assert.Equal(rank.GetProperty("judge_calls").GetInt64(), Rows(rank, "comparisons"));
        // Split: every pair lands once; the quantile rule puts half (rounded) of the non-dropped pairs in easy.
        Assert.Equal(Rows(rank, "preferences"), split.GetProperty("rows_in").GetInt64());
        Assert.Equal(Rows(rank, "preferences"), Rows(split, "easy") + Rows(split, "difficult") + Rows(split, "dropped"));
        Assert.True(Rows(split, "easy") > 0);
        // The artifacts are where the JSON says, and readable as the stages' rows.
        var pairs = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(new LocalArtifactStore(Path.Combine(root, "split")), "easy.parquet");
        Assert.Equal(Rows(split, "easy"), pairs.Count);
        Assert.All(pairs, p => Assert.True(p.RewardGap > 0 && p.ScoreChosen > p.ScoreRejected));
        Assert.True(File.Exists(Path.Combine(root, "split", "report.json")));
    }

    [Fact]
    public async Task IngestRankSplit_RerunInAnotherFolder_ProducesIdenticalArtifacts()
    {
        string first = Directory.CreateTempSubdirectory("prefpipe-stages-a-").FullName;
        string second = Directory.CreateTempSubdirectory("prefpipe-stages-b-").FullName;
        // The same prompts file for both runs: the rejects artifact records its location.
        string prompts = PromptSlice(Directory.CreateTempSubdirectory("prefpipe-stages-in-").FullName, 6);

        var a = await Chain(first, prompts);
        var b = await Chain(second, prompts);

        foreach (string artifact in new[] { "prompts", "rejects", "candidates" }) Assert.Equal(Sha(a.Ingest, artifact), Sha(b.Ingest, artifact));
        foreach (string artifact in new[] { "scored", "preferences", "unpaired" }) Assert.Equal(Sha(a.Rank, artifact), Sha(b.Rank, artifact));
        foreach (string artifact in new[] { "easy", "difficult", "dropped" }) Assert.Equal(Sha(a.Split, artifact), Sha(b.Split, artifact));
        // And the hashes are those of the bytes on disk.
        using var stream = File.OpenRead(Path.Combine(second, "ingest", "candidates.parquet"));
        Assert.Equal(Sha(a.Ingest, "candidates"), Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream)));
    }

    [Fact]
    public async Task Rank_InputWithoutCandidateColumns_ExitsTwoNamingFileAndColumns()
    {
        string output = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-stages-bad-").FullName, "rank");

        var (exit, error) = await RunFailing("rank", "--candidates", Dataset("standard_preference.parquet"), "--reward-model", Path.Combine(Demo, "reward"), "--output", output);

        Assert.Equal(2, exit);
        Assert.Contains("standard_preference.parquet", error, StringComparison.Ordinal);
        Assert.Contains("no 'candidate_index' column", error, StringComparison.Ordinal);
        Assert.Contains("no 'response' column", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Ingest_NotParquetOrJsonl_ExitsTwoNamingFile()
    {
        string folder = Directory.CreateTempSubdirectory("prefpipe-stages-bad-").FullName;
        string bad = Path.Combine(folder, "prompts.parquet");
        await File.WriteAllTextAsync(bad, "this is not a parquet file, it is long enough to have a footer-sized tail");

        var (exit, error) = await RunFailing("ingest", "--prompts", bad, "--model", Path.Combine(Demo, "policy"), "--output", Path.Combine(folder, "out"));

        Assert.Equal(2, exit);
        Assert.Contains(bad, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Split_MissingFile_ExitsTwoNamingIt()
    {
        var (exit, error) = await RunFailing("split", "--preferences", "/nonexistent-prefpipe/preferences.parquet", "--output", Path.GetTempPath() + "prefpipe-never");

        Assert.Equal(2, exit);
        Assert.Contains("/nonexistent-prefpipe/preferences.parquet", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--quantile", "1.5")]
    [InlineData("--negative-gaps", "ignore")]
    public async Task Split_BadOption_ExitsTwo(string option, string value)
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-stages-opt-").FullName;
        string preferences = Path.Combine(root, "preferences.parquet");
        await ParquetArtifacts.WriteAsync(new LocalArtifactStore(root), "preferences.parquet",
            [new PreferenceRow { PromptId = "p", Prompt = "x", Chosen = "a", Rejected = "b", ScoreChosen = 1, ScoreRejected = 0, RewardGap = 1, JudgeAgrees = true }]);

        var (exit, error) = await RunFailing("split", "--preferences", preferences, "--output", Path.Combine(root, "split"), option, value);

        Assert.Equal(2, exit);
        Assert.Contains(option == "--quantile" ? "uantile" : "ignore", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(root, "split")));
    }

    [Theory]
    [InlineData("https://acct.blob.core.windows.net/runs/r1/rank", "https://acct.blob.core.windows.net/runs/r1", "rank")]
    [InlineData("https://acct.blob.core.windows.net/runs/r1/rank/", "https://acct.blob.core.windows.net/runs/r1", "rank")]
    [InlineData("https://acct.blob.core.windows.net/runs/r1/split?sv=2024-11-04&sig=c2VjcmV0", "https://acct.blob.core.windows.net/runs/r1", "split")]
    public void OpenFolder_BlobLocations_SplitIntoParentStoreAndName(string location, string parent, string name)
    {
        var (store, prefix) = StageCommands.OpenFolder(location);

        Assert.Equal(name, prefix);
        Assert.StartsWith(parent + "/" + name, store.UriOf(prefix), StringComparison.Ordinal);
        Assert.DoesNotContain("sig=", store.UriOf(prefix), StringComparison.Ordinal);
    }

    [Fact]
    public void OpenFolder_ContainerWithoutFolder_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => StageCommands.OpenFolder("https://acct.blob.core.windows.net/runs"));
        Assert.Contains("folder inside the container", e.Message, StringComparison.Ordinal);
    }
}
