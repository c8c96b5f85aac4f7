using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>Lists the trigger prefix every <c>poll_interval</c> and runs each new file once (claimed by name + content hash).</summary>
internal sealed class BlobPollService(TriggerHandler handler, ServeSettings settings, ILogger<BlobPollService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = settings.Pipeline.Definition.Triggers.Blob!.PollInterval;
        logger.WatchingBlobs(handler.Blobs!.Store.Location, interval);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await foreach (var claim in handler.UnclaimedBlobsAsync(stoppingToken).ConfigureAwait(false))
                    {
                        var slot = await handler.Launcher.AcquireSlotAsync(stoppingToken).ConfigureAwait(false);
                        handler.Launcher.Start(slot, () => handler.ClaimAndRunAsync(claim, stoppingToken));
                    }
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // A storage outage must not stop the service: log and poll again.
                    logger.ListingBlobsFailed(ex, handler.Blobs.Store.Location, ex.Message);
                }
                await Task.Delay(interval, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: running runs stop at a boundary.
        }
        await handler.Launcher.DrainAsync().ConfigureAwait(false);
    }
}
