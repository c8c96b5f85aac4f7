using Microsoft.Extensions.Options;
using PrefPipe.Splitter.Quality;
using PrefPipe.Splitter.Rules;

namespace PrefPipe.Splitter.Tests.Rules;

public sealed class GapSplitterTests
{
    private static PairFacts[] Pairs(params double[] gaps) =>
        gaps.Select((g, i) => new PairFacts($"p{i:D2}", g, JudgeAgrees: g >= 0, ChosenLength: 10 + i, RejectedLength: 12)).ToArray();

    [Fact]
    public void Threshold_AssignsByGapAndEveryPairLandsOnce()
    {
        var pairs = Pairs(2.5, 0.4, 1.0, 0.99, 3.0);

        var (decisions, threshold) = GapSplitter.Split(pairs, new SplitterOptions { Rule = SplitRule.Threshold, Threshold = 1.0 });

        Assert.Equal(1.0, threshold);
        Assert.Equal([SplitSet.Easy, SplitSet.Difficult, SplitSet.Easy, SplitSet.Difficult, SplitSet.Easy], decisions.Select(d => d.Set));
        Assert.Equal(Enumerable.Range(0, 5), decisions.Select(d => d.Index));
        Assert.Contains("≥ τ 1", decisions[2].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Quantile_TopFractionIsEasyAndEqualGapsSplitByKey()
    {
        var pairs = Pairs(0.1, 0.5, 0.5, 0.9, 0.2, 0.5);

        var (decisions, threshold) = GapSplitter.Split(pairs, new SplitterOptions { Rule = SplitRule.Quantile, Quantile = 0.5 });

        // ordered: 0.9 (p03), 0.5 (p01), 0.5 (p02) | 0.5 (p05), 0.2, 0.1 → ⌈0.5·6⌉ = 3 easy
        Assert.Equal([SplitSet.Difficult, SplitSet.Easy, SplitSet.Easy, SplitSet.Easy, SplitSet.Difficult, SplitSet.Difficult], decisions.Select(d => d.Set));
        Assert.Equal(0.5, threshold);
    }

    [Theory]
    [InlineData(NegativeGapPolicy.Difficult, SplitSet.Difficult, false)]
    [InlineData(NegativeGapPolicy.Drop, SplitSet.Dropped, false)]
    [InlineData(NegativeGapPolicy.Flip, SplitSet.Easy, true)]
    internal void NegativeGap_FollowsPolicy(NegativeGapPolicy policy, SplitSet expected, bool flipped)
    {
        var (decisions, _) = GapSplitter.Split(Pairs(-2.0, 0.1), new SplitterOptions { Rule = SplitRule.Threshold, Threshold = 1, NegativeGaps = policy });

        Assert.Equal(expected, decisions[0].Set);
        Assert.Equal(flipped, decisions[0].Flipped);
        if (flipped) Assert.Equal(2.0, decisions[0].Gap);
    }

    [Fact]
    public void MissingScore_IsDroppedWithReason()
    {
        var (decisions, _) = GapSplitter.Split(Pairs(double.NaN, 1.5), new SplitterOptions());

        Assert.Equal(SplitSet.Dropped, decisions[0].Set);
        Assert.Contains("missing reward score", decisions[0].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Report_CountsFractionsTiesDisagreementAndLengthBias()
    {
        var pairs = Pairs(2.0, 0.0, -1.0, 1.5);
        var options = new SplitterOptions { Rule = SplitRule.Threshold, Threshold = 1.0 };
        var (decisions, threshold) = GapSplitter.Split(pairs, options);

        var report = QualityReport.Build(pairs, decisions, options, threshold);

        Assert.Equal(4, report.Pairs);
        Assert.Equal(2, report.Easy);
        Assert.Equal(2, report.Difficult);
        Assert.Equal(report.Pairs, report.Easy + report.Difficult + report.Dropped);
        Assert.Equal(1, report.Ties);
        Assert.Equal(1, report.NegativeGaps);
        Assert.Equal(0.25, report.JudgeRewardDisagreement);
        Assert.Equal(0.25, report.ChosenLongerFraction); // lengths 10..13 vs 12: only p03 (13) is longer
        Assert.Equal(0.75, report.GapMedian, 9);
        Assert.Contains("| easy | 2 (50.0%) |", report.ToTable().ToMarkdown(), StringComparison.Ordinal);
    }

    [Fact]
    public void Options_OutOfRange_NamesTheOption()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => GapSplitter.Split(Pairs(1), new SplitterOptions { Quantile = 1.5 }));

        Assert.Contains("Quantile", ex.Message, StringComparison.Ordinal);
    }
}
