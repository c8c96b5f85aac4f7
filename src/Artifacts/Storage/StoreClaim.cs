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
/// may be taken over (under a guard file, replaced by one rename).
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
#pragma warning disable CA1031 // Best effort: the heartbeat's own faults were already turned into Lost; an unreleased claim expires.
        if (_heartbeat is not null)
        {
            try { await _heartbeat.ConfigureAwait(false); }
            catch (Exception) { }
        }
        if (!_lost.IsCancellationRequested)
        {
            try { await _release().ConfigureAwait(false); }
            catch (Exception) { }
        }
#pragma warning restore CA1031
        _stop.Dispose();
        _lost.Dispose();
    }

    private void Start()
    {
        _heartbeat = Task.Run(async () =>
        {
            var interval = Duration / 3;
            var lastRenewed = DateTimeOffset.UtcNow;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    await Task.Delay(interval, _stop.Token).ConfigureAwait(false);
                    bool held;
                    try
                    {
                        // A renewal may not outlive the claim: a hung request must not hide that it expired.
                        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                        var left = lastRenewed + Duration - DateTimeOffset.UtcNow;
                        attempt.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
                        held = await _renew(attempt.Token).ConfigureAwait(false);
                        if (held) lastRenewed = DateTimeOffset.UtcNow;
                    }
#pragma warning disable CA1031 // Any failure to renew (network, auth, timeout) is transient until the claim would have expired.
                    catch (Exception) when (!_stop.IsCancellationRequested)
#pragma warning restore CA1031
                    {
                        held = DateTimeOffset.UtcNow - lastRenewed < Duration;
                    }
                    if (!held) return;
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
            finally
            {
                // However the loop ended, unless it was told to stop, the holder must hear that the claim is gone.
                if (!_stop.IsCancellationRequested) await _lost.CancelAsync().ConfigureAwait(false);
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
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsTransient(ex))
        {
            // Not acquired this round (the lease client has no retry layer): callers poll again. Should the lease
            // have been granted after all, it expires unrenewed and the shard is taken then.
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

    private static bool IsTransient(Exception ex) => ex switch
    {
        RequestFailedException r => r.Status is 408 or 429 or >= 500 or 0,
        HttpRequestException or TimeoutException or TaskCanceledException => true,
        _ => false,
    };

    private static StoreClaim? AcquireLocal(string full, string path, TimeSpan duration)
    {
        if (duration < TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(duration), duration, "local claims last at least 1 second");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        string owner = string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}");
        if (!TryCreateLock(full, owner) && !TryTakeOver(full, owner, duration)) return null;
        return Local(full, path, owner, duration);
    }

    /// <summary>
    /// Takes over a lock whose heartbeat is older than <paramref name="duration"/>. Takers first win a guard file
    /// (create-if-absent), re-check the lock under it and only then replace it by one rename, so a lock that a taker
    /// has just made fresh is never moved away by another (moving the stale lock aside and creating a new one let a
    /// third worker slip in while a fourth was giving a wrongly moved fresh lock back: two holders). A guard left by a
    /// taker that died is removed once it is as old as <paramref name="duration"/>; that round takes nothing.
    /// </summary>
    private static bool TryTakeOver(string full, string owner, TimeSpan duration)
    {
        if (!IsStale(full, duration)) return false;
        string guard = $"{full}.takeover";
        if (!TryCreateLock(guard, owner))
        {
            if (IsStale(guard, duration)) TryDelete(guard);
            return false;
        }
        try
        {
            if (!File.Exists(full)) return TryCreateLock(full, owner); // released meanwhile: a plain create-if-absent
            if (!IsStale(full, duration)) return false;                // renewed or taken over meanwhile
            string staging = $"{full}.{Guid.NewGuid():N}.partial";
            File.WriteAllText(staging, owner, Encoding.UTF8);
            File.Move(staging, full, overwrite: true); // rename(2): the stale lock is replaced in one step
            return true;
        }
        finally
        {
            if (IsOwner(guard, owner)) TryDelete(guard);
        }
    }

    /// <summary>Whether the lock file's heartbeat is older than the duration (a missing file reads as 1601: stale).</summary>
    private static bool IsStale(string file, TimeSpan duration) => DateTime.UtcNow - File.GetLastWriteTimeUtc(file) >= duration;

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
            // Another taker removed or replaced it first.
        }
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
        // The kernel picks one winner (File.Move(overwrite: false) checks, then renames: racing takers could both win).
        return NoReplaceMove.TryMove(staging, full);
    }
}
