using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>On start, resumes runs that were claimed but did not finish (cancelled by a shutdown, or interrupted by a crash).</summary>
internal sealed class RecoveryService(TriggerHandler handler, ILogger<RecoveryService> logger) : BackgroundService
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            List<RunClaim>? unfinished = null;
            while (unfinished is null)
            {
                try
                {
                    unfinished = await handler.Launcher.UnfinishedAsync(includeInterrupted: true, stoppingToken).ConfigureAwait(false);
                }
                // A storage outage at start must not stop the host: log and list again.
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    logger.ListingUnfinishedFailed(ex, handler.Launcher.Store.Location, ex.Message, RetryDelay);
                    await Task.Delay(RetryDelay, stoppingToken).ConfigureAwait(false);
                }
            }
            foreach (var claim in unfinished)
            {
                logger.ResumingUnfinishedRun(claim.RunId, claim.Kind, claim.Source);
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
