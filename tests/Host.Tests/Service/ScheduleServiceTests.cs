using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

public sealed class ScheduleServiceTests
{
    [Fact]
    public void NextWait_YearlySchedule_IsAtMostOneDay()
    {
        var (settings, _) = RunLauncherTests.Local("0 0 1 1 *");
        var schedule = new ScheduleTrigger(settings.Pipeline.Definition.Triggers, "svc");
        var now = new DateTime(2026, 1, 2, 0, 0, 0, DateTimeKind.Utc);
        var next = schedule.Next(now)!.Value;

        Assert.Equal(new DateTime(2027, 1, 1, 0, 0, 0, DateTimeKind.Utc), next);
        Assert.True(next - now > TimeSpan.FromMilliseconds(uint.MaxValue - 1)); // what Task.Delay refuses in one piece
        Assert.Equal(TimeSpan.FromDays(1), ScheduleService.NextWait(next, now));
        Assert.Equal(TimeSpan.FromHours(5), ScheduleService.NextWait(next, next - TimeSpan.FromHours(5)));
        Assert.Equal(TimeSpan.Zero, ScheduleService.NextWait(next, next));
        Assert.Equal(TimeSpan.Zero, ScheduleService.NextWait(next, next.AddSeconds(1)));
    }

    [Fact]
    public async Task WaitUntil_OccurrenceAYearAway_WaitsInDailyStepsUntilItIsDue()
    {
        var start = new DateTimeOffset(2026, 1, 2, 0, 0, 0, TimeSpan.Zero);
        var clock = new JumpingClock(start);
        var next = new DateTime(2027, 1, 1, 0, 0, 0, DateTimeKind.Utc);

        await ScheduleService.WaitUntilAsync(next, clock, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(next, clock.GetUtcNow().UtcDateTime);
        Assert.All(clock.Waits, w => Assert.InRange(w, TimeSpan.FromTicks(1), TimeSpan.FromDays(1)));
        Assert.Equal(364, clock.Waits.Count);
    }

    /// <summary>A clock whose timers fire at once, moving the time forward by their due time.</summary>
    private sealed class JumpingClock(DateTimeOffset start) : TimeProvider
    {
        private readonly object _gate = new();
        private DateTimeOffset _now = start;

        public List<TimeSpan> Waits { get; } = [];

        public override DateTimeOffset GetUtcNow()
        {
            lock (_gate) return _now;
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            lock (_gate)
            {
                Waits.Add(dueTime);
                _now += dueTime;
            }
            ThreadPool.QueueUserWorkItem(_ => callback(state));
            return new NoTimer();
        }

        private sealed class NoTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
