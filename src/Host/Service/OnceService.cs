using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>
/// <c>--once</c> (a KEDA ScaledJob or Container Apps event job): handles one queue message, else one new blob, else the
/// latest due occurrence of the schedule within one day (with <c>--trigger schedule</c>, or when there is no blob
/// trigger), else a run a shutdown cancelled; then stops the host.
/// A failed or cancelled run makes the process exit 1 (the host would otherwise exit 0).
/// </summary>
internal sealed class OnceService(TriggerHandler handler, ServiceState state, TimeProvider clock, IHostApplicationLifetime lifetime,
    ILogger<OnceService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var outcome = await HandleOneAsync(stoppingToken).ConfigureAwait(false);
            if (outcome is null) logger.NothingToDo();
            if (outcome is RunOutcome.Failed or RunOutcome.Cancelled) state.Fail(1);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            state.Fail(1);
        }
        // Any failure must become a non-zero exit code, not a silent 0.
        catch (Exception ex)
        {
            logger.OnceFailed(ex, ex.Message);
            state.Fail(1);
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    private async Task<RunOutcome?> HandleOneAsync(CancellationToken ct)
    {
        if (handler.Queue is { } queue && await queue.ReceiveAsync(ct).ConfigureAwait(false) is { } message)
        {
            var outcome = await handler.HandleMessageAsync(message, ct).ConfigureAwait(false);
            if (outcome is not null) return outcome;
        }
        if (handler.Blobs is not null)
        {
            await foreach (var claim in handler.UnclaimedBlobsAsync(ct).ConfigureAwait(false))
            {
                var outcome = await handler.ClaimAndRunAsync(claim, ct).ConfigureAwait(false);
                if (outcome != RunOutcome.AlreadyClaimed) return outcome;
            }
        }
        if (handler.Schedule is { } schedule && schedule.LatestDue(clock.GetUtcNow().UtcDateTime, TimeSpan.FromDays(1)) is { } due)
        {
            var outcome = await handler.ClaimAndRunAsync(schedule.ClaimFor(due), ct).ConfigureAwait(false);
            if (outcome != RunOutcome.AlreadyClaimed) return outcome;
        }
        foreach (var claim in await handler.Launcher.UnfinishedAsync(includeInterrupted: false, ct).ConfigureAwait(false))
        {
            logger.ResumingCancelledRun(claim.RunId);
            return await handler.Launcher.ExecuteAsync(claim, ct).ConfigureAwait(false);
        }
        return null;
    }
}
