using PrefPipe.Ranking.Ipr;
using PrefPipe.Ranking.Judges;

namespace PrefPipe.Ranking.Tests.Ipr;

public sealed class IterativePairwiseRankerTests
{
    private static RankCandidate[] Candidates(int k) => Enumerable.Range(0, k).Select(i => new RankCandidate(i, $"response {i}")).ToArray();

    private static RewardJudge Rewards(params float[] scores) =>
        new(scores.Select((s, i) => (i, s)).ToDictionary(x => ("p", x.i), x => x.s), epsilon: 0.05);

    /// <summary>A judge given as a function of (first, second) indices; counts calls per ordered pair.</summary>
    private sealed class FuncJudge(Func<int, int, Verdict> decide) : IPairwiseJudge
    {
        public Dictionary<(int, int), int> Calls { get; } = [];

        public string Name => "func";

        public bool OrderSensitive => true;

        public ValueTask<JudgeVerdict> CompareAsync(JudgeRequest request, CancellationToken cancellationToken = default)
        {
            Calls[(request.IndexA, request.IndexB)] = Calls.GetValueOrDefault((request.IndexA, request.IndexB)) + 1;
            return ValueTask.FromResult(new JudgeVerdict(decide(request.IndexA, request.IndexB)));
        }
    }

    [Fact]
    public async Task RankAsync_RewardJudge_PicksHighestAsChosenAndLowestAsRejected()
    {
        var ranker = new IterativePairwiseRanker(Rewards(0.3f, 1.7f, -2.0f, 0.9f, 1.2f));

        var outcome = await ranker.RankAsync("p", "prompt", Candidates(5));

        Assert.True(outcome.Paired);
        Assert.Equal(1, outcome.Best);
        Assert.Equal(2, outcome.Worst);
        // Order-insensitive judge: each unordered pair asked once; best pass 4 pairs, worst pass reuses (0,1)..: ≤ 8 calls.
        Assert.InRange(outcome.JudgeCalls, 4, 8);
        Assert.All(outcome.Comparisons, c => Assert.Equal("reward", c.Judge));
    }

    [Fact]
    public async Task RankAsync_PositionBiasedJudge_CountsOrderDependentVerdictsAsTiesAndLeavesPromptUnpaired()
    {
        var judge = new FuncJudge((_, _) => Verdict.A); // always prefers whatever is shown first
        var ranker = new IterativePairwiseRanker(judge);

        var outcome = await ranker.RankAsync("p", "prompt", Candidates(4));

        Assert.False(outcome.Paired);
        Assert.Null(outcome.Best);
        Assert.Equal(6, outcome.JudgeCalls); // (0,k) and (k,0) for k = 1..3; the worst pass hits the cache only
        Assert.All(judge.Calls.Values, n => Assert.Equal(1, n));
    }

    [Fact]
    public async Task RankAsync_OrderSensitiveJudge_AsksBothOrdersAndNeverTheSameQuestionTwice()
    {
        int[] quality = [2, 5, 1, 4];
        var judge = new FuncJudge((a, b) => quality[a] > quality[b] ? Verdict.A : quality[a] < quality[b] ? Verdict.B : Verdict.Tie);
        var ranker = new IterativePairwiseRanker(judge);

        var outcome = await ranker.RankAsync("p", "prompt", Candidates(4));

        Assert.Equal(1, outcome.Best);
        Assert.Equal(2, outcome.Worst);
        Assert.All(judge.Calls.Values, n => Assert.Equal(1, n));
        Assert.InRange(outcome.JudgeCalls, 6, 12); // 2(K−1) per direction at most, fewer with the cache
        Assert.Contains(outcome.Comparisons, c => c.A == 1 && c.B == 0 && c.Order == "ba");
    }

    [Fact]
    public async Task RankAsync_ChallengerWinsOnlyOneOrder_DoesNotReplaceIncumbent()
    {
        // Candidate 1 beats 0 only when shown first: order-dependent → tie → 0 stays best.
        var judge = new FuncJudge((a, b) => (a, b) switch { (0, 1) => Verdict.A, (1, 0) => Verdict.A, (0, 2) => Verdict.A, (2, 0) => Verdict.B, _ => Verdict.Tie });
        var outcome = await new IterativePairwiseRanker(judge).RankAsync("p", "prompt", Candidates(3));

        Assert.Equal(0, outcome.Best);
        Assert.Equal(2, outcome.Worst);
    }

    [Fact]
    public async Task RankAsync_RewardsWithinEpsilon_AreTies()
    {
        var outcome = await new IterativePairwiseRanker(Rewards(1.00f, 1.01f, 1.02f)).RankAsync("p", "prompt", Candidates(3));

        Assert.False(outcome.Paired);
    }

    [Fact]
    public async Task RankAsync_MissingRewardScore_SaysWhichCandidate()
    {
        var judge = new RewardJudge(new Dictionary<(string, int), float> { [("p", 0)] = 1f }, 0);

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => new IterativePairwiseRanker(judge).RankAsync("p", "prompt", Candidates(2)));

        Assert.Contains("prompt 'p' candidate 1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RewardJudge_Probability_IsLogisticOfRewardDifference()
    {
        var verdict = await Rewards(2f, 1f).CompareAsync(new JudgeRequest("p", "x", 0, "a", 1, "b"));

        Assert.Equal(Verdict.A, verdict.Verdict);
        Assert.Equal(1 / (1 + Math.Exp(-1)), verdict.ProbabilityA!.Value, 6);
    }
}
