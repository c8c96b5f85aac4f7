using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>On start, resumes runs that were claimed but did not finish (cancelled by a shutdown, or interrupted by a crash).</summary>
internal sealed class RecoveryService(TriggerHandler handler, ILogger<RecoveryService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            foreach (var claim in await handler.Launcher.UnfinishedAsync(includeInterrupted: true, stoppingToken).ConfigureAwait(false))
            {
                logger.LogInformation("Resuming unfinished run {RunId} ({Kind} trigger {Source})", claim.RunId, claim.Kind, claim.Source);
                var slot = await handler.Launcher.AcquireSlotAsync(stoppingToken).ConfigureAwait(false);
                handler.Launcher.Start(slot, () => handler.Launcher.ExecuteAsync(claim, stoppingToken));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown before recovery finished: the next start picks the rest up.
        }
        await handler.Launcher.DrainAsync().ConfigureAwait(false);
    }
}
