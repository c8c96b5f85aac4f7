using System.Text.Json;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>The demo pipeline end to end through the CLI, shrunk with --set so it takes seconds.</summary>
public sealed class PipelineRunnerTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static string Pipeline(string storage)
    {
        string yaml = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "pipelines", "demo.yaml"))
            .Replace("../assets/demo", Demo, StringComparison.Ordinal)
            .Replace("${PREFPIPE_STORAGE:-../runs}", storage, StringComparison.Ordinal);
        string path = Path.Combine(storage, "demo.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static readonly string[] Small =
    [
        "--set", "ingest.candidates_per_prompt=2", "--set", "ingest.max_new_tokens=24",
        "--set", "training.stage1.num_train_epochs=1", "--set", "training.stage2.max_steps=2", "--set", "training.stage2.response_length=24",
        "--set", "evaluation.max_new_tokens=24", "--set", "evaluation.samples_per_prompt=1",
    ];

    private static async Task<(int Exit, string Output)> Cli(params string[] args)
    {
        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(args, console);
        return (exit, console.Output);
    }

    [Fact]
    public async Task Run_ThenRerunAndStatus_CachesUnchangedStagesAndReportsTheEvaluation()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-run-").FullName;
        string file = Pipeline(storage);

        var (exit, output) = await Cli(["run", file, "--run-id", "t1", .. Small]);
        Assert.True(exit == 0, output);
        Assert.Contains("win rate of the final policy over the start", output, StringComparison.Ordinal);

        var (again, second) = await Cli(["run", file, "--run-id", "t1", .. Small]);
        Assert.Equal(0, again);
        foreach (string stage in new[] { "ingest", "rank", "split", "train", "ppo", "evaluate" })
            Assert.Contains($"{stage}: unchanged since it completed (cached)", second, StringComparison.Ordinal);

        var (statusExit, json) = await Cli("status", "--run", "t1", "--storage", storage, "--json");
        Assert.Equal(0, statusExit);
        using var doc = JsonDocument.Parse(json);
        Assert.InRange(doc.RootElement.GetProperty("win_rate").GetDouble(), 0, 1);
        Assert.True(doc.RootElement.TryGetProperty("mean_reward_start", out _));
        var stages = doc.RootElement.GetProperty("run").GetProperty("stages").EnumerateArray().ToList();
        Assert.All(stages, s => Assert.Equal("completed", s.GetProperty("status").GetString()));
        Assert.All(stages, s => Assert.True(s.GetProperty("balanced").GetBoolean()));
        Assert.Equal(240, stages[0].GetProperty("rows_in").GetInt64());
    }

    [Fact]
    public async Task Rerun_OneStage_RunsOnlyThatStage()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-rerun-").FullName;
        string file = Pipeline(storage);
        Assert.Equal(0, (await Cli(["run", file, "--run-id", "t2", "--until", "split", .. Small])).Exit);

        var (exit, output) = await Cli("rerun", "--run", "t2", "--stage", "rank", "--storage", storage);

        Assert.Equal(0, exit);
        Assert.Contains("rank: running", output, StringComparison.Ordinal);
        Assert.DoesNotContain("ingest: running", output, StringComparison.Ordinal);
        Assert.DoesNotContain("split: running", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_BadPipelineValue_ExitsTwoBeforeAnyWork()
    {
        string storage = Directory.CreateTempSubdirectory("prefpipe-bad-").FullName;
        string file = Pipeline(storage);
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            var (exit, _) = await Cli("run", file, "--set", "split.quantile=2");
            Assert.Equal(2, exit);
        }
        finally
        {
            Console.SetError(previous);
        }
        Assert.Contains("split.quantile (value 2)", error.ToString(), StringComparison.Ordinal);
        Assert.Empty(Directory.GetDirectories(storage));
    }
}
