using System.Diagnostics;
using System.Globalization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Sharding;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Reward;
using PrefPipe.Ranking.Ipr;
using PrefPipe.Ranking.Judges;
using PrefPipe.Ranking.Pointwise;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Ranking;

/// <summary>Progress of the ranking stage.</summary>
/// <param name="Phase">scoring (candidates) or ranking (prompts).</param>
/// <param name="Done">Items done in this phase.</param>
/// <param name="Total">Items in this phase.</param>
/// <param name="JudgeCalls">Judge calls made so far (ranking).</param>
public sealed record RankingProgress(string Phase, int Done, int Total, int JudgeCalls = 0);

/// <summary>What the ranking stage wrote.</summary>
/// <param name="Scored">Scored candidates.</param>
/// <param name="Comparisons">Every judge call.</param>
/// <param name="Preferences">Chosen/rejected pairs.</param>
/// <param name="Unpaired">Prompts with no pair, with the reason.</param>
/// <param name="PromptsIn">Prompts read from the candidates.</param>
/// <param name="JudgeCalls">Judge calls made.</param>
public sealed record RankingResult(ArtifactInfo Scored, ArtifactInfo Comparisons, ArtifactInfo Preferences, ArtifactInfo Unpaired, int PromptsIn, int JudgeCalls);

/// <summary>
/// The rank stage: candidates → reward-model scores → iterative pairwise ranking with a judge → chosen/rejected pairs.
/// The reward model reads prompt + response as one text (what it was trained on). Every prompt ends up in
/// preferences or unpaired (all candidates tied, or fewer than two scorable candidates).
/// </summary>
/// <remarks>
/// Pairs carry the prompt as the input gave it, read from the prompts artifact beside the candidates (ingest writes
/// both): plain prompts give TRL standard pairs whose prompt is the raw text, conversations give TRL conversational pairs
/// (<see cref="PreferenceArtifacts"/>). The ids generation used travel with every pair. Without a prompts artifact the
/// candidates' prompt text (as the policy saw it) is all there is, and pairs carry that.
/// </remarks>
public sealed class RankingStage
{
    private readonly RankingOptions _options;
    private readonly HttpClient? _httpClient;

    /// <summary>Creates the stage; the options are checked here, so a bad value fails before any input is read.</summary>
    /// <param name="options">The stage's options.</param>
    /// <param name="httpClient">The LLM judge's client; default: a new one.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is invalid; the message names each.</exception>
    public RankingStage(RankingOptions options, HttpClient? httpClient = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _httpClient = httpClient;
    }

    /// <summary>Runs the stage on a candidates artifact.</summary>
    public async Task<RankingResult> RunAsync(IArtifactStore store, string candidatesPath, string rewardModelDirectory, string prefix,
        IProgress<RankingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, candidatesPath, cancellationToken).ConfigureAwait(false);
        var prompts = await ReadPromptsAsync(store, candidatesPath, cancellationToken).ConfigureAwait(false);
        var ranked = await RankAsync(candidates, prompts, candidatesPath, rewardModelDirectory, progress, cancellationToken).ConfigureAwait(false);
        return await WriteAsync(store, prefix, ranked, rewardModelDirectory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs the stage on one shard of the candidates: the prompts whose id hashes to <paramref name="shard"/>
    /// (<see cref="Shard.Of"/>), written under <paramref name="shardPrefix"/> with the stage's artifact names. A prompt's
    /// candidates all fall in one shard, so ranking per shard makes the same pairs as ranking the whole input.
    /// </summary>
    public async Task<RankingResult> RunShardAsync(IArtifactStore store, string candidatesPath, string rewardModelDirectory, string shardPrefix, Shard shard,
        IProgress<RankingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, candidatesPath, cancellationToken).ConfigureAwait(false);
        var mine = candidates.Where(c => shard.Contains(c.PromptId)).ToList();
        var prompts = await ReadPromptsAsync(store, candidatesPath, cancellationToken).ConfigureAwait(false);
        var ranked = await RankAsync(mine, prompts, candidatesPath, rewardModelDirectory, progress, cancellationToken).ConfigureAwait(false);
        return await WriteAsync(store, shardPrefix, ranked, rewardModelDirectory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Merges the shards' artifacts (every shard of <paramref name="count"/>, under <paramref name="shardPrefix"/>) into the
    /// stage's artifacts under <paramref name="prefix"/>, in the order the unsharded stage writes them: scored candidates
    /// in candidate order, comparisons, pairs and unpaired prompts in the order prompts first appear in the candidates.
    /// </summary>
    /// <exception cref="InvalidDataException">A shard holds a row of a prompt outside it, or a prompt appears in no shard.</exception>
    public async Task<RankingResult> MergeShardsAsync(IArtifactStore store, string candidatesPath, string rewardModelDirectory, Func<Shard, string> shardPrefix, int count, string prefix,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(shardPrefix);
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, candidatesPath, cancellationToken).ConfigureAwait(false);
        var promptOrder = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in candidates) promptOrder.TryAdd(c.PromptId, promptOrder.Count);
        var shardOf = promptOrder.Keys.ToDictionary(id => id, id => Shard.Of(id, count), StringComparer.Ordinal);

        var scored = new List<(int Position, ScoredCandidateRow Row)>(candidates.Count);
        var comparisons = new List<ComparisonRow>();
        var preferences = new List<PreferenceRow>();
        var unpaired = new List<RejectRow>();
        for (int i = 0; i < count; i++)
        {
            var shard = new Shard(i, count);
            string folder = shardPrefix(shard);
            // The shard's scored rows are its candidates in input order: pair them with their positions.
            var positions = Enumerable.Range(0, candidates.Count).Where(p => shardOf[candidates[p].PromptId] == i).ToList();
            var rows = await ParquetArtifacts.ReadAllAsync<ScoredCandidateRow>(store, $"{folder}/scored_candidates.parquet", cancellationToken).ConfigureAwait(false);
            if (rows.Count != positions.Count)
                throw new InvalidDataException($"{store.UriOf($"{folder}/scored_candidates.parquet")}: {rows.Count} rows, but shard {shard} of {candidatesPath} has {positions.Count} candidates");
            for (int r = 0; r < rows.Count; r++)
            {
                var c = candidates[positions[r]];
                if (rows[r].PromptId != c.PromptId || rows[r].CandidateIndex != c.CandidateIndex)
                    throw new InvalidDataException($"{store.UriOf($"{folder}/scored_candidates.parquet")}: row {r} is ({rows[r].PromptId}, {rows[r].CandidateIndex}), expected ({c.PromptId}, {c.CandidateIndex})");
                scored.Add((positions[r], rows[r]));
            }
            comparisons.AddRange(Checked(await ParquetArtifacts.ReadAllAsync<ComparisonRow>(store, $"{folder}/comparisons.parquet", cancellationToken).ConfigureAwait(false), r => r.PromptId, folder, "comparisons", shard));
            preferences.AddRange(Checked(await PreferenceArtifacts.ReadAllAsync(store, $"{folder}/preferences.parquet", cancellationToken).ConfigureAwait(false), r => r.PromptId, folder, "preferences", shard));
            unpaired.AddRange(Checked(await ParquetArtifacts.ReadAllAsync<RejectRow>(store, $"{folder}/unpaired.parquet", cancellationToken).ConfigureAwait(false), r => r.Key ?? "", folder, "unpaired", shard));
        }

        IEnumerable<T> Checked<T>(List<T> rows, Func<T, string> id, string folder, string name, Shard shard)
        {
            foreach (var row in rows)
                if (!shardOf.TryGetValue(id(row), out int s) || s != shard.Index)
                    throw new InvalidDataException($"{store.UriOf($"{folder}/{name}.parquet")}: prompt '{id(row)}' does not belong to shard {shard} of {candidatesPath}");
            return rows;
        }

        // OrderBy is stable: rows of one prompt keep the order their shard wrote them in.
        var ranked = new RankedRows(
            [.. scored.OrderBy(s => s.Position).Select(s => s.Row)],
            [.. comparisons.OrderBy(r => promptOrder[r.PromptId])],
            [.. preferences.OrderBy(r => promptOrder[r.PromptId])],
            [.. unpaired.OrderBy(r => promptOrder[r.Key!])],
            promptOrder.Count, comparisons.Count, JudgeName);
        return await WriteAsync(store, prefix, ranked, rewardModelDirectory, cancellationToken).ConfigureAwait(false);
    }

    private string JudgeName => _options.Judge == JudgeKind.Llm ? $"llm:{_options.Llm!.Model}" : "reward";

    private sealed record RankedRows(List<ScoredCandidateRow> Scored, List<ComparisonRow> Comparisons, List<PreferenceRow> Preferences, List<RejectRow> Unpaired,
        int PromptsIn, int JudgeCalls, string Judge);

    private static async Task<RankingResult> WriteAsync(IArtifactStore store, string prefix, RankedRows r, string rewardModelDirectory, CancellationToken cancellationToken)
    {
        var meta = new Dictionary<string, string> { ["judge"] = r.Judge, ["reward_model"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(rewardModelDirectory))) };
        return new RankingResult(
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/scored_candidates.parquet", r.Scored, meta, cancellationToken).ConfigureAwait(false),
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/comparisons.parquet", r.Comparisons, meta, cancellationToken).ConfigureAwait(false),
            await PreferenceArtifacts.WriteAsync(store, $"{prefix}/preferences.parquet", r.Preferences, meta, cancellationToken).ConfigureAwait(false),
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/unpaired.parquet", r.Unpaired, meta, cancellationToken).ConfigureAwait(false),
            r.PromptsIn, r.JudgeCalls);
    }

    /// <summary>The prompts artifact beside <paramref name="candidatesPath"/> by prompt id, or null when there is none.</summary>
    private static async Task<Dictionary<string, PromptRow>?> ReadPromptsAsync(IArtifactStore store, string candidatesPath, CancellationToken cancellationToken)
    {
        int slash = candidatesPath.LastIndexOf('/');
        string path = $"{candidatesPath[..(slash + 1)]}prompts.parquet";
        if (!await store.ExistsAsync(path, cancellationToken).ConfigureAwait(false)) return null;
        var rows = await ParquetArtifacts.ReadAllAsync<PromptRow>(store, path, cancellationToken).ConfigureAwait(false);
        return rows.ToDictionary(r => r.PromptId, StringComparer.Ordinal);
    }

    private async Task<RankedRows> RankAsync(List<CandidateRow> candidates, Dictionary<string, PromptRow>? prompts, string candidatesPath, string rewardModelDirectory,
        IProgress<RankingProgress>? progress, CancellationToken cancellationToken)
    {
        var byPrompt = candidates.GroupBy(c => c.PromptId, StringComparer.Ordinal).ToList();
        // 1. Reward scores for every candidate.
        var tokenizer = HfTokenizer.Load(rewardModelDirectory);
        var scores = new Dictionary<(string, int), float>();
        var scoredRows = new List<ScoredCandidateRow>(candidates.Count);
        using (var reward = OnnxRewardModel.Load(rewardModelDirectory, tokenizer, _options.Reward))
        {
            var texts = candidates.Select(c => c.Prompt + c.Response).ToList();
            var result = reward.ScoreTexts(texts, progress is null ? null : new Inline<int>(n => progress.Report(new RankingProgress("scoring", n, texts.Count))), cancellationToken);
            var reasons = result.Rejections.ToDictionary(r => r.Index, r => r.Reason);
            for (int i = 0; i < candidates.Count; i++)
            {
                var c = candidates[i];
                bool ok = !reasons.ContainsKey(i);
                if (ok) scores[(c.PromptId, c.CandidateIndex)] = result.Scores[i];
                scoredRows.Add(new ScoredCandidateRow { PromptId = c.PromptId, CandidateIndex = c.CandidateIndex, Reward = ok ? result.Scores[i] : null, Reason = ok ? null : reasons[i] });
            }
        }

        // 2. IPR with the judge, or pointwise best and worst by score.
        bool pointwise = _options.Method == RankingMethod.Pointwise;
        IPairwiseJudge judge = _options.Judge == JudgeKind.Llm
            ? new LlmJudge(_httpClient ?? new HttpClient(), _options.Llm!)
            : new RewardJudge(scores, _options.TieEpsilon);
        var ranker = new IterativePairwiseRanker(judge);
        var comparisons = new List<ComparisonRow>();
        var preferences = new List<PreferenceRow>();
        var unpaired = new List<RejectRow>();
        int calls = 0, done = 0, batchIndex = 0;
        // A judge batch span per BatchPrompts prompts (pairwise only), under the caller's stage or shard span.
        foreach (var batch in byPrompt.Chunk(RankingTelemetry.BatchPrompts))
        {
            using var span = pointwise ? null : RankingTelemetry.Source.StartActivity("judge batch");
            int callsBefore = calls;
            span?.SetTag("prefpipe.judge.kind", RankingTelemetry.Kind(judge.Name));
            if (_options.Judge == JudgeKind.Llm) span?.SetTag("prefpipe.judge.model", _options.Llm!.Model);
            span?.SetTag("prefpipe.batch.index", batchIndex++);
            span?.SetTag("prefpipe.batch.prompts", batch.Length);
            try
            {
                foreach (var group in batch)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var scorable = group.Where(c => scores.ContainsKey((c.PromptId, c.CandidateIndex))).OrderBy(c => c.CandidateIndex).ToList();
                    progress?.Report(new RankingProgress("ranking", done++, byPrompt.Count, calls));
                    if (scorable.Count < 2)
                    {
                        unpaired.Add(Unpaired(group.Key, candidatesPath, $"{scorable.Count} scorable candidate(s) of {group.Count()}; a pair needs two"));
                        continue;
                    }
                    string prompt = scorable[0].Prompt;
                    // The prompt as the input gave it (the ids say what the policy saw); the rendered text only when that is all there is.
                    PromptRow? input = null;
                    if (prompts is not null && !prompts.TryGetValue(group.Key, out input))
                        throw new InvalidDataException($"{candidatesPath}: prompt '{group.Key}' is not in the prompts artifact beside it; candidates and prompts come from different ingests");
                    var messages = input?.Messages is { Count: > 0 } turns ? turns : null;
                    // The judge reads what the user asked (plain text or the conversation), never the policy's chat-template rendering.
                    string judgePrompt = messages is not null ? JudgePromptText(messages) : input?.Prompt ?? prompt;
                    var outcome = pointwise
                        ? PointwiseRanker.Rank(scorable.Select(c => (c.CandidateIndex, (double)scores[(c.PromptId, c.CandidateIndex)])).ToList(), _options.TieEpsilon)
                        : await ranker.RankAsync(group.Key, judgePrompt, scorable.Select(c => new RankCandidate(c.CandidateIndex, c.Response)).ToList(), cancellationToken).ConfigureAwait(false);
                    calls += outcome.JudgeCalls;
                    comparisons.AddRange(outcome.Comparisons.Select(c => new ComparisonRow
                    {
                        PromptId = c.PromptId, A = c.A, B = c.B, Order = c.Order, Verdict = c.Verdict.ToString().ToLowerInvariant(),
                        Judge = c.Judge, LatencyMs = c.LatencyMs, Raw = c.Raw,
                    }));
                    if (!outcome.Paired)
                    {
                        unpaired.Add(Unpaired(group.Key, candidatesPath, outcome.Best is null
                            ? pointwise
                                ? $"all {scorable.Count} candidates tied (best and worst reward differ by less than tie_epsilon {_options.TieEpsilon.ToString(CultureInfo.InvariantCulture)})"
                                : $"all {scorable.Count} candidates tied (no candidate beat another in both orders)"
                            : "the best and the worst candidate are the same (intransitive verdicts)"));
                        continue;
                    }
                    var chosen = scorable.First(c => c.CandidateIndex == outcome.Best);
                    var rejected = scorable.First(c => c.CandidateIndex == outcome.Worst);
                    double sc = scores[(chosen.PromptId, chosen.CandidateIndex)], sr = scores[(rejected.PromptId, rejected.CandidateIndex)];
                    preferences.Add(new PreferenceRow
                    {
                        PromptId = group.Key,
                        Prompt = messages is not null ? messages.LastOrDefault(t => t.Role == "user")?.Content ?? messages[^1].Content : input?.Prompt ?? prompt,
                        PromptMessages = messages,
                        Chosen = chosen.Response, Rejected = rejected.Response,
                        ScoreChosen = sc, ScoreRejected = sr, RewardGap = sc - sr, JudgeAgrees = sc > sr,
                        Method = pointwise ? "pointwise:reward" : $"ipr:{judge.Name}", ChosenIndex = chosen.CandidateIndex, RejectedIndex = rejected.CandidateIndex,
                        PromptInputIds = scorable[0].PromptInputIds, ChosenInputIds = chosen.ResponseInputIds, RejectedInputIds = rejected.ResponseInputIds,
                    });
                }
            }
            catch (Exception ex) when (span is not null)
            {
                span.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
                throw;
            }
            finally
            {
                span?.SetTag("prefpipe.batch.comparisons", calls - callsBefore);
            }
        }
        progress?.Report(new RankingProgress("ranking", done, byPrompt.Count, calls));
        if (judge is IDisposable disposable) disposable.Dispose();

        return new RankedRows(scoredRows, comparisons, preferences, unpaired, byPrompt.Count, calls, pointwise ? "pointwise" : judge.Name);
    }

    /// <summary>
    /// A conversation as the judge reads it: a single user turn is its text; anything else a transcript, one
    /// "Role: content" paragraph per turn (System, User, Assistant, ...), so the judge sees the whole exchange.
    /// </summary>
    internal static string JudgePromptText(IReadOnlyList<ChatTurnRow> messages)
    {
        if (messages is [{ Role: "user" } only]) return only.Content;
        return string.Join("\n\n", messages.Select(m =>
            (m.Role.Length > 0 ? char.ToUpperInvariant(m.Role[0]) + m.Role[1..] : "Unknown") + ": " + m.Content));
    }

    private static RejectRow Unpaired(string promptId, string source, string reason) =>
        new() { Stage = "rank", Source = source, Row = -1, Key = promptId, Reason = reason };

    /// <summary>Reports on the caller's thread, in order (Progress&lt;T&gt; posts to the thread pool and can reorder reports).</summary>
    private sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    /// <summary>Formats counts for logs.</summary>
    public static string Describe(RankingResult r) => string.Create(CultureInfo.InvariantCulture,
        $"{r.PromptsIn} prompts → {r.Preferences.Rows} pairs, {r.Unpaired.Rows} unpaired, {r.JudgeCalls} judge calls");
}
