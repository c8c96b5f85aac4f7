using PrefPipe.Ranking.Ipr;

namespace PrefPipe.Ranking.Pointwise;

/// <summary>
/// Pointwise best-vs-worst: the chosen candidate is the one with the highest reward score, the rejected one the lowest
/// (the first by candidate index among equal scores). No judge calls. The baseline iterative pairwise ranking is
/// compared against.
/// </summary>
internal static class PointwiseRanker
{
    /// <summary>Picks best and worst by score; no pair when they differ by less than <paramref name="tieEpsilon"/> (or not at all).</summary>
    /// <param name="scored">(candidate index, reward score) of a prompt's scorable candidates.</param>
    /// <param name="tieEpsilon">Scores closer than this are a tie, as for the reward judge.</param>
    public static RankingOutcome Rank(IReadOnlyList<(int Index, double Score)> scored, double tieEpsilon)
    {
        ArgumentNullException.ThrowIfNull(scored);
        if (scored.Count < 2) return new RankingOutcome(null, null, [], 0);
        var best = scored[0];
        var worst = scored[0];
        foreach (var c in scored.Skip(1))
        {
            if (c.Score > best.Score || (c.Score == best.Score && c.Index < best.Index)) best = c;
            if (c.Score < worst.Score || (c.Score == worst.Score && c.Index < worst.Index)) worst = c;
        }
        double gap = best.Score - worst.Score;
        return gap > 0 && gap >= tieEpsilon
            ? new RankingOutcome(best.Index, worst.Index, [], 0)
            : new RankingOutcome(null, null, [], 0);
    }
}
