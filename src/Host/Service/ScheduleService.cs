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
                logger.LogInformation("Next scheduled run at {Occurrence:O}", next);
                var wait = next - clock.GetUtcNow().UtcDateTime;
                if (wait > TimeSpan.Zero) await Task.Delay(wait, clock, stoppingToken).ConfigureAwait(false);
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
}
