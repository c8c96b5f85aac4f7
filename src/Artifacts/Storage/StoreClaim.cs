using System.Globalization;
using System.Text;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// An exclusive, expiring claim on a name in an artifact store (e.g. one shard of a stage), renewed in the background
/// while it is held. A holder that dies stops renewing and loses the claim after <see cref="Duration"/>; another worker
/// can then take it. Claims only avoid duplicate work: results must still be committed atomically and idempotently,
/// because a holder that stalls past its expiry may finish after another took over.
/// </summary>
/// <remarks>
/// Azure Blob: a blob lease (<see cref="BlobLeaseClient"/>, 15–60 s) on a small blob at the path, renewed every
/// third of the duration. Local folder: a lock file at the path holding the owner's token; its modification time is
/// the heartbeat (touched every third of the duration), and a lock not touched for <see cref="Duration"/> is stale and
/// may be taken over (renamed away, then created anew).
/// </remarks>
public sealed class StoreClaim : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<CancellationToken, Task<bool>> _renew;
    private readonly Func<Task> _release;
    private Task? _heartbeat;

    private StoreClaim(string path, string owner, TimeSpan duration, Func<CancellationToken, Task<bool>> renew, Func<Task> release)
    {
        Path = path;
        Owner = owner;
        Duration = duration;
        _renew = renew;
        _release = release;
    }

    /// <summary>The claimed name in the store.</summary>
    public string Path { get; }

    /// <summary>This holder's token (written into the lock file; the lease id on blobs).</summary>
    public string Owner { get; }

    /// <summary>How long the claim lasts without renewal.</summary>
    public TimeSpan Duration { get; }

    /// <summary>Cancelled when a renewal finds the claim taken by someone else or fails until it expired.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>
    /// Tries to claim <paramref name="path"/> for <paramref name="duration"/>; null when someone else holds it.
    /// </summary>
    /// <param name="store">A store from <see cref="ArtifactStores.Open"/>, a <see cref="LocalArtifactStore"/> or a <see cref="BlobArtifactStore"/>.</param>
    /// <param name="path">Name of the claim, e.g. <c>run/rank/shards/4/shard-0001.lease</c>.</param>
    /// <param name="duration">Expiry without renewal: 1 s or more locally; 15 to 60 s on Azure Blob (the lease limits).</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <exception cref="ArgumentOutOfRangeException">The duration is outside the store's limits.</exception>
    /// <exception cref="NotSupportedException">A store type without claims.</exception>
    public static async Task<StoreClaim?> TryAcquireAsync(IArtifactStore store, string path, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArtifactPath.Validate(path);
        var inner = store is ResilientArtifactStore resilient ? resilient.Inner : store;
        return inner switch
        {
            BlobArtifactStore blob => await AcquireBlobAsync(store, blob, path, duration, cancellationToken).ConfigureAwait(false),
            LocalArtifactStore local => AcquireLocal(local.FullPath(path), path, duration),
            _ => throw new NotSupportedException($"{inner.GetType().Name} ({store.Location}) does not support claims"),
        };
    }

    /// <summary>Stops renewing and releases the claim (best effort: an unreleased claim expires by itself).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_heartbeat is not null)
        {
            try { await _heartbeat.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        if (!_lost.IsCancellationRequested)
        {
            try { await _release().ConfigureAwait(false); }
            catch (Exception ex) when (ex is RequestFailedException or IOException or UnauthorizedAccessException) { }
        }
        _stop.Dispose();
        _lost.Dispose();
    }

    private void Start()
    {
        _heartbeat = Task.Run(async () =>
        {
            var interval = Duration / 3;
            var lastRenewed = DateTimeOffset.UtcNow;
            while (!_stop.IsCancellationRequested)
            {
                await Task.Delay(interval, _stop.Token).ConfigureAwait(false);
                bool held;
                try
                {
                    held = await _renew(_stop.Token).ConfigureAwait(false);
                    if (held) lastRenewed = DateTimeOffset.UtcNow;
                }
                catch (Exception ex) when (ex is RequestFailedException or IOException or UnauthorizedAccessException or HttpRequestException)
                {
                    // A transient failure: keep trying until the claim would have expired.
                    held = DateTimeOffset.UtcNow - lastRenewed < Duration;
                }
                if (!held)
                {
                    await _lost.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        });
    }

    private static async Task<StoreClaim?> AcquireBlobAsync(IArtifactStore store, BlobArtifactStore blob, string path, TimeSpan duration, CancellationToken cancellationToken)
    {
        if (duration < TimeSpan.FromSeconds(15) || duration > TimeSpan.FromSeconds(60))
            throw new ArgumentOutOfRangeException(nameof(duration), duration, "blob lease durations are 15 to 60 seconds");
        // The lease needs a blob to hold: create an empty one if it is not there (create-if-absent; losing the race is fine).
        await store.TryCreateAsync(path, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
        string owner = Guid.NewGuid().ToString();
        var lease = blob.BlobClient(path).GetBlobLeaseClient(owner);
        try
        {
            await lease.AcquireAsync(duration, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.LeaseAlreadyPresent || ex.Status == 409)
        {
            return null;
        }
        var claim = new StoreClaim(path, owner, duration,
            async ct =>
            {
                try
                {
                    await lease.RenewAsync(cancellationToken: ct).ConfigureAwait(false);
                    return true;
                }
                catch (RequestFailedException ex) when (ex.Status == 409 || ex.ErrorCode == BlobErrorCode.LeaseIdMismatchWithLeaseOperation || ex.ErrorCode == BlobErrorCode.LeaseNotPresentWithLeaseOperation)
                {
                    return false;
                }
            },
            () => lease.ReleaseAsync());
        claim.Start();
        return claim;
    }

    private static StoreClaim? AcquireLocal(string full, string path, TimeSpan duration)
    {
        if (duration < TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(duration), duration, "local claims last at least 1 second");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        string owner = string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}");
        if (!TryCreateLock(full, owner))
        {
            // Held, unless its heartbeat is older than the duration: then take it over.
            // (A lock released since the attempt above reads as 1601 and counts as stale: the move below then fails.)
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(full) < duration) return null;
            string stale = $"{full}.{Guid.NewGuid():N}.stale";
            try
            {
                File.Move(full, stale, overwrite: false); // of two workers taking over, one moves it
            }
            catch (IOException)
            {
                return TryCreateLock(full, owner) ? Local(full, path, owner, duration) : null;
            }
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(stale) < duration)
            {
                // Between our check and the move someone else took it over: give their fresh lock back.
                try { File.Move(stale, full, overwrite: false); }
                catch (IOException) { File.Delete(stale); }
                return null;
            }
            File.Delete(stale);
            if (!TryCreateLock(full, owner)) return null;
        }
        return Local(full, path, owner, duration);
    }

    private static StoreClaim Local(string full, string path, string owner, TimeSpan duration)
    {
        var claim = new StoreClaim(path, owner, duration,
            _ =>
            {
                if (!IsOwner(full, owner)) return Task.FromResult(false);
                File.SetLastWriteTimeUtc(full, DateTime.UtcNow);
                return Task.FromResult(true);
            },
            () =>
            {
                if (IsOwner(full, owner)) File.Delete(full);
                return Task.CompletedTask;
            });
        claim.Start();
        return claim;
    }

    private static bool IsOwner(string full, string owner)
    {
        try
        {
            return File.ReadAllText(full, Encoding.UTF8) == owner;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }

    private static bool TryCreateLock(string full, string owner)
    {
        string staging = $"{full}.{Guid.NewGuid():N}.partial";
        File.WriteAllText(staging, owner, Encoding.UTF8);
        try
        {
            File.Move(staging, full, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(full))
        {
            File.Delete(staging);
            return false;
        }
    }
}
