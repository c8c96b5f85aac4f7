using System.Text.Json;
using System.Text.RegularExpressions;
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
        // The second cell's upstream is the first's: same ingest, ranking and split options, inputs and code.
        using (var run = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "runs", "losses-mipo-s3", "run.json"))))
        {
            var stages = run.RootElement.GetProperty("stages").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
            foreach (string stage in new[] { "ingest", "rank", "split" })
                Assert.Equal("losses-dpo-s3", stages[stage].GetProperty("reused_from").GetString());
            Assert.Equal(JsonValueKind.Null, stages["dpo"].GetProperty("reused_from").ValueKind);
            foreach (string artifact in new[] { "ingest/candidates.parquet", "rank/preferences.parquet", "split/easy.parquet" })
                Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "runs", "losses-dpo-s3", artifact)), File.ReadAllBytes(Path.Combine(dir, "runs", "losses-mipo-s3", artifact)));
            Assert.Contains(Path.Combine(dir, "runs", "losses-mipo-s3", "rank", "preferences.parquet"), // plan dpo trains on every pair
                stages["dpo"].GetProperty("inputs").EnumerateArray().Select(i => i.GetProperty("uri").GetString()));
        }

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

        // --render writes study.md and the charts again from study.json alone: the same study.md, running nothing.
        string md = File.ReadAllText(Path.Combine(report, "study.md"));
        foreach (string f in new[] { "study.md", "win_rate.png", "frontier.png" })
            File.Delete(Path.Combine(report, f));
        var (rendered, third) = await Cli(["study", "--render", Path.Combine(report, "study.json")]);
        Assert.True(rendered == 0, third);
        Assert.Equal(md, File.ReadAllText(Path.Combine(report, "study.md")));
        Assert.True(new FileInfo(Path.Combine(report, "win_rate.png")).Length > 5_000);
        Assert.True(new FileInfo(Path.Combine(report, "frontier.png")).Length > 5_000);
        Assert.DoesNotContain(": running", third, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(dir, "runs", "losses-mipo-s3", "run.json")));

        File.WriteAllText(Path.Combine(dir, "not-a-study.json"), "{\"cells\": 3}");
        var (bad, _) = await Cli(["study", "--render", Path.Combine(dir, "not-a-study.json")]);
        Assert.Equal(2, bad);
        Assert.False(File.Exists(Path.Combine(dir, "study.md")));
    }

    private static double RunSeconds(string reportFolder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(reportFolder, "study.json")));
        return doc.RootElement.GetProperty("run_seconds").GetDouble();
    }

    [Fact]
    public async Task Study_SweepAndPointwise_KilledMidRun_ResumesKeepingWhatWasDone()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-study-sweep-").FullName;
        Study(dir);
        string file = Path.Combine(dir, "sweep.yaml");
        File.WriteAllText(file, """
            base: demo.yaml
            seeds: [5, 6]
            seed_keys: [ingest.seed, training.dpo.seed, evaluation.seed]
            set: { training.plan: dpo }
            reference: sig-beta0.5
            cells:
              - name: sig
                sweep: { training.dpo.objective.beta: [0.1, 0.5] }
              - name: pointwise
                set: { ranking.method: pointwise }
            """);
        var study = PrefPipe.Host.Studies.StudyFile.Load(file);
        Assert.Equal(["sig-beta0.1", "sig-beta0.5", "pointwise"], study.Cells.Select(c => c.Name));
        Assert.Equal(["sig", "sig", "pointwise"], study.Cells.Select(c => c.Group));
        string[] overrides = [.. Small.Where((_, i) => i % 2 == 1)];

        // Killed during the dpo stage of the fifth run (pointwise, seed 5: its ingest came from an earlier run, its ranking is its own).
        var progress = new List<string>();
        using var kill = new CancellationTokenSource();
        bool fifth = false;
        var killed = new PrefPipe.Host.Studies.StudyRunner(study, overrides, line => { progress.Add(line); fifth |= line.StartsWith("[5/6]", StringComparison.Ordinal); },
            line => { if (fifth && line.Contains("dpo: running", StringComparison.Ordinal)) kill.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => killed.RunAsync(kill.Token));
        string runs = Path.Combine(dir, "runs");
        using (var run = JsonDocument.Parse(File.ReadAllText(Path.Combine(runs, "sweep-pointwise-s5", "run.json"))))
        {
            Assert.Equal("cancelled", run.RootElement.GetProperty("status").GetString());
            var stages = run.RootElement.GetProperty("stages").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
            Assert.Equal("sweep-sig-beta0.1-s5", stages["ingest"].GetProperty("reused_from").GetString());
            Assert.Equal(JsonValueKind.Null, stages["rank"].GetProperty("reused_from").ValueKind); // pointwise ranks anew
            Assert.Equal("completed", stages["split"].GetProperty("status").GetString());
        }
        Assert.False(File.Exists(Path.Combine(runs, "sweep", "study.json")));
        // Each run made says how many are done, at what pace, and the time left at that pace.
        Assert.Contains(progress, l => Regex.IsMatch(l, @"^\[1/6\] sig-beta0\.1 seed 5 \(sweep-sig-beta0\.1-s5\): done in \d+ s \(1/6 runs, \d+(\.\d+)? runs/min, about \d+ (s|min \d+ s) left\)$"));
        Assert.Contains(progress, l => l.StartsWith("[4/6]", StringComparison.Ordinal) && l.Contains("(4/6 runs, ", StringComparison.Ordinal));
        DateTime fourth = File.GetLastWriteTimeUtc(Path.Combine(runs, "sweep-sig-beta0.5-s6", "run.json"));

        var lines = new List<string>();
        var resumed = new PrefPipe.Host.Studies.StudyRunner(study, overrides, lines.Add, lines.Add);
        var (report, _) = await resumed.RunAsync();

        for (int i = 1; i <= 4; i++) Assert.Contains(lines, l => l.StartsWith($"[{i}/6]", StringComparison.Ordinal) && l.EndsWith("completed earlier, kept", StringComparison.Ordinal));
        Assert.Equal(fourth, File.GetLastWriteTimeUtc(Path.Combine(runs, "sweep-sig-beta0.5-s6", "run.json")));
        Assert.Contains(lines, l => l.Contains("split: unchanged since it completed (cached)", StringComparison.Ordinal));
        Assert.Equal(3, report.Cells.Count);
        Assert.All(report.Cells, c => Assert.Equal([5, 6], c.Seeds));
        Assert.Equal(["pairwise", "pairwise", "pointwise"], report.Cells.Select(c => c.Ranking));
        Assert.Equal([0.1, 0.5, 0.1], report.Cells.Select(c => c.Beta!.Value));
        Assert.Equal(["sig-beta0.1", "pointwise"], report.PairedDifferences.Select(d => d.Cell));
        Assert.All(report.PairedDifferences, d => Assert.Equal("sig-beta0.5", d.Reference));
        var best = Assert.Single(report.BestPerSweep);
        Assert.Equal("sig", best.Group);
        Assert.Equal(report.Cells.Take(2).MaxBy(c => c.WinRateMean)!.Name, best.BestCell);
        Assert.Equal(["training.dpo.objective.beta"], best.Set.Keys);
        // The pointwise runs' pairs are argmax/argmin by reward; the pairwise ones come from iterative ranking.
        var pairs = await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.PreferenceRow>(
            new PrefPipe.Artifacts.Storage.LocalArtifactStore(runs), "sweep-pointwise-s6/rank/preferences.parquet");
        Assert.All(pairs, p => Assert.Equal("pointwise:reward", p.Method));
        Assert.Contains("| sweep | cells | best |", File.ReadAllText(Path.Combine(runs, "sweep", "study.md")), StringComparison.Ordinal);
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
