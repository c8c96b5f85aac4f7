using System.Text.Json;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Studies;

/// <summary>A two-cell, one-seed study on the shrunk demo through the CLI.</summary>
public sealed class StudyCommandTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static readonly string[] Small =
    [
        "--set", "ingest.candidates_per_prompt=2", "--set", "ingest.max_new_tokens=8",
        "--set", "training.dpo.num_train_epochs=1", "--set", "evaluation.max_new_tokens=8", "--set", "evaluation.samples_per_prompt=1",
    ];

    private static async Task<(int Exit, string Output)> Cli(params string[] args)
    {
        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(args, console);
        return (exit, console.Output);
    }

    private static string Study(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "demo.yaml"), File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "pipelines", "demo.yaml"))
            .Replace("../assets/demo", Demo, StringComparison.Ordinal)
            .Replace("${PREFPIPE_STORAGE:-../runs}", Path.Combine(dir, "runs"), StringComparison.Ordinal));
        string file = Path.Combine(dir, "losses.yaml");
        File.WriteAllText(file, """
            base: demo.yaml
            seeds: [3]
            cells:
              - name: dpo
                set: { training.plan: dpo }
              - name: mipo
                set:
                  training.plan: dpo
                  training.dpo.objective.loss_type: mipo
                  training.dpo.objective.beta: 20
            """);
        return file;
    }

    [Fact]
    public async Task Study_TwoCellsOneSeed_WritesTheReport_SecondInvocationRerunsNothing()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-study-").FullName;
        string file = Study(dir);

        var (exit, output) = await Cli(["study", file, .. Small]);
        Assert.True(exit == 0, output);
        Assert.Contains("[1/2] dpo seed 3 (losses-dpo-s3): running", output, StringComparison.Ordinal);
        Assert.Contains("[2/2] mipo seed 3 (losses-mipo-s3): running", output, StringComparison.Ordinal);

        string report = Path.Combine(dir, "runs", "losses");
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(report, "study.json"))))
        {
            var cells = doc.RootElement.GetProperty("cells").EnumerateArray().ToList();
            Assert.Equal(["dpo", "mipo"], cells.Select(c => c.GetProperty("name").GetString()));
            Assert.Equal(["sigmoid", "mipo"], cells.Select(c => c.GetProperty("loss_type").GetString()));
            Assert.All(cells, c => Assert.Equal("dpo", c.GetProperty("plan").GetString()));
            Assert.Equal("20", cells[1].GetProperty("set").GetProperty("training.dpo.objective.beta").GetString());
            foreach (var c in cells)
            {
                double mean = c.GetProperty("win_rate_mean").GetDouble(), low = c.GetProperty("win_rate_ci95_low").GetDouble(), high = c.GetProperty("win_rate_ci95_high").GetDouble();
                Assert.True(low <= mean && mean <= high && low >= 0 && high <= 1, $"{low} {mean} {high}");
                var seed = c.GetProperty("per_seed").EnumerateArray().Single();
                // One seed, one sample per prompt: the mean of the per-prompt win rates is the run's own win rate.
                Assert.Equal(seed.GetProperty("win_rate").GetDouble(), mean, 9);
                Assert.Equal(60, seed.GetProperty("held_out_prompts").GetInt32());
            }
            var diff = doc.RootElement.GetProperty("paired_differences").EnumerateArray().Single();
            Assert.Equal("mipo", diff.GetProperty("cell").GetString());
            Assert.Equal([3], diff.GetProperty("shared_seeds").EnumerateArray().Select(s => s.GetInt64()));
            Assert.Equal(cells[1].GetProperty("win_rate_mean").GetDouble() - cells[0].GetProperty("win_rate_mean").GetDouble(),
                diff.GetProperty("win_rate_diff_mean").GetDouble(), 9);
            Assert.Equal(["training.dpo.seed", "training.ppo.seed", "evaluation.seed"], doc.RootElement.GetProperty("seed_keys").EnumerateArray().Select(s => s.GetString()));
        }
        Assert.Contains("| mipo | dpo | mipo |", File.ReadAllText(Path.Combine(report, "study.md")), StringComparison.Ordinal);
        Assert.True(new FileInfo(Path.Combine(report, "win_rate.png")).Length > 0);
        Assert.True(new FileInfo(Path.Combine(report, "frontier.png")).Length > 0);
        string pipeline = File.ReadAllText(Path.Combine(dir, "runs", "losses-mipo-s3", "pipeline.yaml"));
        Assert.Contains("seed: 3", pipeline, StringComparison.Ordinal);
        DateTime written = File.GetLastWriteTimeUtc(Path.Combine(dir, "runs", "losses-mipo-s3", "run.json"));
        double runSeconds = RunSeconds(report);
        Assert.True(runSeconds > 0, "the runs' stage seconds are the study's cost");

        var (again, second) = await Cli(["study", file, .. Small]);
        Assert.True(again == 0, second);
        Assert.Contains("[1/2] dpo seed 3 (losses-dpo-s3): completed earlier, kept", second, StringComparison.Ordinal);
        Assert.Contains("[2/2] mipo seed 3 (losses-mipo-s3): completed earlier, kept", second, StringComparison.Ordinal);
        Assert.DoesNotContain(": running", second, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(dir, "runs", "losses-mipo-s3", "run.json")));
        // A study resumed with nothing left to run still reports what its runs cost.
        Assert.Equal(runSeconds, RunSeconds(report));
    }

    private static double RunSeconds(string reportFolder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(reportFolder, "study.json")));
        return doc.RootElement.GetProperty("run_seconds").GetDouble();
    }

    [Fact]
    public async Task Study_BadFile_ReportsEveryProblemBeforeAnyRun()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-study-bad-").FullName;
        string file = Path.Combine(dir, "bad.yaml");
        File.WriteAllText(file, """
            base: missing.yaml
            seeds: [1, x]
            cells:
              - name: a b
            """);
        var (exit, _) = await Cli("study", file);
        Assert.Equal(2, exit);
        Assert.False(Directory.Exists(Path.Combine(dir, "runs")));
    }
}
