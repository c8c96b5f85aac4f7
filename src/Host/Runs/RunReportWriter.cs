using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Reporting;

namespace PrefPipe.Host.Runs;

/// <summary>
/// Builds <c>RUN/report.html</c> from run.json and the run's artifacts (the split report, every chart, sample pairs with
/// their judge verdicts, held-out samples of the start and final policies) and writes it through the store, atomically.
/// Reads only what the run recorded: a failed run's page shows what its completed stages wrote and where it stopped.
/// </summary>
internal static class RunReportWriter
{
    /// <summary>Pairs shown from each split set (or from rank's preferences when the run has no split).</summary>
    internal const int PairsPerSet = 3;

    /// <summary>Held-out prompts shown.</summary>
    internal const int HeldOutPrompts = 5;

    public static string PathOf(string runId) => $"{ArtifactPath.ValidateName(runId, "run id")}/report.html";

    /// <summary>Writes the page and returns its URI in the store.</summary>
    /// <param name="store">The run's store.</param>
    /// <param name="runId">The run.</param>
    /// <param name="pipeline">The run's pipeline (held-out prompt texts are read from its <c>inputs.eval_prompts</c>), or null.</param>
    /// <param name="workRoot">The run's local work folder, where training charts stay when the store is remote; or null.</param>
    /// <param name="cancellationToken">Cancels reading and writing.</param>
    /// <exception cref="ArgumentException">The run does not exist in the store.</exception>
    public static async Task<string> WriteAsync(IArtifactStore store, string runId, LoadedPipeline? pipeline, string? workRoot, CancellationToken cancellationToken = default)
    {
        var run = await RunRecord.LoadAsync(store, runId, cancellationToken).ConfigureAwait(false)
            ?? throw new ArgumentException($"run '{runId}' not found in {store.Location} (no {RunRecord.PathOf(runId)})");
        var report = await BuildAsync(store, run, pipeline, workRoot, cancellationToken).ConfigureAwait(false);
        string path = PathOf(runId);
        await store.WriteTextAsync(path, RunReportPage.Render(report), cancellationToken).ConfigureAwait(false);
        return store.UriOf(path);
    }

    internal static async Task<RunReport> BuildAsync(IArtifactStore store, RunRecord run, LoadedPipeline? pipeline, string? workRoot, CancellationToken cancellationToken)
    {
        var failed = run.Stages.FirstOrDefault(s => s.Status is StageStatus.Failed or StageStatus.Cancelled)
            ?? (run.Status is RunStatus.Failed or RunStatus.Cancelled ? run.Stages.FirstOrDefault(s => s.Status == StageStatus.Running) : null);
        return new RunReport
        {
            RunId = run.RunId,
            Pipeline = run.Pipeline,
            Status = run.Status.Name(),
            FailedStage = failed?.Name.Name(),
            Failure = failed?.Error,
            Facts = Facts(run),
            Stages = [.. run.Stages.Select(s => new ReportStage(s.Name.Name(), s.Status.Name(), s.RowsIn, s.RowsOut, s.RowsRejected, s.Seconds, StageNotes.For(s), s.Error, s.Method))],
            Artifacts = [.. run.Stages.SelectMany(s => s.Inputs.Select(a => (s, "in", a)).Concat(s.Outputs.Select(a => (s, "out", a))))
                .Select(x => new ReportArtifact(x.s.Name.Name(), x.Item2, x.a.Name, x.a.Uri, x.a.Rows, x.a.Sha256))],
            SplitReport = await SplitReportAsync(store, run, cancellationToken).ConfigureAwait(false),
            Charts = await ChartsAsync(store, run.RunId, workRoot, cancellationToken).ConfigureAwait(false),
            Pairs = await PairsAsync(store, run, cancellationToken).ConfigureAwait(false),
            HeldOut = await HeldOutAsync(store, run, pipeline, cancellationToken).ConfigureAwait(false),
        };
    }

    private static List<KeyValuePair<string, string>> Facts(RunRecord run)
    {
        var facts = new List<KeyValuePair<string, string>>
        {
            new("created", run.Created.ToString("u", CultureInfo.InvariantCulture)),
            new("plan", run.Plan.ToString().ToLowerInvariant()),
            new("config hash", run.ConfigHash),
            new("code version", run.CodeVersion),
            new("pipeline folder", run.PipelineDirectory ?? ""),
            new("stage seconds", run.Stages.Sum(s => s.Seconds).ToString("F1", CultureInfo.InvariantCulture)),
        };
        var eval = run.Stage(PipelineStage.Evaluate).Summary;
        if (eval.TryGetValue("win_rate", out double win))
        {
            facts.Add(new("win rate (final over start)", (win * 100).ToString("F1", CultureInfo.InvariantCulture) + "%"));
            facts.Add(new("mean reward start → final", string.Create(CultureInfo.InvariantCulture, $"{eval["mean_reward_start"]:F3} → {eval["mean_reward_final"]:F3}")));
            facts.Add(new("mean KL", eval["mean_kl"].ToString("F3", CultureInfo.InvariantCulture)));
        }
        return facts;
    }

    private static async Task<List<KeyValuePair<string, string>>> SplitReportAsync(IArtifactStore store, RunRecord run, CancellationToken ct)
    {
        string path = $"{run.RunId}/split/report.json";
        if (run.Stage(PipelineStage.Split).Status != StageStatus.Completed || !await store.ExistsAsync(path, ct).ConfigureAwait(false)) return [];
        await using var stream = await store.OpenReadAsync(path, ct).ConfigureAwait(false);
        using var doc = await JsonDocument.ParseAsync(stream, cancellationToken: ct).ConfigureAwait(false);
        return [.. doc.RootElement.EnumerateObject().Select(p => new KeyValuePair<string, string>(p.Name.Replace('_', ' '),
            p.Value.ValueKind == JsonValueKind.Number ? p.Value.GetDouble().ToString("G6", CultureInfo.InvariantCulture) : p.Value.ToString()))];
    }

    /// <summary>Every PNG under the run's stage folders (checkpoints and shard parts excluded), in stage order; training
    /// charts that stayed in the local work folder (a remote store) are added from there.</summary>
    private static async Task<List<ReportChart>> ChartsAsync(IArtifactStore store, string runId, string? workRoot, CancellationToken ct)
    {
        var found = new SortedDictionary<string, Func<Task<byte[]>>>(Comparer<string>.Create(ChartOrder));
        await foreach (string path in store.ListAsync($"{runId}/", ct).ConfigureAwait(false))
        {
            string relative = path[(runId.Length + 1)..];
            if (!IsChart(relative)) continue;
            found[relative] = async () =>
            {
                await using var s = await store.OpenReadAsync(path, ct).ConfigureAwait(false);
                using var m = new MemoryStream();
                await s.CopyToAsync(m, ct).ConfigureAwait(false);
                return m.ToArray();
            };
        }
        if (workRoot is not null && Directory.Exists(workRoot))
            foreach (string file in Directory.EnumerateFiles(workRoot, "*.png", SearchOption.AllDirectories))
            {
                string relative = Path.GetRelativePath(workRoot, file).Replace('\\', '/');
                if (IsChart(relative)) found.TryAdd(relative, () => File.ReadAllBytesAsync(file, ct));
            }
        var charts = new List<ReportChart>();
        foreach (var (relative, read) in found) charts.Add(new ReportChart(relative, await read().ConfigureAwait(false)));
        return charts;

        static bool IsChart(string relative) => relative.EndsWith(".png", StringComparison.OrdinalIgnoreCase) && relative.Count(c => c == '/') == 1;
    }

    private static int ChartOrder(string a, string b)
    {
        int byStage = StageIndex(a).CompareTo(StageIndex(b));
        return byStage != 0 ? byStage : string.CompareOrdinal(a, b);

        static int StageIndex(string path)
        {
            string stage = path.Split('/')[0];
            int i = Stages.All.ToList().FindIndex(s => s.Name() == stage);
            return i < 0 ? int.MaxValue : i;
        }
    }

    /// <summary>A few pairs of each split set (else of rank's preferences), with the judge calls made for their prompts.</summary>
    private static async Task<List<ReportPair>> PairsAsync(IArtifactStore store, RunRecord run, CancellationToken ct)
    {
        var sets = new List<(string Set, List<PreferenceRow> Rows)>();
        if (run.Stage(PipelineStage.Split).Status == StageStatus.Completed)
        {
            foreach (string set in new[] { "easy", "difficult" })
                if (await store.ExistsAsync($"{run.RunId}/split/{set}.parquet", ct).ConfigureAwait(false))
                    sets.Add((set, await FirstPairsAsync(store, $"{run.RunId}/split/{set}.parquet", ct).ConfigureAwait(false)));
        }
        else if (run.Stage(PipelineStage.Rank).Status == StageStatus.Completed && await store.ExistsAsync($"{run.RunId}/rank/preferences.parquet", ct).ConfigureAwait(false))
        {
            sets.Add(("preferences", await FirstPairsAsync(store, $"{run.RunId}/rank/preferences.parquet", ct).ConfigureAwait(false)));
        }
        var ids = sets.SelectMany(s => s.Rows).Select(p => p.PromptId).ToHashSet(StringComparer.Ordinal);
        var verdicts = ids.ToDictionary(id => id, _ => new List<ReportVerdict>(), StringComparer.Ordinal);
        string comparisons = $"{run.RunId}/rank/comparisons.parquet";
        if (ids.Count > 0 && await store.ExistsAsync(comparisons, ct).ConfigureAwait(false))
            await foreach (var c in ParquetArtifacts.ReadAsync<ComparisonRow>(store, comparisons, ct).ConfigureAwait(false))
                if (verdicts.TryGetValue(c.PromptId, out var list)) list.Add(new ReportVerdict(c.A, c.B, c.Verdict, c.Judge));
        return [.. sets.SelectMany(s => s.Rows.Select(p => new ReportPair(s.Set, p.PromptId, PromptText(p), p.Chosen, p.Rejected, p.ChosenIndex, p.RejectedIndex,
            p.ScoreChosen, p.ScoreRejected, p.JudgeAgrees, verdicts[p.PromptId])))];

        static string PromptText(PreferenceRow p) => p.PromptMessages is { Count: > 0 } m
            ? string.Join("\n", m.Select(t => $"{t.Role}: {t.Content}"))
            : p.Prompt;
    }

    private static async Task<List<PreferenceRow>> FirstPairsAsync(IArtifactStore store, string path, CancellationToken ct) =>
        [.. (await PreferenceArtifacts.ReadAllAsync(store, path, ct).ConfigureAwait(false)).Take(PairsPerSet)];

    /// <summary>The first held-out prompts of evaluate/samples.parquet with every sample of the start and the final policy.</summary>
    private static async Task<List<ReportHeldOut>> HeldOutAsync(IArtifactStore store, RunRecord run, LoadedPipeline? pipeline, CancellationToken ct)
    {
        string path = $"{run.RunId}/evaluate/samples.parquet";
        if (run.Stage(PipelineStage.Evaluate).Status != StageStatus.Completed || !await store.ExistsAsync(path, ct).ConfigureAwait(false)) return [];
        var byPrompt = new Dictionary<string, List<EvaluationRow>>(StringComparer.Ordinal);
        var order = new List<string>();
        await foreach (var row in ParquetArtifacts.ReadAsync<EvaluationRow>(store, path, ct).ConfigureAwait(false))
        {
            if (!byPrompt.TryGetValue(row.PromptId, out var list))
            {
                if (order.Count == HeldOutPrompts) continue;
                byPrompt[row.PromptId] = list = [];
                order.Add(row.PromptId);
            }
            list.Add(row);
        }
        var texts = await HeldOutPromptTextsAsync(pipeline, order, ct).ConfigureAwait(false);
        return [.. order.Select(id => new ReportHeldOut(id, texts.GetValueOrDefault(id),
            Samples(byPrompt[id], "start"), Samples(byPrompt[id], "final")))];

        static List<ReportSample> Samples(List<EvaluationRow> rows, string policy) =>
            [.. rows.Where(r => r.Policy == policy).OrderBy(r => r.SampleIndex).Select(r => new ReportSample(r.SampleIndex, r.Response, r.Reward, r.Kl))];
    }

    /// <summary>
    /// The texts of the held-out prompts, read from the pipeline's <c>inputs.eval_prompts</c> (evaluation names a row
    /// <c>eval-ROW</c>). The page is a courtesy: a file that moved or changed leaves the ids alone, never fails the report.
    /// </summary>
    private static async Task<Dictionary<string, string>> HeldOutPromptTextsAsync(LoadedPipeline? pipeline, IReadOnlyList<string> ids, CancellationToken ct)
    {
        var texts = new Dictionary<string, string>(StringComparer.Ordinal);
        if (pipeline?.Definition.Inputs.EvalPrompts is not { } file) return texts;
        var wanted = ids.ToHashSet(StringComparer.Ordinal);
        try
        {
            await foreach (var p in PromptSource.ReadAsync(pipeline.Resolve(file), new PromptSourceOptions { IdColumns = [] }, ct).ConfigureAwait(false))
            {
                string id = $"eval-{p.Row}";
                if (!wanted.Contains(id)) continue;
                texts[id] = p.Prompt ?? string.Join("\n", p.Messages?.Select(m => $"{m.Role}: {m.Content}") ?? []);
                if (texts.Count == wanted.Count) break;
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException or Azure.RequestFailedException)
        {
            texts.Clear();
        }
        return texts;
    }
}
