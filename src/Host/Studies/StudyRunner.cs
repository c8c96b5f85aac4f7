using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Runs;
using PrefPipe.Reporting;

namespace PrefPipe.Host.Studies;

/// <summary>One (cell, seed) of a study as study.json records it.</summary>
internal sealed record StudySeedResult
{
    [JsonPropertyName("seed")] public long Seed { get; init; }
    [JsonPropertyName("run_id")] public string RunId { get; init; } = "";
    [JsonPropertyName("win_rate")] public double WinRate { get; init; }
    [JsonPropertyName("mean_reward_start")] public double MeanRewardStart { get; init; }
    [JsonPropertyName("mean_reward_final")] public double MeanRewardFinal { get; init; }
    [JsonPropertyName("mean_kl")] public double MeanKl { get; init; }
    [JsonPropertyName("train_seconds")] public double TrainSeconds { get; init; }
    [JsonPropertyName("held_out_prompts")] public int HeldOutPrompts { get; init; }
}

/// <summary>One row of study.json: a cell over its seeds.</summary>
internal sealed record StudyCellResult
{
    [JsonPropertyName("name")] public string Name { get; init; } = "";
    [JsonPropertyName("plan")] public string Plan { get; init; } = "";

    /// <summary>The stage-1 objective, or "-" when the plan trains no DPO stage.</summary>
    [JsonPropertyName("loss_type")] public string LossType { get; init; } = "";

    /// <summary>The stage-1 objective's β as used (its default when the pipeline leaves it unset); null without a DPO stage.</summary>
    [JsonPropertyName("beta")] public double? Beta { get; init; }

    /// <summary>How pairs were made: pairwise (iterative pairwise ranking with the judge) or pointwise (best and worst by reward).</summary>
    [JsonPropertyName("ranking")] public string Ranking { get; init; } = "";

    /// <summary>The cell as the study file wrote it: the cells of one sweep share it.</summary>
    [JsonPropertyName("group")] public string Group { get; init; } = "";

    /// <summary>The cell's overrides of the base pipeline (seeds excluded).</summary>
    [JsonPropertyName("set")] public Dictionary<string, string> Set { get; init; } = [];
    [JsonPropertyName("seeds")] public List<long> Seeds { get; init; } = [];
    [JsonPropertyName("win_rate_mean")] public double WinRateMean { get; init; }
    [JsonPropertyName("win_rate_ci95_low")] public double WinRateCi95Low { get; init; }
    [JsonPropertyName("win_rate_ci95_high")] public double WinRateCi95High { get; init; }
    [JsonPropertyName("mean_reward_start")] public double MeanRewardStart { get; init; }
    [JsonPropertyName("mean_reward_final")] public double MeanRewardFinal { get; init; }

    /// <summary>Mean KL(final ‖ start) per sample, over seeds.</summary>
    [JsonPropertyName("mean_kl")] public double MeanKl { get; init; }

    /// <summary>Mean over seeds of the DPO and PPO stages' wall seconds.</summary>
    [JsonPropertyName("train_seconds")] public double TrainSeconds { get; init; }
    [JsonPropertyName("per_seed")] public List<StudySeedResult> PerSeed { get; init; } = [];
}

/// <summary>The best cell of a sweep (a group of cells from one study-file cell) by mean win rate.</summary>
internal sealed record StudyBest
{
    [JsonPropertyName("group")] public string Group { get; init; } = "";
    [JsonPropertyName("cells")] public int Cells { get; init; }
    [JsonPropertyName("best_cell")] public string BestCell { get; init; } = "";

    /// <summary>The best cell's swept values.</summary>
    [JsonPropertyName("set")] public Dictionary<string, string> Set { get; init; } = [];
    [JsonPropertyName("win_rate_mean")] public double WinRateMean { get; init; }
    [JsonPropertyName("win_rate_ci95_low")] public double WinRateCi95Low { get; init; }
    [JsonPropertyName("win_rate_ci95_high")] public double WinRateCi95High { get; init; }
}

/// <summary>A cell's win rate minus the reference cell's, over the seeds both ran.</summary>
internal sealed record StudyDifference
{
    [JsonPropertyName("cell")] public string Cell { get; init; } = "";
    [JsonPropertyName("reference")] public string Reference { get; init; } = "";
    [JsonPropertyName("shared_seeds")] public List<long> SharedSeeds { get; init; } = [];
    [JsonPropertyName("win_rate_diff_mean")] public double Mean { get; init; }
    [JsonPropertyName("win_rate_diff_ci95_low")] public double Low { get; init; }
    [JsonPropertyName("win_rate_diff_ci95_high")] public double High { get; init; }
}

/// <summary>study.json: the study's cells with intervals, and the paired differences against the first cell.</summary>
internal sealed record StudyReport
{
    public const int CurrentFormat = 1;

    [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = CurrentFormat;
    [JsonPropertyName("study")] public string Study { get; init; } = "";
    [JsonPropertyName("base")] public string Base { get; init; } = "";
    [JsonPropertyName("seeds")] public List<long> Seeds { get; init; } = [];

    /// <summary>The pipeline keys every seed was written to.</summary>
    [JsonPropertyName("seed_keys")] public List<string> SeedKeys { get; init; } = [];
    [JsonPropertyName("interval_method")] public string IntervalMethod { get; init; } = StudyStatistics.Method;
    [JsonPropertyName("resamples")] public int Resamples { get; init; } = StudyStatistics.Resamples;
    [JsonPropertyName("rng_seed")] public int RngSeed { get; init; } = StudyStatistics.RngSeed;
    [JsonPropertyName("code_version")] public string CodeVersion { get; init; } = "";
    [JsonPropertyName("machine")] public string Machine { get; init; } = "";
    [JsonPropertyName("finished")] public DateTimeOffset Finished { get; init; }
    /// <summary>Wall seconds of this invocation (0 when every run was kept from an earlier one).</summary>
    [JsonPropertyName("wall_seconds")] public double WallSeconds { get; init; }

    /// <summary>Seconds the study's runs spent in their stages, whichever invocation ran them: the study's cost.</summary>
    [JsonPropertyName("run_seconds")] public double RunSeconds { get; init; }
    [JsonPropertyName("cells")] public List<StudyCellResult> Cells { get; init; } = [];
    [JsonPropertyName("paired_differences")] public List<StudyDifference> PairedDifferences { get; init; } = [];

    /// <summary>Per sweep (a study-file cell with <c>sweep:</c>), its best setting. Chosen on the same held-out prompts
    /// it is reported on, so the best's interval is optimistic.</summary>
    [JsonPropertyName("best_per_sweep")] public List<StudyBest> BestPerSweep { get; init; } = [];
}

/// <summary>
/// Runs a study: every (cell, seed) is a pipeline run with its own run id (<c>STUDY-CELL-sSEED</c>) in one store, one
/// after another. A run that completed with the same configuration and code is not touched; any other is handed to the
/// <see cref="PipelineRunner"/>, which keeps the stages that completed (a killed study continues where it stopped).
/// A run copies in the ingest, rank and split outputs of an earlier run of the study when that stage's options, inputs and
/// code are the same (<see cref="PipelineRunner.ReuseFrom"/>): one ingest per data seed, one ranking per ranking method.
/// Then writes STUDY/study.json, study.md, win_rate.png and frontier.png to the store.
/// </summary>
internal sealed class StudyRunner(StudyFile study, IReadOnlyList<string> baseOverrides, Action<string> progress, Action<string> log)
{
    /// <summary>A finished (cell, seed): its row, its per-prompt win rates, and the pipeline it ran.</summary>
    private sealed record SeedRun(StudySeedResult Seed, SortedDictionary<string, double> Prompts, LoadedPipeline Pipeline);

    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Runs what is not done yet and writes the report; returns it and the store it was written to.</summary>
    public async Task<(StudyReport Report, IArtifactStore Store)> RunAsync(CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        double runSeconds = 0;
        // Every (cell, seed) is loaded and checked before any work starts: a bad override fails the study at once.
        var jobs = (from cell in study.Cells
                    from seed in study.Seeds
                    select (Cell: cell, Seed: seed, Pipeline: PipelineLoader.Load(study.BasePipeline, [.. baseOverrides, .. study.Overrides(cell, seed)]))).ToList();
        var first = jobs[0].Pipeline;
        var store = Commands.RunCommands.OpenStore(first.Resolve(first.Definition.Storage));
        var results = new Dictionary<(string, long), SeedRun>();
        var earlier = new List<string>();
        // Time left: the mean wall time of the runs made so far (kept ones cost nothing) times the runs still to come.
        double madeSeconds = 0;
        int made = 0;
        for (int i = 0; i < jobs.Count; i++)
        {
            var (cell, seed, pipeline) = jobs[i];
            string runId = study.RunId(cell, seed);
            string at = string.Create(CultureInfo.InvariantCulture, $"[{i + 1}/{jobs.Count}] {cell.Name} seed {seed} ({runId})");
            var run = await RunRecord.LoadAsync(store, runId, cancellationToken).ConfigureAwait(false);
            bool done = run is { Status: RunStatus.Completed } && run.ConfigHash == StageTable.Hash(pipeline.CanonicalYaml) && run.CodeVersion == CodeVersion.Current;
            if (done)
            {
                progress($"{at}: completed earlier, kept");
            }
            else
            {
                progress($"{at}: running");
                var runClock = Stopwatch.StartNew();
                run = await new PipelineRunner(pipeline, store, line => log($"    {line}")) { ReuseFrom = earlier }.RunAsync(runId, new RunScope(), cancellationToken).ConfigureAwait(false);
                (madeSeconds, made) = (madeSeconds + runClock.Elapsed.TotalSeconds, made + 1);
                int left = jobs.Count - i - 1;
                string eta = left == 0 ? "done" : $"about {ProgressRate.Duration(madeSeconds / made * left)} left";
                progress(string.Create(CultureInfo.InvariantCulture,
                    $"{at}: done in {runClock.Elapsed.TotalSeconds:F0} s ({i + 1}/{jobs.Count} runs, {60 * made / madeSeconds:G3} runs/min, {eta})"));
            }
            var result = await CollectAsync(store, pipeline, run!, seed, cancellationToken).ConfigureAwait(false);
            runSeconds += run!.Stages.Sum(s => s.Seconds);
            results[(cell.Name, seed)] = result;
            earlier.Add(runId);
            progress(string.Create(CultureInfo.InvariantCulture,
                $"{at}: win rate {result.Seed.WinRate:P1}, reward {result.Seed.MeanRewardStart:F3} → {result.Seed.MeanRewardFinal:F3}, KL {result.Seed.MeanKl:F3}"));
        }

        var cells = study.Cells.Select(cell => Summarise(cell, study.Seeds.Select(s => results[(cell.Name, s)]).ToList())).ToList();
        var reference = study.Cells.First(c => c.Name == study.Reference);
        var differences = study.Cells.Where(c => c != reference).Select(cell => Difference(cell, reference, results)).ToList();
        var best = cells.GroupBy(c => c.Group, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g =>
        {
            var top = g.OrderByDescending(c => c.WinRateMean).First();
            var swept = study.Cells.First(c => c.Name == top.Name).Set.Where(kv => g.Select(c => c.Set.GetValueOrDefault(kv.Key)).Distinct().Count() > 1);
            return new StudyBest
            {
                Group = g.Key, Cells = g.Count(), BestCell = top.Name, Set = swept.ToDictionary(kv => kv.Key, kv => kv.Value),
                WinRateMean = top.WinRateMean, WinRateCi95Low = top.WinRateCi95Low, WinRateCi95High = top.WinRateCi95High,
            };
        }).ToList();
        var report = new StudyReport
        {
            Study = study.Name, Base = study.BasePipeline, Seeds = [.. study.Seeds], SeedKeys = [.. study.SeedKeys],
            CodeVersion = CodeVersion.Current, Machine = $"{Environment.MachineName}, {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            Finished = DateTimeOffset.UtcNow, WallSeconds = Math.Round(clock.Elapsed.TotalSeconds, 1), RunSeconds = Math.Round(runSeconds, 1), Cells = cells, PairedDifferences = differences, BestPerSweep = best,
        };
        await WriteAsync(store, study.Name, report, withJson: true, cancellationToken).ConfigureAwait(false);
        return (report, store);
    }

    private static async Task<SeedRun> CollectAsync(IArtifactStore store, LoadedPipeline pipeline, RunRecord run, long seed, CancellationToken cancellationToken)
    {
        var eval = run.Stage(PipelineStage.Evaluate);
        if (eval.Status != StageStatus.Completed)
            throw new InvalidOperationException($"run {run.RunId}: the evaluate stage is '{eval.Status.Name()}'; a study needs every run evaluated");
        var rows = new List<EvaluationRow>();
        await foreach (var row in ParquetArtifacts.ReadAsync<EvaluationRow>(store, $"{run.RunId}/evaluate/samples.parquet", cancellationToken).ConfigureAwait(false))
            rows.Add(row);
        var prompts = StudyStatistics.PromptWinRates(rows);
        var d = pipeline.Definition;
        double train = (d.Training.RunsDpo ? run.Stage(PipelineStage.Dpo).Seconds : 0) + (d.Training.RunsPpo ? run.Stage(PipelineStage.Ppo).Seconds : 0);
        var result = new StudySeedResult
        {
            Seed = seed, RunId = run.RunId, WinRate = eval.Summary["win_rate"], MeanRewardStart = eval.Summary["mean_reward_start"],
            MeanRewardFinal = eval.Summary["mean_reward_final"], MeanKl = eval.Summary["mean_kl"], TrainSeconds = Math.Round(train, 1), HeldOutPrompts = prompts.Count,
        };
        return new SeedRun(result, prompts, pipeline);
    }

    private static StudyCellResult Summarise(StudyCell cell, List<SeedRun> seeds)
    {
        var d = seeds[0].Pipeline.Definition;
        var interval = StudyStatistics.Bootstrap(seeds.Select(s => s.Prompts.Values.ToArray()).ToList());
        return new StudyCellResult
        {
            Name = cell.Name, Group = cell.Group, Plan = d.Training.Plan.ToString().ToLowerInvariant(), LossType = d.Training.RunsDpo ? d.Training.Dpo.Objective.LossType : "-",
            Beta = d.Training.RunsDpo ? d.Training.Dpo.Objective.EffectiveBeta : null, Ranking = d.Ranking.Method.ToString().ToLowerInvariant(),
            Set = cell.Set.ToDictionary(kv => kv.Key, kv => kv.Value), Seeds = [.. seeds.Select(s => s.Seed.Seed)],
            WinRateMean = interval.Mean, WinRateCi95Low = interval.Low, WinRateCi95High = interval.High,
            MeanRewardStart = seeds.Average(s => s.Seed.MeanRewardStart), MeanRewardFinal = seeds.Average(s => s.Seed.MeanRewardFinal),
            MeanKl = seeds.Average(s => s.Seed.MeanKl), TrainSeconds = Math.Round(seeds.Average(s => s.Seed.TrainSeconds), 1), PerSeed = [.. seeds.Select(s => s.Seed)],
        };
    }

    /// <summary>Per shared seed, the per-prompt win-rate differences over the prompts both evaluated; then the bootstrap.</summary>
    private StudyDifference Difference(StudyCell cell, StudyCell reference, Dictionary<(string, long), SeedRun> results)
    {
        var shared = study.Seeds.Where(s => results.ContainsKey((cell.Name, s)) && results.ContainsKey((reference.Name, s))).ToList();
        var perSeed = shared.Select(s =>
        {
            var a = results[(cell.Name, s)].Prompts;
            var b = results[(reference.Name, s)].Prompts;
            return a.Keys.Where(b.ContainsKey).Select(p => a[p] - b[p]).ToArray();
        }).Where(x => x.Length > 0).ToList();
        var interval = perSeed.Count == 0 ? new Interval(double.NaN, double.NaN, double.NaN) : StudyStatistics.Bootstrap(perSeed);
        return new StudyDifference { Cell = cell.Name, Reference = reference.Name, SharedSeeds = shared, Mean = interval.Mean, Low = interval.Low, High = interval.High };
    }

    /// <summary>
    /// Writes <paramref name="report"/>'s files under <paramref name="folder"/> of the store (each committed whole):
    /// study.json when <paramref name="withJson"/>, study.md, win_rate.png (a cell per row, coloured by sweep) and
    /// frontier.png (reward against KL, a point per seed).
    /// </summary>
    private static async Task WriteAsync(IArtifactStore store, string folder, StudyReport report, bool withJson, CancellationToken cancellationToken)
    {
        string At(string name) => folder.Length == 0 ? name : $"{folder}/{name}";
        if (withJson)
            await store.WriteBytesAsync(At("study.json"), JsonSerializer.SerializeToUtf8Bytes(report, Json), cancellationToken).ConfigureAwait(false);
        await store.WriteTextAsync(At("study.md"), Markdown(report), cancellationToken).ConfigureAwait(false);
        string temp = Directory.CreateTempSubdirectory("prefpipe-study-").FullName;
        try
        {
            string win = Path.Combine(temp, "win_rate.png"), frontier = Path.Combine(temp, "frontier.png");
            Charts.Intervals(win, $"{report.Study}: win rate over the start policy (95% bootstrap interval)", "win rate",
                [.. report.Cells.Select(c => new ChartInterval(c.Name, c.WinRateMean, c.WinRateCi95Low, c.WinRateCi95High, c.Group))]);
            Charts.Points(frontier, $"{report.Study}: reward–KL frontier (a point per seed)", "KL(final ‖ start) per sample", "mean reward (final policy)",
                [.. report.Cells.Select(c => new ChartSeries(c.Name, [.. c.PerSeed.Select(s => s.MeanKl)], [.. c.PerSeed.Select(s => s.MeanRewardFinal)], c.Group))]);
            await store.CommitAsync(At("win_rate.png"), win, cancellationToken).ConfigureAwait(false);
            await store.CommitAsync(At("frontier.png"), frontier, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>
    /// Writes study.md, win_rate.png and frontier.png again beside an existing study.json (a local file), running nothing:
    /// for a study whose runs were made by another code version, or after the report format changed.
    /// </summary>
    internal static async Task<StudyReport> RenderAsync(string studyJson, CancellationToken cancellationToken = default)
    {
        string full = Path.GetFullPath(studyJson);
        StudyReport report;
        try
        {
            report = JsonSerializer.Deserialize<StudyReport>(await File.ReadAllBytesAsync(full, cancellationToken).ConfigureAwait(false), Json)
                ?? throw new InvalidDataException($"{full}: empty study.json");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{full}: not a study.json ({ex.Message})", ex);
        }
        if (report.Cells.Count == 0)
            throw new InvalidDataException($"{full}: study.json has no cells");
        await WriteAsync(new LocalArtifactStore(Path.GetDirectoryName(full)!), "", report, withJson: false, cancellationToken).ConfigureAwait(false);
        return report;
    }

    /// <summary>study.md: the cells table and the paired differences.</summary>
    internal static string Markdown(StudyReport report)
    {
        static string Pct(double v) => double.IsNaN(v) ? "n/a" : (v * 100).ToString("F1", CultureInfo.InvariantCulture);
        var cells = new SummaryTable("cell", "plan", "loss_type", "β", "ranking", "seeds", "win rate %", "95% CI", "reward final", "KL", "train s");
        foreach (var c in report.Cells)
            cells.Add(c.Name, c.Plan, c.LossType, c.Beta is { } b ? b.ToString("G4", CultureInfo.InvariantCulture) : "-", c.Ranking, c.Seeds.Count,
                Pct(c.WinRateMean), $"{Pct(c.WinRateCi95Low)} – {Pct(c.WinRateCi95High)}", c.MeanRewardFinal, c.MeanKl, c.TrainSeconds);
        var diffs = new SummaryTable("cell − reference", "shared seeds", "win rate diff (points)", "95% CI");
        foreach (var d in report.PairedDifferences)
            diffs.Add($"{d.Cell} − {d.Reference}", d.SharedSeeds.Count, Pct(d.Mean), $"{Pct(d.Low)} – {Pct(d.High)}");
        var best = new SummaryTable("sweep", "cells", "best", "setting", "win rate %", "95% CI");
        foreach (var b in report.BestPerSweep)
            best.Add(b.Group, b.Cells, b.BestCell, string.Join(", ", b.Set.Select(kv => $"{kv.Key}={kv.Value}")), Pct(b.WinRateMean), $"{Pct(b.WinRateCi95Low)} – {Pct(b.WinRateCi95High)}");
        string sweeps = report.BestPerSweep.Count == 0 ? "" : $"""
            Best setting per sweep (chosen on the same held-out prompts, so its interval is optimistic):

            {best.ToMarkdown()}
            """;
        return $"""
            # Study {report.Study}

            Base pipeline `{Path.GetFileName(report.Base)}`; seeds [{string.Join(", ", report.Seeds)}] written to {string.Join(", ", report.SeedKeys)}.
            Code {report.CodeVersion}; {report.Machine}; finished {report.Finished:u}; wall {report.WallSeconds:F0} s (this invocation), {report.RunSeconds:F0} s in the runs' stages.

            {cells.ToMarkdown()}
            Paired differences against the reference cell:

            {diffs.ToMarkdown()}
            {sweeps}
            Intervals: {report.IntervalMethod}

            ![win rate](win_rate.png) ![reward–KL frontier](frontier.png)

            """;
    }
}
