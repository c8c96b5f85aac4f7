using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>Starts a run at each occurrence of <c>triggers.schedule</c>; each occurrence is claimed once across instances.</summary>
internal sealed class ScheduleService(TriggerHandler handler, TimeProvider clock, ILogger<ScheduleService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var schedule = handler.Schedule!;
        var after = clock.GetUtcNow().UtcDateTime;
        try
        {
            while (schedule.Next(after) is { } next)
            {
                logger.NextScheduledRun(next);
                await WaitUntilAsync(next, clock, stoppingToken).ConfigureAwait(false);
                after = next;
                var slot = await handler.Launcher.AcquireSlotAsync(stoppingToken).ConfigureAwait(false);
                var claim = schedule.ClaimFor(next);
                handler.Launcher.Start(slot, () => handler.ClaimAndRunAsync(claim, stoppingToken));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: running runs stop at a boundary.
        }
        await handler.Launcher.DrainAsync().ConfigureAwait(false);
    }

    /// <summary>The longest single wait: Task.Delay refuses more than about 49.7 days (e.g. a yearly <c>0 0 1 1 *</c>).</summary>
    internal static readonly TimeSpan MaxWait = TimeSpan.FromDays(1);

    /// <summary>The next wait towards <paramref name="next"/>: the time left, at most <see cref="MaxWait"/>, zero when due.</summary>
    internal static TimeSpan NextWait(DateTime next, DateTime now)
    {
        var left = next - now;
        return left <= TimeSpan.Zero ? TimeSpan.Zero : left < MaxWait ? left : MaxWait;
    }

    /// <summary>Waits until <paramref name="next"/> (UTC) in steps of at most <see cref="MaxWait"/>, recomputing the time left after each.</summary>
    internal static async Task WaitUntilAsync(DateTime next, TimeProvider clock, CancellationToken cancellationToken)
    {
        TimeSpan wait;
        while ((wait = NextWait(next, clock.GetUtcNow().UtcDateTime)) > TimeSpan.Zero)
            await Task.Delay(wait, clock, cancellationToken).ConfigureAwait(false);
    }
}
