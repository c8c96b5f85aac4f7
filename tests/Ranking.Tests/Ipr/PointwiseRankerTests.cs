using PrefPipe.Ranking.Pointwise;

namespace PrefPipe.Ranking.Tests.Ipr;

public sealed class PointwiseRankerTests
{
    [Fact]
    public void Rank_DistinctScores_ChoosesArgmaxAndRejectsArgmin()
    {
        var outcome = PointwiseRanker.Rank([(0, 0.3), (1, 1.7), (2, -0.4), (3, 0.9)], tieEpsilon: 0.05);

        Assert.Equal(1, outcome.Best);
        Assert.Equal(2, outcome.Worst);
        Assert.True(outcome.Paired);
        Assert.Equal(0, outcome.JudgeCalls);
        Assert.Empty(outcome.Comparisons);
    }

    [Fact]
    public void Rank_EqualScores_TakesTheLowestIndexOnEachSide()
    {
        var outcome = PointwiseRanker.Rank([(3, 1.0), (1, 1.0), (2, 0.0), (0, 0.0)], tieEpsilon: 0);

        Assert.Equal(1, outcome.Best);
        Assert.Equal(0, outcome.Worst);
    }

    [Theory]
    [InlineData(0.04, 0.05, false)]
    [InlineData(0.05, 0.05, true)]
    [InlineData(0.0, 0.0, false)]
    public void Rank_GapAgainstTieEpsilon_PairsOnlyWhenTheGapReachesIt(double gap, double epsilon, bool paired)
    {
        var outcome = PointwiseRanker.Rank([(0, 1.0), (1, 1.0 + gap)], epsilon);

        Assert.Equal(paired, outcome.Paired);
        if (!paired) Assert.Null(outcome.Best);
    }

    [Fact]
    public void Rank_OneCandidate_HasNoPair() =>
        Assert.False(PointwiseRanker.Rank([(0, 2.0)], 0).Paired);
}
