namespace PrefPipe.Splitter.Rules;

/// <summary>The facts about one preference pair the split needs.</summary>
/// <param name="Key">Stable key (prompt_id), used for ordering ties deterministically.</param>
/// <param name="Gap">r(chosen) − r(rejected); NaN when a score is missing.</param>
/// <param name="JudgeAgrees">Whether the judge's ranking agrees with the reward model's.</param>
/// <param name="ChosenLength">Chosen response length (tokens or characters, as the caller measures).</param>
/// <param name="RejectedLength">Rejected response length, same unit.</param>
internal sealed record PairFacts(string Key, double Gap, bool JudgeAgrees, int ChosenLength, int RejectedLength);

/// <summary>Where a pair went.</summary>
internal enum SplitSet
{
    Easy,
    Difficult,
    Dropped,
}

/// <summary>The split decision for one pair.</summary>
/// <param name="Index">Position in the input.</param>
/// <param name="Set">Easy, difficult or dropped.</param>
/// <param name="Flipped">Chosen and rejected were swapped (negative gap, Flip policy).</param>
/// <param name="Gap">The gap after any flip.</param>
/// <param name="Reason">Why: rule and numbers.</param>
internal sealed record SplitDecision(int Index, SplitSet Set, bool Flipped, double Gap, string Reason);

/// <summary>Assigns every pair to exactly one set by reward gap.</summary>
/// <remarks>
/// MPO (Gou &amp; Nguyen 2024, arXiv 2403.19443): a large gap → easy (the dpo stage), a small gap → difficult (the ppo stage).
/// [ours] Quantile: pairs are ordered by gap descending, then by key (so equal gaps split deterministically), and the
/// first ⌈q·n⌉ of the eligible pairs are easy; the effective threshold reported is the smallest easy gap. Negative gaps
/// follow <see cref="NegativeGapPolicy"/> before the rule; a pair with a missing score (NaN gap) is dropped with that reason.
/// </remarks>
internal static class GapSplitter
{
    public static (IReadOnlyList<SplitDecision> Decisions, double EffectiveThreshold) Split(IReadOnlyList<PairFacts> pairs, SplitterOptions options)
    {
        options.Validate();
        var decisions = new SplitDecision?[pairs.Count];
        var eligible = new List<(int Index, double Gap, bool Flipped)>();
        for (int i = 0; i < pairs.Count; i++)
        {
            double gap = pairs[i].Gap;
            if (double.IsNaN(gap))
            {
                decisions[i] = new SplitDecision(i, SplitSet.Dropped, false, gap, "missing reward score: gap is undefined");
                continue;
            }
            if (gap < 0)
            {
                switch (options.NegativeGaps)
                {
                    case NegativeGapPolicy.Drop:
                        decisions[i] = new SplitDecision(i, SplitSet.Dropped, false, gap, $"negative gap {gap:G4}: the reward model disagrees with the ranking (policy drop)");
                        continue;
                    case NegativeGapPolicy.Difficult:
                        decisions[i] = new SplitDecision(i, SplitSet.Difficult, false, gap, $"negative gap {gap:G4}: the reward model disagrees with the ranking (policy difficult)");
                        continue;
                    default:
                        eligible.Add((i, -gap, true));
                        continue;
                }
            }
            eligible.Add((i, gap, false));
        }

        double effective;
        if (options.Rule == SplitRule.Threshold)
        {
            effective = options.Threshold;
            foreach (var (index, gap, flipped) in eligible)
            {
                bool easy = gap >= options.Threshold;
                decisions[index] = new SplitDecision(index, easy ? SplitSet.Easy : SplitSet.Difficult, flipped, gap,
                    $"gap {gap:G4} {(easy ? "≥" : "<")} τ {options.Threshold:G4}");
            }
        }
        else
        {
            var ordered = eligible.OrderByDescending(e => e.Gap).ThenBy(e => pairs[e.Index].Key, StringComparer.Ordinal).ToList();
            int easyCount = (int)Math.Ceiling(options.Quantile * ordered.Count - 1e-9);
            effective = easyCount > 0 ? ordered[easyCount - 1].Gap : double.PositiveInfinity;
            for (int r = 0; r < ordered.Count; r++)
            {
                var (index, gap, flipped) = ordered[r];
                bool easy = r < easyCount;
                decisions[index] = new SplitDecision(index, easy ? SplitSet.Easy : SplitSet.Difficult, flipped, gap,
                    $"gap {gap:G4} ranks {r + 1} of {ordered.Count}: {(easy ? "within" : "outside")} the top q = {options.Quantile:G4}");
            }
        }
        return (decisions.Select(d => d!).ToList(), effective);
    }
}
