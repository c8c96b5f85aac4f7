using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>Receives Event Grid BlobCreated messages from <c>triggers.blob.queue</c>, one per free run slot.</summary>
internal sealed class QueueService(TriggerHandler handler, ServeSettings settings, ILogger<QueueService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var idle = TimeSpan.FromTicks(Math.Min(settings.Pipeline.Definition.Triggers.Blob!.PollInterval.Ticks, TimeSpan.FromSeconds(5).Ticks));
        logger.ReceivingFromQueue(handler.Queue!.Client.Name);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var slot = await handler.Launcher.AcquireSlotAsync(stoppingToken).ConfigureAwait(false);
                Azure.Storage.Queues.Models.QueueMessage? message;
                try
                {
                    message = await handler.Queue.ReceiveAsync(stoppingToken).ConfigureAwait(false);
                }
                // Any receive failure (storage error, credential failure, network timeout) is logged and retried.
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    slot.Dispose();
                    logger.ReceivingFromQueueFailed(ex, handler.Queue.Client.Name, ex.Message);
                    await Task.Delay(idle, stoppingToken).ConfigureAwait(false);
                    continue;
                }
                if (message is null)
                {
                    slot.Dispose();
                    await Task.Delay(idle, stoppingToken).ConfigureAwait(false);
                    continue;
                }
                handler.Launcher.Start(slot, () => handler.HandleMessageAsync(message, stoppingToken));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: running runs stop at a boundary; their messages become visible again.
        }
        await handler.Launcher.DrainAsync().ConfigureAwait(false);
    }
}
