using Azure.Storage.Queues.Models;
using Microsoft.Extensions.Logging;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Service;

/// <summary>Turns one trigger (a queue message, a listed blob, an occurrence) into a claimed run.</summary>
internal sealed class TriggerHandler(ServeSettings settings, RunLauncher launcher, ILogger<TriggerHandler> logger,
    BlobTriggerSource? blobs = null, QueueSource? queue = null, ScheduleTrigger? schedule = null)
{
    public BlobTriggerSource? Blobs => blobs;

    public QueueSource? Queue => queue;

    public ScheduleTrigger? Schedule => schedule;

    public RunLauncher Launcher => launcher;

    private string PipelineName => settings.Pipeline.Definition.Name;

    /// <summary>How long a message whose run another process is writing stays invisible: that holder's lock expires
    /// within <see cref="RunLock.Lifetime"/> unless it is refreshed, so the message comes back once the run can be resumed or found done.</summary>
    public static readonly TimeSpan BusyRetryDelay = RunLock.Lifetime + TimeSpan.FromSeconds(30);

    /// <summary>Handles one queue message: runs its blob once, then deletes the message (also when the event is not
    /// for this trigger, or the run failed: run.json records that). A run cancelled by shutdown leaves the message for
    /// the next consumer; a run another live process is writing (its run lock) leaves it to come back after <see cref="BusyRetryDelay"/>.</summary>
    public async Task<RunOutcome?> HandleMessageAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        var e = BlobCreatedEvent.TryParse(message.Body.ToString(), out string reason);
        string? path = e is null ? null : blobs!.PathOf(e);
        if (e is null || path is null)
        {
            logger.MessageIgnored(message.MessageId,
                e is null ? reason
                : BlobTriggerSource.IsIgnored(e.BlobName) ? $"blob {e.Container}/{e.BlobName} is a marker or temporary file (a path segment starts with '.' or '_')"
                : $"blob {e.Container}/{e.BlobName} is outside {blobs!.Container}/{blobs.BlobPrefix}");
            await queue!.DeleteAsync(message, message.PopReceipt).ConfigureAwait(false);
            return null;
        }
        var (outcome, receipt) = await queue!.WithLeaseAsync(message, async () =>
        {
            RunClaim claim;
            try
            {
                claim = await blobs!.ClaimForAsync(path, PipelineName, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                logger.MessageBlobGone(message.MessageId, e.BlobName);
                return (RunOutcome?)null;
            }
            logger.BlobCreated(e.BlobName, message.MessageId, message.DequeueCount);
            return await launcher.ClaimAndRunAsync(claim, resumeUnfinished: true, cancellationToken).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        if (outcome == RunOutcome.Cancelled) await queue.ReleaseAsync(message, receipt).ConfigureAwait(false);
        else if (outcome == RunOutcome.Busy) await queue.ReleaseAsync(message, receipt, BusyRetryDelay).ConfigureAwait(false);
        else await queue.DeleteAsync(message, receipt).ConfigureAwait(false);
        return outcome;
    }

    /// <summary>The blobs under the prefix that nobody has claimed yet, in name order.</summary>
    public async IAsyncEnumerable<RunClaim> UnclaimedBlobsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (string path in blobs!.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            RunClaim claim;
            try
            {
                claim = await blobs.ClaimForAsync(path, PipelineName, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                continue;
            }
            if (!await launcher.IsClaimedAsync(claim, cancellationToken).ConfigureAwait(false)) yield return claim;
        }
    }

    /// <summary>Runs a listed blob or an occurrence unless another instance claimed it first.</summary>
    public Task<RunOutcome> ClaimAndRunAsync(RunClaim claim, CancellationToken cancellationToken) =>
        launcher.ClaimAndRunAsync(claim, resumeUnfinished: false, cancellationToken);
}
