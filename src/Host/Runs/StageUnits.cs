using System.Diagnostics;
using System.Globalization;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Ingest;
using PrefPipe.Ranking;
using PrefPipe.Splitter;
using PrefPipe.Trainer;
using PrefPipe.Trainer.Ppo;
using PrefPipe.Trainer.Stages;

namespace PrefPipe.Host.Runs;

/// <summary>What a stage reports to the runner: its row accounting, its artifacts, summary figures and a log line.</summary>
internal sealed record StageOutcome(long RowsIn, long RowsOut, long RowsRejected, IReadOnlyList<ArtifactRecord> Outputs, IReadOnlyDictionary<string, double> Summary, string Line)
{
    public static StageOutcome From(IngestResult r) => new(r.RowsIn, r.Prompts.Rows, r.Rejects.Rows,
        [ArtifactRecord.From("prompts", r.Prompts), ArtifactRecord.From("candidates", r.Candidates), ArtifactRecord.From("rejects", r.Rejects)],
        r.Generation is { } g
            ? new Dictionary<string, double> { ["candidates"] = r.Candidates.Rows, ["decoding_rows"] = g.BatchRows, ["decoding_utilisation"] = g.Utilisation }
            : new Dictionary<string, double> { ["candidates"] = r.Candidates.Rows },
        IngestStage.Describe(r));

    public static StageOutcome From(RankingResult r) => new(r.PromptsIn, r.Preferences.Rows, r.Unpaired.Rows,
        [ArtifactRecord.From("scored_candidates", r.Scored), ArtifactRecord.From("comparisons", r.Comparisons), ArtifactRecord.From("preferences", r.Preferences), ArtifactRecord.From("unpaired", r.Unpaired)],
        new Dictionary<string, double> { ["judge_calls"] = r.JudgeCalls },
        $"{r.PromptsIn} prompts → {r.Preferences.Rows} pairs, {r.Unpaired.Rows} unpaired, {r.JudgeCalls} judge calls");

    /// <summary>Copies the outcome into the stage's run.json record.</summary>
    public void ApplyTo(StageRecord rec)
    {
        (rec.RowsIn, rec.RowsOut, rec.RowsRejected, rec.Outputs) = (RowsIn, RowsOut, RowsRejected, [.. Outputs]);
        foreach (var (k, v) in Summary) rec.Summary[k] = v;
    }
}

/// <summary>Where a stage of a run reads and writes: the run's store and prefix, its local work folder, its pipeline.</summary>
internal sealed record StageContext(LoadedPipeline Pipeline, IArtifactStore Store, string RunId, string WorkRoot, Action<string> Log, Action<PipelineStage, long, long> Report)
{
    public PipelineDefinition D => Pipeline.Definition;

    /// <summary>How often a long step's plain progress line may appear.</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The stage's folder in the store.</summary>
    public string Prefix(PipelineStage stage) => $"{RunId}/{stage.Name()}";

    /// <summary>The stage's local folder (checkpoints).</summary>
    public string Work(PipelineStage stage) => Path.Combine(WorkRoot, stage.Name());

    public StoreFile Artifact(PipelineStage stage, string file) => new(Store, $"{Prefix(stage)}/{file}");

    public string Resolve(string path) => Pipeline.Resolve(path);
}

/// <summary>Each stage's unit call: artifacts in, artifacts out; the runner does the bookkeeping.</summary>
internal static class StageUnits
{
    /// <summary>The prompt encoding every stage uses: the one ingest generated with.</summary>
    public static PromptFormat Format(PipelineDefinition d) => new(d.Ingest.ChatTemplate, d.Ingest.SystemPrompt);

    /// <summary>The DPO reference: <c>models.reference</c>, else the policy itself.</summary>
    public static string Reference(LoadedPipeline p) => p.Resolve(p.Definition.Models.Reference ?? p.Definition.Models.Policy);

    public static async Task<StageOutcome> IngestAsync(StageContext c, CancellationToken ct)
    {
        string prompts = c.Resolve(c.D.Inputs.Prompts);
        var rate = new ProgressRate("prompts");
        var progress = new Throttled<IngestProgress>(p => c.Log(Line($"  ingest: {p.PromptsDone}/{p.PromptsTotal} prompts, {p.Candidates} candidates", rate.Describe(p.PromptsDone, p.PromptsTotal))),
            p => c.Report(PipelineStage.Ingest, p.PromptsDone, p.PromptsTotal), c.ProgressInterval);
        var r = await new IngestStage(c.D.Ingest).RunAsync(PromptSource.ReadAsync(prompts, cancellationToken: ct), prompts, c.Resolve(c.D.Models.Policy), c.Store, c.Prefix(PipelineStage.Ingest), progress, ct).ConfigureAwait(false);
        return StageOutcome.From(r);
    }

    public static async Task<StageOutcome> RankAsync(StageContext c, CancellationToken ct)
    {
        var (candidates, prompts, comparisons) = (new ProgressRate("candidates"), new ProgressRate("prompts"), new ProgressRate("comparisons"));
        var progress = new Throttled<RankingProgress>(p => c.Log(p.Phase == "scoring"
                ? Line($"  rank: scored {p.Done}/{p.Total} candidates", candidates.Describe(p.Done, p.Total))
                : Line($"  rank: ranked {p.Done}/{p.Total} prompts, {p.JudgeCalls} judge calls", Both(comparisons.Throughput(p.JudgeCalls), prompts.Describe(p.Done, p.Total)))),
            p =>
            {
                // The rates count from each phase's first report, not from the first line printed.
                if (p.Phase == "scoring")
                {
                    candidates.Observe(p.Done);
                    return;
                }
                prompts.Observe(p.Done);
                comparisons.Observe(p.JudgeCalls);
                c.Report(PipelineStage.Rank, p.Done, p.Total);
            }, c.ProgressInterval);
        return StageOutcome.From(await new RankingStage(c.D.Ranking).RunAsync(c.Store, $"{c.Prefix(PipelineStage.Ingest)}/candidates.parquet", c.Resolve(c.D.Models.Reward), c.Prefix(PipelineStage.Rank), progress, ct).ConfigureAwait(false));
    }

    public static async Task<StageOutcome> SplitAsync(StageContext c, CancellationToken ct)
    {
        var r = await new SplitterStage(c.D.Split).RunAsync(c.Store, $"{c.Prefix(PipelineStage.Rank)}/preferences.parquet", c.Prefix(PipelineStage.Split), c.Work(PipelineStage.Split), ct).ConfigureAwait(false);
        return new StageOutcome(r.PairsIn, r.Easy.Rows + r.Difficult.Rows, r.Dropped.Rows,
            [ArtifactRecord.From("easy", r.Easy), ArtifactRecord.From("difficult", r.Difficult), ArtifactRecord.From("dropped", r.Dropped)],
            new Dictionary<string, double> { ["easy_fraction"] = r.Report.EasyFraction, ["difficult_fraction"] = r.Report.DifficultFraction },
            $"{r.PairsIn} pairs → easy {r.Easy.Rows}, difficult {r.Difficult.Rows}, dropped {r.Dropped.Rows} (threshold {r.Report.Threshold:G4})");
    }

    /// <summary>The DPO-family stage: mpo trains on the easy pairs, dpo on all pairs.</summary>
    public static async Task<StageOutcome> DpoAsync(StageContext c, CancellationToken ct)
    {
        var pairs = c.D.Training.Plan == TrainingPlan.Dpo ? c.Artifact(PipelineStage.Rank, "preferences.parquet") : c.Artifact(PipelineStage.Split, "easy.parquet");
        var rate = new ProgressRate("steps");
        var progress = new Throttled<TrainProgress>(p => { string r = rate.Describe(p.Step, p.TotalSteps); if (p.Metrics.Count > 0) c.Log(Line($"  step {p.Step}/{p.TotalSteps}  {DpoStage.Describe(p.Metrics)}", r)); },
            p => c.Report(PipelineStage.Dpo, p.Step, p.TotalSteps), c.ProgressInterval);
        var referenceRate = new ProgressRate("pairs");
        var reference = new Throttled<(int Done, int Total)>(p => c.Log(Line($"  reference pass: {p.Done}/{p.Total} pairs", referenceRate.Describe(p.Done, p.Total))),
            p => referenceRate.Observe(p.Done), c.ProgressInterval);
        var r = await new DpoStage(c.D.Training.Dpo).RunAsync(pairs, c.Resolve(c.D.Models.Policy), Reference(c.Pipeline), Format(c.D),
            c.Store, c.Prefix(PipelineStage.Dpo), c.Work(PipelineStage.Dpo), progress, line => c.Log($"  {line}"), reference, ct).ConfigureAwait(false);
        return new StageOutcome(r.RowsIn, r.Trained, r.Rejects.Rows,
            [ArtifactRecord.From("metrics", r.Metrics), ArtifactRecord.From("rejects", r.Rejects), ArtifactRecord.Of("model", r.Model)],
            Final(r.Steps, r.MetricRows), $"{r.Trained} pairs trained, {r.Rejects.Rows} rejected, {r.Steps} steps; model {r.Model.Directory}");
    }

    /// <summary>The PPO stage: mpo from the dpo stage's model on the difficult prompts (referenced to it), ppo from the policy on all prompts.</summary>
    public static async Task<StageOutcome> PpoAsync(StageContext c, CancellationToken ct)
    {
        bool mpo = c.D.Training.Plan != TrainingPlan.Ppo;
        string start = mpo ? await ModelOfAsync(c, PipelineStage.Dpo, ct).ConfigureAwait(false) : c.Resolve(c.D.Models.Policy);
        var prompts = mpo ? c.Artifact(PipelineStage.Split, "difficult.parquet") : c.Artifact(PipelineStage.Ingest, "prompts.parquet");
        var rate = new ProgressRate("steps");
        var progress = new Throttled<TrainProgress>(p => { string r = rate.Describe(p.Step, p.TotalSteps); if (p.Metrics.Count > 0) c.Log(Line($"  ppo step {p.Step}/{p.TotalSteps}  {PpoStage.Describe(p.Metrics)}", r)); },
            p => c.Report(PipelineStage.Ppo, p.Step, p.TotalSteps), c.ProgressInterval);
        var r = await new PpoStage(c.D.Training.Ppo).RunAsync(prompts, start, start, c.Resolve(c.D.Models.Reward), Format(c.D), c.Resolve(c.D.Models.Policy),
            c.Store, c.Prefix(PipelineStage.Ppo), c.Work(PipelineStage.Ppo), progress, ct).ConfigureAwait(false);
        return new StageOutcome(r.RowsIn, r.Prompts, r.Rejects.Rows,
            [ArtifactRecord.From("metrics", r.Metrics), ArtifactRecord.From("rejects", r.Rejects), ArtifactRecord.Of("model", r.Model)],
            Final(r.Steps, r.MetricRows), $"{r.Prompts} prompts, {r.Steps} iterations; model {r.Model.Directory}");
    }

    /// <summary>Evaluates the final policy against the start on held-out prompts.</summary>
    public static async Task<StageOutcome> EvaluateAsync(StageContext c, CancellationToken ct)
    {
        string final = await ModelOfAsync(c, StageTable.FinalModelStage(c.D), ct).ConfigureAwait(false);
        var (store, path) = ArtifactStores.OpenFile(c.Resolve(c.D.Inputs.EvalPrompts!));
        var rate = new ProgressRate("samples");
        var progress = new Throttled<(int Done, int Total)>(p => c.Log(Line($"  evaluate: {p.Done}/{p.Total} samples", rate.Describe(p.Done, p.Total))),
            p =>
            {
                rate.Observe(p.Done);
                c.Report(PipelineStage.Evaluate, p.Done, p.Total);
            }, c.ProgressInterval);
        var r = await new EvaluateStage(c.D.Evaluation).RunAsync(new StoreFile(store, path), c.Resolve(c.D.Models.Policy), final, c.Resolve(c.D.Models.Reward), Format(c.D),
            c.Store, c.Prefix(PipelineStage.Evaluate), progress, ct).ConfigureAwait(false);
        var s = r.Summary;
        return new StageOutcome(r.RowsIn, r.Prompts, r.Rejects.Rows, [ArtifactRecord.From("samples", r.Samples), ArtifactRecord.From("rejects", r.Rejects)],
            new Dictionary<string, double> { ["win_rate"] = s.WinRate, ["mean_reward_start"] = s.MeanRewardStart, ["mean_reward_final"] = s.MeanRewardFinal, ["mean_kl"] = s.MeanKl },
            string.Create(CultureInfo.InvariantCulture, $"win rate {s.WinRate:P1}, mean reward {s.MeanRewardStart:F3} → {s.MeanRewardFinal:F3}, KL {s.MeanKl:F3}"));
    }

    private static string Line(string line, string rate) => rate.Length == 0 ? line : $"{line}  ({rate})";

    private static string Both(string first, string second) => first.Length == 0 ? second : second.Length == 0 ? first : $"{first}, {second}";

    /// <summary>The latest checkpoint a training stage of this run made (restored from a remote store when only there).</summary>
    private static async Task<string> ModelOfAsync(StageContext c, PipelineStage stage, CancellationToken ct) =>
        await TrainedModel.LatestAsync(c.Store, c.Prefix(stage), c.Work(stage), ct).ConfigureAwait(false)
        ?? throw new InvalidOperationException($"the {stage.Name()} stage of run {c.RunId} has no model (no checkpoint in {c.Work(stage)} or {c.Store.UriOf($"{c.Prefix(stage)}/model")}); run the {stage.Name()} stage first");

    private static Dictionary<string, double> Final(long steps, IReadOnlyList<PrefPipe.Artifacts.Rows.MetricRow> metrics)
    {
        var summary = new Dictionary<string, double> { ["steps"] = steps };
        foreach (var m in metrics.Where(m => m.Step == steps)) summary[m.Name] = m.Value;
        return summary;
    }
}

/// <summary>
/// Throughput and time left of a long step, for the plain progress lines (redirected output): the rate over the time
/// since the first observation (<see cref="Observe"/>, else the first description), and the remaining units at that rate.
/// </summary>
internal sealed class ProgressRate(string unit, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private long _startTicks = -1, _startDone;

    /// <summary>Starts counting at <paramref name="done"/> units, unless already started.</summary>
    public void Observe(long done)
    {
        if (_startTicks < 0) (_startTicks, _startDone) = (_clock.GetTimestamp(), done);
    }

    /// <summary>"12.5 prompts/s, about 20 s left" (or "…, done"); empty until a later report shows any progress.</summary>
    public string Describe(long done, long total)
    {
        if (Rate(done) is not { } rate) return "";
        string left = done >= total ? "done" : $"about {Duration((total - done) / rate)} left";
        return $"{Number(rate)} {unit}/s, {left}";
    }

    /// <summary>"48.2 comparisons/s" (no total, no time left); empty until a later report shows any progress.</summary>
    public string Throughput(long done) => Rate(done) is { } rate ? $"{Number(rate)} {unit}/s" : "";

    // Three significant digits, never an exponent: 0.0833, 12.4, 1250.
    private static string Number(double rate) => rate.ToString(rate >= 100 ? "F0" : "G3", CultureInfo.InvariantCulture);

    private double? Rate(long done)
    {
        if (_startTicks < 0)
        {
            Observe(done);
            return null;
        }
        double seconds = _clock.GetElapsedTime(_startTicks).TotalSeconds;
        if (seconds <= 0 || done <= _startDone) return null;
        return (done - _startDone) / seconds;
    }

    /// <summary>"42 s", "3 min 5 s", "2 h 10 min".</summary>
    internal static string Duration(double seconds) => seconds switch
    {
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{Math.Ceiling(seconds):F0} s"),
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{(int)(seconds / 60)} min {(int)(seconds % 60)} s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{(int)(seconds / 3600)} h {(int)(seconds % 3600 / 60)} min"),
    };
}

/// <summary>
/// Reports at most once every <paramref name="interval"/> (default 2 s), and passes every value to
/// <paramref name="every"/>, so logs stay short.
/// </summary>
internal sealed class Throttled<T>(Action<T> report, Action<T>? every = null, TimeSpan? interval = null) : IProgress<T>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(2);

    public void Report(T value)
    {
        every?.Invoke(value);
        if (_clock.Elapsed < _interval) return;
        _clock.Restart();
        report(value);
    }
}
