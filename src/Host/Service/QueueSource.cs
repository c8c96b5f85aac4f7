using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;

namespace PrefPipe.Host.Service;

/// <summary>
/// The storage queue Event Grid delivers BlobCreated events to (<c>triggers.blob.queue</c>). A message stays invisible
/// while its run goes on (the lease is renewed), is deleted when the run ends, and comes back for another consumer if
/// this one dies, which then resumes the same run (the claim names it).
/// </summary>
internal sealed class QueueSource
{
    /// <summary>Environment variable with the queue service endpoint (https://ACCOUNT.queue.core.windows.net/).</summary>
    public const string EndpointVariable = "PREFPIPE_QUEUE_ENDPOINT";

    /// <summary>How long a received message stays invisible before it is renewed.</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromMinutes(5);

    internal QueueSource(QueueClient client) => Client = client;

    public QueueClient Client { get; }

    /// <summary>Opens the queue: with <c>PREFPIPE_BLOB_CONNECTION_STRING</c> when set (it must name a queue endpoint),
    /// else the endpoint (<c>queue_endpoint</c> or <c>PREFPIPE_QUEUE_ENDPOINT</c>) with <c>DefaultAzureCredential</c>.</summary>
    /// <exception cref="ArgumentException">No way to reach the queue; the message names the key and the variables.</exception>
    public static QueueSource Open(BlobTrigger trigger, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string queue = trigger.Queue!;
        var options = new QueueClientOptions();
        options.Retry.MaxRetries = 3;
        string? endpoint = trigger.QueueEndpoint ?? environment(EndpointVariable);
        string? connection = environment(ArtifactStores.ConnectionStringVariable);
        if (string.IsNullOrWhiteSpace(endpoint) && !string.IsNullOrWhiteSpace(connection))
            return new QueueSource(new QueueClient(connection, queue, options));
        if (string.IsNullOrWhiteSpace(endpoint) || !Uri.TryCreate(endpoint, UriKind.Absolute, out var uri))
            throw new ArgumentException(
                $"triggers.blob.queue ('{queue}'): no queue endpoint; set triggers.blob.queue_endpoint or {EndpointVariable} " +
                $"(https://ACCOUNT.queue.core.windows.net/), or {ArtifactStores.ConnectionStringVariable} with a QueueEndpoint.");
        var queueUri = new Uri(uri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/" + queue);
        return new QueueSource(!string.IsNullOrWhiteSpace(connection) && connection.Contains("QueueEndpoint=", StringComparison.OrdinalIgnoreCase)
            ? new QueueClient(connection, queue, options)
            : new QueueClient(queueUri, new Azure.Identity.DefaultAzureCredential(), options));
    }

    /// <summary>One message, invisible to others for <see cref="Lease"/>, or null when the queue is empty.</summary>
    public async Task<QueueMessage?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        var response = await Client.ReceiveMessagesAsync(1, LeaseTime, cancellationToken).ConfigureAwait(false);
        return response.Value.Length == 0 ? null : response.Value[0];
    }

    /// <summary>How long a received message stays invisible per receive or renewal (tests shorten it).</summary>
    internal TimeSpan LeaseTime { get; init; } = Lease;

    /// <summary>Runs <paramref name="work"/> while keeping the message invisible; returns the latest pop receipt. A failed
    /// renewal is retried (sooner) instead of ending renewals; the receipt is read only after the renewer stopped, so it is
    /// never one that an in-flight renewal replaced.</summary>
    public async Task<(T Result, string PopReceipt)> WithLeaseAsync<T>(QueueMessage message, Func<Task<T>> work, CancellationToken cancellationToken = default)
    {
        string receipt = message.PopReceipt;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var renew = Task.Run(async () =>
        {
            var interval = LeaseTime / 2;
            while (true)
            {
                await Task.Delay(interval, stop.Token).ConfigureAwait(false);
                try
                {
                    // Not cancelled by stop: an update that commits must hand back its receipt, or the old one is void.
                    var updated = await Client.UpdateMessageAsync(message.MessageId, Volatile.Read(ref receipt), visibilityTimeout: LeaseTime,
                        cancellationToken: CancellationToken.None).ConfigureAwait(false);
                    Volatile.Write(ref receipt, updated.Value.PopReceipt);
                    interval = LeaseTime / 2;
                }
                catch (Azure.RequestFailedException ex) when (ex.Status == 404)
                {
                    return; // the message was deleted or its receipt is void (the lease was lost): the claim still prevents a second start
                }
                // A transient failure (storage, network, credentials) must not end renewing: try again sooner.
                catch (Exception)
                {
                    interval = TimeSpan.FromTicks(Math.Max(LeaseTime.Ticks / 10, TimeSpan.FromMilliseconds(100).Ticks));
                }
            }
        }, CancellationToken.None);
        T result;
        try
        {
            result = await work().ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await renew.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The renewal loop ends here.
            }
        }
        return (result, Volatile.Read(ref receipt));
    }

    public async Task DeleteAsync(QueueMessage message, string popReceipt) =>
        await Client.DeleteMessageAsync(message.MessageId, popReceipt, CancellationToken.None).ConfigureAwait(false);

    /// <summary>Makes the message visible again after <paramref name="visibleAfter"/> (default: now), so the next consumer resumes the run.</summary>
    public async Task ReleaseAsync(QueueMessage message, string popReceipt, TimeSpan visibleAfter = default) =>
        await Client.UpdateMessageAsync(message.MessageId, popReceipt, visibilityTimeout: visibleAfter, cancellationToken: CancellationToken.None).ConfigureAwait(false);
}
