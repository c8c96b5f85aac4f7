using System.Diagnostics;
using PrefPipe.Models.Runtime;

namespace PrefPipe.Models.Tests.Runtime;

public sealed class ComputeClockTests
{
    [Fact]
    public void Measure_WithoutAMeter_CountsNothingAndLeavesLaterMetersExact()
    {
        using (ComputeClock.Measure()) Thread.Sleep(5);
        var meter = ComputeClock.Start();
        Assert.Equal(0, meter.Seconds);
        using (ComputeClock.Measure()) Thread.Sleep(20);
        Assert.InRange(meter.Seconds, 0.019, 10);
    }

    [Fact]
    public void Measure_NestedSections_CountOnceAndTimeOutsideIsNotCounted()
    {
        var meter = ComputeClock.Start();
        Thread.Sleep(30); // outside any section
        var outer = Stopwatch.StartNew();
        using (ComputeClock.Measure())
        {
            Thread.Sleep(20);
            using (ComputeClock.Measure()) Thread.Sleep(40);
        }
        outer.Stop();

        // Counted twice the inner 40 ms would push the total past the outer section's own wall time.
        Assert.InRange(meter.Seconds, 0.059, outer.Elapsed.TotalSeconds + 0.001);
        // The depth was restored: a later section is measured again.
        double before = meter.Seconds;
        using (ComputeClock.Measure()) Thread.Sleep(10);
        Assert.InRange(meter.Seconds - before, 0.009, 10);
    }

    [Fact]
    public async Task Meter_FlowsIntoAwaitedAndParallelWork()
    {
        var meter = ComputeClock.Start();
        await Task.Run(() => { using (ComputeClock.Measure()) Thread.Sleep(20); });
        await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(() => { using (ComputeClock.Measure()) Thread.Sleep(20); })));
        // Parallel sections add up: three sections of at least 20 ms each.
        Assert.InRange(meter.Seconds, 0.059, 10);
    }

    [Fact]
    public async Task Meter_StartedInOneFlow_IsNotSeenByAnother()
    {
        var first = ComputeClock.Start();
        double seen = await Task.Run(() =>
        {
            var second = ComputeClock.Start();
            using (ComputeClock.Measure()) Thread.Sleep(15);
            return second.Seconds;
        });
        Assert.InRange(seen, 0.014, 10);
        Assert.Equal(0, first.Seconds);
    }
}
