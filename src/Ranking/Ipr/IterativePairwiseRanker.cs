using System.Diagnostics;
using PrefPipe.Ranking.Judges;

namespace PrefPipe.Ranking.Ipr;

/// <summary>A candidate response to rank.</summary>
/// <param name="Index">Candidate index within its prompt.</param>
/// <param name="Response">The response text.</param>
public sealed record RankCandidate(int Index, string Response);

/// <summary>One judge call, as recorded in the comparisons artifact.</summary>
/// <param name="PromptId">The prompt.</param>
/// <param name="A">Candidate shown first.</param>
/// <param name="B">Candidate shown second.</param>
/// <param name="Order">"ab" when the lower index was shown first, else "ba".</param>
/// <param name="Verdict">The judge's verdict about (A, B) as shown.</param>
/// <param name="Judge">Judge name.</param>
/// <param name="LatencyMs">Wall time of the call in milliseconds.</param>
/// <param name="Raw">The judge's raw output, if any.</param>
public sealed record ComparisonRecord(string PromptId, int A, int B, string Order, Verdict Verdict, string Judge, double LatencyMs, string? Raw);

/// <summary>The outcome of ranking one prompt's candidates.</summary>
/// <param name="Best">Index of the best candidate (chosen), or null when every comparison tied.</param>
/// <param name="Worst">Index of the worst candidate (rejected), or null when every comparison tied.</param>
/// <param name="Comparisons">Every judge call made for this prompt (cache hits are not calls and are not repeated).</param>
/// <param name="JudgeCalls">Number of judge calls.</param>
public sealed record RankingOutcome(int? Best, int? Worst, IReadOnlyList<ComparisonRecord> Comparisons, int JudgeCalls)
{
    /// <summary>True when the prompt yields a chosen/rejected pair.</summary>
    public bool Paired => Best is not null && Worst is not null && Best != Worst;
}

/// <summary>
/// Iterative pairwise ranking (IPR): best and worst of K by sequential comparisons, each asked in both orders.
/// </summary>
/// <remarks>
/// [ours, after Chen et al. 2024, arXiv 2411.05875] Best: the incumbent c* starts as the first candidate; for k = 2..K
/// the judge compares (c*, y_k) and (y_k, c*); y_k replaces c* only if it wins both orders. An order-dependent verdict
/// counts as a tie and keeps c* (position bias, FastChat #3911). Worst: the same with "loses both orders". Verdicts are
/// cached per (pair, order), so the worst pass reuses the best pass's calls: at most 2(K−1) calls per direction, fewer
/// in total. Order-insensitive judges are asked once per pair. Prompts where no candidate ever beat another in both
/// orders have no pair.
/// </remarks>
internal sealed class IterativePairwiseRanker(IPairwiseJudge judge)
{
    /// <summary>Ranks one prompt's candidates.</summary>
    public async Task<RankingOutcome> RankAsync(string promptId, string prompt, IReadOnlyList<RankCandidate> candidates,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count < 2) return new RankingOutcome(null, null, [], 0);
        var cache = new Dictionary<(int First, int Second), Verdict>();
        string kind = RankingTelemetry.Kind(judge.Name);
        var records = new List<ComparisonRecord>();

        // Verdict as "which of (x, y) wins", asked with x first.
        async Task<Verdict> Ask(RankCandidate x, RankCandidate y)
        {
            if (cache.TryGetValue((x.Index, y.Index), out var hit)) return hit;
            if (!judge.OrderSensitive && cache.TryGetValue((y.Index, x.Index), out var mirrored))
                return mirrored switch { Verdict.A => Verdict.B, Verdict.B => Verdict.A, _ => Verdict.Tie };
            cancellationToken.ThrowIfCancellationRequested();
            var sw = Stopwatch.StartNew();
            JudgeVerdict v;
            try
            {
                v = await judge.CompareAsync(new JudgeRequest(promptId, prompt, x.Index, x.Response, y.Index, y.Response), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                RankingTelemetry.JudgeCalls.Add(1, new("prefpipe.judge.kind", kind), new("prefpipe.judge.outcome", "error"));
                throw;
            }
            RankingTelemetry.JudgeCalls.Add(1, new("prefpipe.judge.kind", kind), new("prefpipe.judge.outcome", Outcome(v.Verdict)));
            records.Add(new ComparisonRecord(promptId, x.Index, y.Index, x.Index < y.Index ? "ab" : "ba", v.Verdict, judge.Name, sw.Elapsed.TotalMilliseconds, v.Raw));
            cache[(x.Index, y.Index)] = v.Verdict;
            return v.Verdict;
        }

        // +1: challenger strictly better in both orders; −1: strictly worse in both; 0: tie or order-dependent.
        async Task<int> Duel(RankCandidate incumbent, RankCandidate challenger)
        {
            var first = await Ask(incumbent, challenger).ConfigureAwait(false);   // challenger is B
            var second = await Ask(challenger, incumbent).ConfigureAwait(false);  // challenger is A
            if (first == Verdict.B && second == Verdict.A) return 1;
            if (first == Verdict.A && second == Verdict.B) return -1;
            return 0;
        }

        var best = candidates[0];
        var worst = candidates[0];
        bool anyDecisive = false;
        for (int k = 1; k < candidates.Count; k++)
        {
            int d = await Duel(best, candidates[k]).ConfigureAwait(false);
            anyDecisive |= d != 0;
            if (d > 0) best = candidates[k];
        }
        for (int k = 1; k < candidates.Count; k++)
        {
            int d = await Duel(worst, candidates[k]).ConfigureAwait(false);
            anyDecisive |= d != 0;
            if (d < 0) worst = candidates[k];
        }
        return anyDecisive
            ? new RankingOutcome(best.Index, worst.Index, records, records.Count)
            : new RankingOutcome(null, null, records, records.Count);
    }

    private static string Outcome(Verdict v) => v switch { Verdict.A => "a", Verdict.B => "b", _ => "tie" };
}
