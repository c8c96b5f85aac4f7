using PrefPipe.Artifacts.Rows;
using PrefPipe.Host.Studies;

namespace PrefPipe.Host.Tests.Studies;

public sealed class StudyStatisticsTests
{
    [Fact]
    public void Bootstrap_ConstantData_ZeroWidthIntervalAtTheValue()
    {
        var interval = StudyStatistics.Bootstrap([[0.75, 0.75, 0.75], [0.75, 0.75]]);
        Assert.Equal(new Interval(0.75, 0.75, 0.75), interval);
    }

    [Fact]
    public void Bootstrap_VaryingData_IntervalContainsTheMeanAndHasWidth()
    {
        var rng = new Random(3);
        var seeds = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, 60).Select(_ => rng.NextDouble() < 0.7 ? 1.0 : 0.0).ToArray()).ToList();
        var interval = StudyStatistics.Bootstrap(seeds);
        Assert.Equal(seeds.Average(s => s.Average()), interval.Mean, 12);
        Assert.True(interval.Low < interval.Mean && interval.Mean < interval.High, $"{interval}");
        // 300 Bernoulli(0.7) prompts: a standard error near 0.026, so a 95% interval about ±0.05 wide.
        Assert.InRange(interval.High - interval.Low, 0.05, 0.2);
    }

    [Fact]
    public void Bootstrap_SameSeed_SameInterval_OtherSeed_Differs()
    {
        var rng = new Random(5);
        double[][] data = [[.. Enumerable.Range(0, 40).Select(_ => rng.NextDouble())], [.. Enumerable.Range(0, 30).Select(_ => rng.NextDouble())]];
        Assert.Equal(StudyStatistics.Bootstrap(data), StudyStatistics.Bootstrap(data));
        Assert.NotEqual(StudyStatistics.Bootstrap(data, seed: 1), StudyStatistics.Bootstrap(data, seed: 2));
    }

    [Fact]
    public void Bootstrap_SeedsDisagree_IntervalCoversSeedVariation()
    {
        // Each seed is constant, so the prompt level adds nothing: the width comes from resampling seeds alone.
        var interval = StudyStatistics.Bootstrap([[0.2, 0.2], [0.8, 0.8]]);
        Assert.Equal(0.5, interval.Mean, 12);
        Assert.Equal(0.2, interval.Low, 12);
        Assert.Equal(0.8, interval.High, 12);
    }

    [Fact]
    public void Percentile_InterpolatesBetweenOrderStatistics()
    {
        double[] sorted = [0, 10, 20, 30, 40];
        Assert.Equal(0, StudyStatistics.Percentile(sorted, 0));
        Assert.Equal(20, StudyStatistics.Percentile(sorted, 0.5));
        Assert.Equal(1, StudyStatistics.Percentile(sorted, 0.025), 12);
        Assert.Equal(40, StudyStatistics.Percentile(sorted, 1));
    }

    [Fact]
    public void PromptWinRates_PairsSamplesByPromptAndIndex_TieIsHalf()
    {
        EvaluationRow R(string p, string policy, int i, double reward) => new() { PromptId = p, Policy = policy, SampleIndex = i, Reward = reward };
        var wins = StudyStatistics.PromptWinRates(
        [
            R("eval-1", "start", 0, 0.1), R("eval-1", "final", 0, 0.9), R("eval-1", "start", 1, 0.5), R("eval-1", "final", 1, 0.5),
            R("eval-0", "start", 0, 0.9), R("eval-0", "final", 0, 0.1),
        ]);
        Assert.Equal(["eval-0", "eval-1"], wins.Keys);
        Assert.Equal(0, wins["eval-0"]);
        Assert.Equal(0.75, wins["eval-1"]);
    }

    [Fact]
    public void PromptWinRates_FinalWithoutStart_Refused()
    {
        var ex = Assert.Throws<InvalidDataException>(() => StudyStatistics.PromptWinRates([new EvaluationRow { PromptId = "eval-3", Policy = "final", SampleIndex = 1 }]));
        Assert.Contains("eval-3", ex.Message, StringComparison.Ordinal);
    }
}
