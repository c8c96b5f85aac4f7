using System.Globalization;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Reward;
using PrefPipe.Models.Tokenizers;
using PrefPipe.Ranking.Ipr;
using PrefPipe.Ranking.Judges;

namespace PrefPipe.Ranking;

/// <summary>Progress of the ranking stage.</summary>
/// <param name="Phase">scoring or ranking.</param>
/// <param name="Done">Items done in this phase.</param>
/// <param name="Total">Items in this phase.</param>
public sealed record RankingProgress(string Phase, int Done, int Total);

/// <summary>What the ranking stage wrote.</summary>
/// <param name="Scored">Scored candidates.</param>
/// <param name="Comparisons">Every judge call.</param>
/// <param name="Preferences">Chosen/rejected pairs.</param>
/// <param name="Unpaired">Prompts with no pair, with the reason.</param>
/// <param name="PromptsIn">Prompts read from the candidates.</param>
/// <param name="JudgeCalls">Judge calls made.</param>
public sealed record RankingResult(ArtifactInfo Scored, ArtifactInfo Comparisons, ArtifactInfo Preferences, ArtifactInfo Unpaired, int PromptsIn, int JudgeCalls);

/// <summary>
/// Stage 2: candidates → reward-model scores → iterative pairwise ranking with a judge → chosen/rejected pairs.
/// The reward model reads prompt + response as one text (what it was trained on). Every prompt ends up in
/// preferences or unpaired (all candidates tied, or fewer than two scorable candidates).
/// </summary>
public sealed class RankingStage(RankingOptions options, HttpClient? httpClient = null)
{
    /// <summary>Runs the stage on a candidates artifact.</summary>
    public async Task<RankingResult> RunAsync(IArtifactStore store, string candidatesPath, string rewardModelDirectory, string prefix,
        IProgress<RankingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, candidatesPath, cancellationToken).ConfigureAwait(false);
        var byPrompt = candidates.GroupBy(c => c.PromptId, StringComparer.Ordinal).ToList();

        // 1. Reward scores for every candidate.
        var tokenizer = HfTokenizer.Load(rewardModelDirectory);
        var scores = new Dictionary<(string, int), float>();
        var scoredRows = new List<ScoredCandidateRow>(candidates.Count);
        using (var reward = OnnxRewardModel.Load(rewardModelDirectory, tokenizer, options.Reward))
        {
            var texts = candidates.Select(c => c.Prompt + c.Response).ToList();
            var result = reward.ScoreTexts(texts, new Progress<int>(n => progress?.Report(new RankingProgress("scoring", n, texts.Count))), cancellationToken);
            var reasons = result.Rejections.ToDictionary(r => r.Index, r => r.Reason);
            for (int i = 0; i < candidates.Count; i++)
            {
                var c = candidates[i];
                bool ok = !reasons.ContainsKey(i);
                if (ok) scores[(c.PromptId, c.CandidateIndex)] = result.Scores[i];
                scoredRows.Add(new ScoredCandidateRow { PromptId = c.PromptId, CandidateIndex = c.CandidateIndex, Reward = ok ? result.Scores[i] : null, Reason = ok ? null : reasons[i] });
            }
        }

        // 2. IPR with the judge.
        IPairwiseJudge judge = options.Judge == "llm"
            ? new LlmJudge(httpClient ?? new HttpClient(), options.Llm!)
            : new RewardJudge(scores, options.TieEpsilon);
        var ranker = new IterativePairwiseRanker(judge);
        var comparisons = new List<ComparisonRow>();
        var preferences = new List<PreferenceRow>();
        var unpaired = new List<RejectRow>();
        int calls = 0, done = 0;
        foreach (var group in byPrompt)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var scorable = group.Where(c => scores.ContainsKey((c.PromptId, c.CandidateIndex))).OrderBy(c => c.CandidateIndex).ToList();
            progress?.Report(new RankingProgress("ranking", ++done, byPrompt.Count));
            if (scorable.Count < 2)
            {
                unpaired.Add(Unpaired(group.Key, candidatesPath, $"{scorable.Count} scorable candidate(s) of {group.Count()}; a pair needs two"));
                continue;
            }
            string prompt = scorable[0].Prompt;
            var outcome = await ranker.RankAsync(group.Key, prompt, scorable.Select(c => new RankCandidate(c.CandidateIndex, c.Response)).ToList(), cancellationToken).ConfigureAwait(false);
            calls += outcome.JudgeCalls;
            comparisons.AddRange(outcome.Comparisons.Select(c => new ComparisonRow
            {
                PromptId = c.PromptId, A = c.A, B = c.B, Order = c.Order, Verdict = c.Verdict.ToString().ToLowerInvariant(),
                Judge = c.Judge, LatencyMs = c.LatencyMs, Raw = c.Raw,
            }));
            if (!outcome.Paired)
            {
                unpaired.Add(Unpaired(group.Key, candidatesPath, outcome.Best is null
                    ? $"all {scorable.Count} candidates tied (no candidate beat another in both orders)"
                    : "the best and the worst candidate are the same (intransitive verdicts)"));
                continue;
            }
            var chosen = scorable.First(c => c.CandidateIndex == outcome.Best);
            var rejected = scorable.First(c => c.CandidateIndex == outcome.Worst);
            double sc = scores[(chosen.PromptId, chosen.CandidateIndex)], sr = scores[(rejected.PromptId, rejected.CandidateIndex)];
            preferences.Add(new PreferenceRow
            {
                PromptId = group.Key, Prompt = prompt, Chosen = chosen.Response, Rejected = rejected.Response,
                ScoreChosen = sc, ScoreRejected = sr, RewardGap = sc - sr, JudgeAgrees = sc > sr,
                Method = $"ipr:{judge.Name}", ChosenIndex = chosen.CandidateIndex, RejectedIndex = rejected.CandidateIndex,
            });
        }
        if (judge is IDisposable disposable) disposable.Dispose();

        var meta = new Dictionary<string, string> { ["judge"] = judge.Name, ["reward_model"] = Path.GetFileName(Path.GetFullPath(rewardModelDirectory)) };
        return new RankingResult(
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/scored_candidates.parquet", scoredRows, meta, cancellationToken).ConfigureAwait(false),
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/comparisons.parquet", comparisons, meta, cancellationToken).ConfigureAwait(false),
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/preferences.parquet", preferences, meta, cancellationToken).ConfigureAwait(false),
            await ParquetArtifacts.WriteAsync(store, $"{prefix}/unpaired.parquet", unpaired, meta, cancellationToken).ConfigureAwait(false),
            byPrompt.Count, calls);
    }

    private static RejectRow Unpaired(string promptId, string source, string reason) =>
        new() { Stage = "rank", Source = source, Row = -1, Key = promptId, Reason = reason };

    /// <summary>Formats counts for logs.</summary>
    public static string Describe(RankingResult r) => string.Create(CultureInfo.InvariantCulture,
        $"{r.PromptsIn} prompts → {r.Preferences.Rows} pairs, {r.Unpaired.Rows} unpaired, {r.JudgeCalls} judge calls");
}
