using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

public sealed class ProgressRateTests
{
    /// <summary>A clock moved by hand (timestamps in ticks of 100 ns).</summary>
    private sealed class HandClock : TimeProvider
    {
        public long Ticks { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Ticks;
    }

    [Fact]
    public void Describe_RateOverTimeSinceFirstReport_AndTimeLeftAtThatRate()
    {
        var clock = new HandClock();
        var rate = new ProgressRate("prompts", clock);

        Assert.Equal("", rate.Describe(16, 240)); // the first report starts the clock
        clock.Ticks = TimeSpan.FromSeconds(4).Ticks;
        Assert.Equal("12 prompts/s, about 15 s left", rate.Describe(64, 240)); // 48 in 4 s; 176 left: 14.7 s
        clock.Ticks = TimeSpan.FromSeconds(10).Ticks;
        Assert.Equal("2.4 prompts/s, about 1 min 33 s left", rate.Describe(40, 264)); // 24 in 10 s; 224 left → 93.3 s
        clock.Ticks = TimeSpan.FromSeconds(20).Ticks;
        Assert.Equal("11.2 prompts/s, done", rate.Describe(240, 240));
    }

    [Fact]
    public void Describe_NoProgressSinceTheFirstReport_SaysNothing()
    {
        var clock = new HandClock();
        var rate = new ProgressRate("steps", clock);
        rate.Describe(3, 10);
        clock.Ticks = TimeSpan.FromSeconds(5).Ticks;

        Assert.Equal("", rate.Describe(3, 10));
    }

    [Fact]
    public void Observe_StartsTheClockBeforeTheFirstDescription_AndThroughputHasNoExponent()
    {
        var clock = new HandClock();
        var prompts = new ProgressRate("prompts", clock);
        var comparisons = new ProgressRate("comparisons", clock);
        prompts.Observe(0);
        comparisons.Observe(0);
        prompts.Observe(5); // already started: ignored
        clock.Ticks = TimeSpan.FromSeconds(2).Ticks;

        Assert.Equal("60 prompts/s, about 2 s left", prompts.Describe(120, 240)); // 120 in 2 s; 120 left: 2 s
        Assert.Equal("2500 comparisons/s", comparisons.Throughput(5000)); // not 2.5E+03
        Assert.Equal("", new ProgressRate("runs", clock).Throughput(3)); // nothing observed before
    }

    [Fact]
    public void Duration_SecondsMinutesHours()
    {
        Assert.Equal(["42 s", "3 min 5 s", "2 h 10 min"], new[] { 41.2, 185, 7800 }.Select(ProgressRate.Duration));
    }
}
