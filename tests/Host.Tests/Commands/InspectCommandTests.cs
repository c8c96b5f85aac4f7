using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

public sealed class InspectCommandTests
{
    private static string Dataset(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", name);

    private static async Task<(int Exit, JsonElement Json)> InspectJson(params string[] args)
    {
        var console = new TestConsole().Width(200);
        int exit = await Cli.InvokeAsync(["inspect", .. args, "--json"], console);
        return (exit, exit == 0 ? JsonDocument.Parse(console.Output).RootElement.Clone() : default);
    }

    [Fact]
    public async Task Inspect_ConversationalFixtureJson_ShowsNestedSchemaCountsAndRows()
    {
        var (exit, json) = await InspectJson(Dataset("conversational_preference.parquet"), "--rows", "1");

        Assert.Equal(0, exit);
        Assert.Equal(2, json.GetProperty("rows").GetInt64());
        Assert.Equal([2L], json.GetProperty("row_groups").EnumerateArray().Select(e => e.GetInt64()));
        var columns = json.GetProperty("columns").EnumerateArray().Select(c => (c.GetProperty("name").GetString(), c.GetProperty("type").GetString())).ToList();
        Assert.Equal(
            [("prompt", "string"), ("prompt_id", "string"), ("chosen", "list<struct<role: string, content: string>>"),
             ("rejected", "list<struct<role: string, content: string>>"), ("score_chosen", "double"), ("score_rejected", "double")],
            columns);
        var row = Assert.Single(json.GetProperty("first_rows").EnumerateArray());
        Assert.Equal("p-001", row.GetProperty("prompt_id").GetString());
        Assert.Equal("Eggs are round.", row.GetProperty("rejected")[1].GetProperty("content").GetString());
        Assert.Equal(8.5, row.GetProperty("score_chosen").GetDouble());
    }

    [Fact]
    public async Task Inspect_PromptsParquet_ReportsBothRowGroups()
    {
        var (exit, json) = await InspectJson(Dataset("prompts.parquet"), "--rows", "3");

        Assert.Equal(0, exit);
        Assert.Equal(4, json.GetProperty("rows").GetInt64());
        Assert.Equal([2L, 2L], json.GetProperty("row_groups").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(["Tell me a joke.", "Summarize: the cat sat on the mat.", "Translate 'bonjour' to English."],
            json.GetProperty("first_rows").EnumerateArray().Select(r => r.GetProperty("prompt").GetString()));
    }

    [Theory]
    [InlineData("standard_preference.parquet", 3)]
    [InlineData("prompts.jsonl", 2)]
    public async Task Inspect_OtherFixtures_CountsRows(string name, long rows)
    {
        var (exit, json) = await InspectJson(Dataset(name));

        Assert.Equal(0, exit);
        Assert.Equal(rows, json.GetProperty("rows").GetInt64());
        Assert.Equal("prompt", json.GetProperty("columns")[0].GetProperty("name").GetString());
    }

    [Fact]
    public async Task Inspect_ArtifactWeWrote_TableShowsSchemaAndRows()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-inspect-").FullName);
        var rows = Enumerable.Range(0, 120).Select(i => new MetricRow { Stage = "dpo", Step = i, Name = "rewards/margins", Value = i / 8.0 });
        var info = await ParquetArtifacts.WriteAsync(store, "m/metrics.parquet", rows);
        var console = new TestConsole().Width(200);

        int exit = await Cli.InvokeAsync(["inspect", store.UriOf(info.Path), "--rows", "2"], console);

        Assert.Equal(0, exit);
        Assert.Contains("120 rows in 1 row group(s): 120", console.Output, StringComparison.Ordinal);
        Assert.Contains("rewards/margins", console.Output, StringComparison.Ordinal);
        Assert.Contains("int64", console.Output, StringComparison.Ordinal);
        Assert.Contains("first 2 row(s)", console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_MissingFile_ExitsTwoNamingIt()
    {
        await using var error = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync(["inspect", "/nonexistent-dir-prefpipe/x.parquet"], new TestConsole());

        Assert.Equal(2, exit);
        Assert.Contains("x.parquet", error.ToString(), StringComparison.Ordinal);
    }
}
