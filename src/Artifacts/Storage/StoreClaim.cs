using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// An exclusive, expiring claim on a name in an artifact store (e.g. one shard of a stage), renewed in the background
/// while it is held. A holder that dies stops renewing and loses the claim after <see cref="Duration"/>; another worker
/// can then take it, at once when the holder ran on this host and its process is gone. Claims only avoid duplicate
/// work: results must still be committed atomically and idempotently, because a holder that stalls past its expiry may
/// finish after another took over. Every renewal checks that the claim is still this holder's; one that finds it
/// taken cancels <see cref="Lost"/> and never writes over the new holder.
/// </summary>
/// <remarks>
/// The claim's body names its holder: <c>{"owner", "host", "pid", "since"}</c> (<see cref="ReadHolderAsync"/>).
/// Azure Blob: a blob lease (<see cref="BlobLeaseClient"/>, 15–60 s, the lease id is the owner) on a small blob at the
/// path, renewed every third of the duration; the body is written under the lease. Local folder: a lock file at the
/// path holding the body; its modification time is the heartbeat (touched every third of the duration), and a lock not
/// touched for <see cref="Duration"/> is stale and may be taken over (under a guard file, replaced by one rename).
/// </remarks>
public sealed class StoreClaim : IAsyncDisposable
{
    /// <summary>Blob leases last 15 to 60 seconds.</summary>
    private static readonly TimeSpan LongestLease = TimeSpan.FromSeconds(60);

    // Owners of the claims this process holds or is taking. A claim naming this host and this process id whose owner
    // is not here was left by an earlier process that had the same id (containers: pid 1), so it is stale.
    private static readonly ConcurrentDictionary<string, byte> LiveOwners = new();

    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<CancellationToken, Task<bool>> _renew;
    private readonly Func<Task> _release;
    private Task? _heartbeat;

    private readonly TimeSpan _renewEvery;

    private StoreClaim(string path, string owner, TimeSpan duration, TimeSpan renewEvery, Func<CancellationToken, Task<bool>> renew, Func<Task> release)
    {
        Path = path;
        Owner = owner;
        Duration = duration;
        _renewEvery = renewEvery;
        _renew = renew;
        _release = release;
    }

    /// <summary>The claimed name in the store.</summary>
    public string Path { get; }

    /// <summary>This holder's token (the <c>owner</c> in the claim's body; the lease id on blobs).</summary>
    public string Owner { get; }

    /// <summary>How long the claim lasts without renewal.</summary>
    public TimeSpan Duration { get; }

    /// <summary>Cancelled when a renewal finds the claim taken by someone else or fails until it expired.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>
    /// Tries to claim <paramref name="path"/> for <paramref name="duration"/>, renewing it every third of that; null when
    /// someone else holds it.
    /// </summary>
    /// <param name="store">A store from <see cref="ArtifactStores.Open"/>, a <see cref="LocalArtifactStore"/> or a <see cref="BlobArtifactStore"/>.</param>
    /// <param name="path">Name of the claim, e.g. <c>run/rank/shards/4/shard-0001.lease</c>.</param>
    /// <param name="duration">Expiry without renewal: 1 s or more locally; 15 to 60 s on Azure Blob (the lease limits, see <see cref="DurationFor"/>).</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <exception cref="ArgumentOutOfRangeException">The duration is outside the store's limits.</exception>
    /// <exception cref="NotSupportedException">A store type without claims.</exception>
    public static Task<StoreClaim?> TryAcquireAsync(IArtifactStore store, string path, TimeSpan duration, CancellationToken cancellationToken = default) =>
        TryAcquireAsync(store, path, duration, duration / 3, cancellationToken);

    /// <summary>As <see cref="TryAcquireAsync(IArtifactStore, string, TimeSpan, CancellationToken)"/>, renewing every
    /// <paramref name="renewEvery"/> (more than zero, less than <paramref name="duration"/>).</summary>
    /// <param name="store">A local or blob store.</param>
    /// <param name="path">Name of the claim.</param>
    /// <param name="duration">Expiry without renewal.</param>
    /// <param name="renewEvery">Time between renewals.</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <exception cref="ArgumentOutOfRangeException">The duration is outside the store's limits, or the renewal interval outside (0, duration).</exception>
    /// <exception cref="NotSupportedException">A store type without claims.</exception>
    public static async Task<StoreClaim?> TryAcquireAsync(IArtifactStore store, string path, TimeSpan duration, TimeSpan renewEvery, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArtifactPath.Validate(path);
        if (renewEvery <= TimeSpan.Zero || renewEvery >= duration)
            throw new ArgumentOutOfRangeException(nameof(renewEvery), renewEvery, "a claim is renewed more often than it expires");
        return Inner(store) switch
        {
            BlobArtifactStore blob => await AcquireBlobAsync(store, blob, path, duration, renewEvery, cancellationToken).ConfigureAwait(false),
            LocalArtifactStore local => AcquireLocal(local.FullPath(path), path, duration, renewEvery),
            var inner => throw new NotSupportedException($"{inner.GetType().Name} ({store.Location}) does not support claims"),
        };
    }

    /// <summary>The longest claim duration up to <paramref name="wanted"/> that <paramref name="store"/> allows (blob leases: 60 s).</summary>
    /// <param name="store">A local or blob store.</param>
    /// <param name="wanted">The duration the caller would like.</param>
    public static TimeSpan DurationFor(IArtifactStore store, TimeSpan wanted) =>
        Inner(store) is BlobArtifactStore && wanted > LongestLease ? LongestLease : wanted;

    /// <summary>
    /// Who holds the claim on <paramref name="path"/>, or null when nobody does (no claim, released, or a blob lease that
    /// ended). <see cref="ClaimHolder.Expires"/> is the heartbeat plus <paramref name="duration"/> locally, and an upper
    /// bound (now plus the duration) on blobs, whose lease expiry is not readable.
    /// </summary>
    /// <param name="store">A local or blob store.</param>
    /// <param name="path">Name of the claim.</param>
    /// <param name="duration">The duration its holders claim it for.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="NotSupportedException">A store type without claims.</exception>
    public static async Task<ClaimHolder?> ReadHolderAsync(IArtifactStore store, string path, TimeSpan duration, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArtifactPath.Validate(path);
        switch (Inner(store))
        {
            case LocalArtifactStore local:
            {
                string full = local.FullPath(path);
                var heartbeat = File.GetLastWriteTimeUtc(full);
                var body = ReadBody(full, out bool exists);
                if (!exists) return null;
                var expires = new DateTimeOffset(heartbeat, TimeSpan.Zero) + duration;
                return Holder(body, expires, expires <= DateTimeOffset.UtcNow || IsGone(body));
            }
            case BlobArtifactStore blob:
            {
                try
                {
                    var content = (await blob.BlobClient(path).DownloadContentAsync(cancellationToken).ConfigureAwait(false)).Value;
                    if (content.Details.LeaseState != LeaseState.Leased) return null;
                    var body = ParseBody(content.Content.ToString());
                    return Holder(body, DateTimeOffset.UtcNow + duration, IsGone(body));
                }
                catch (RequestFailedException ex) when (ex.Status == 404)
                {
                    return null;
                }
            }
            case var inner:
                throw new NotSupportedException($"{inner.GetType().Name} ({store.Location}) does not support claims");
        }
    }

    private static IArtifactStore Inner(IArtifactStore store) => store is ResilientArtifactStore resilient ? resilient.Inner : store;

    private static ClaimHolder Holder(ClaimBody? body, DateTimeOffset expires, bool isStale) =>
        new(body?.Owner, body?.Host, body?.Pid, body?.Since, expires, isStale);

    /// <summary>Stops renewing and releases the claim (best effort: an unreleased claim expires by itself).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        // Best effort: the heartbeat's own faults were already turned into Lost; an unreleased claim expires.
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
        LiveOwners.TryRemove(Owner, out _);
        _stop.Dispose();
        _lost.Dispose();
    }

    private void Start()
    {
        _heartbeat = Task.Run(async () =>
        {
            var interval = _renewEvery;
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
                    // Any failure to renew (network, auth, timeout) is transient until the claim would have expired.
                    catch (Exception) when (!_stop.IsCancellationRequested)
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

    private static async Task<StoreClaim?> AcquireBlobAsync(IArtifactStore store, BlobArtifactStore blob, string path, TimeSpan duration, TimeSpan renewEvery, CancellationToken cancellationToken)
    {
        if (duration < TimeSpan.FromSeconds(15) || duration > LongestLease)
            throw new ArgumentOutOfRangeException(nameof(duration), duration, "blob lease durations are 15 to 60 seconds");
        // The lease needs a blob to hold: create an empty one if it is not there (create-if-absent; losing the race is fine).
        await store.TryCreateAsync(path, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
        var (owner, body) = NewOwner();
        var client = blob.BlobClient(path);
        var lease = client.GetBlobLeaseClient(owner);
        try
        {
            if (!await TryLeaseAsync(lease, duration, cancellationToken).ConfigureAwait(false)
                && !(await TryBreakGoneHolderAsync(client, cancellationToken).ConfigureAwait(false) && await TryLeaseAsync(lease, duration, cancellationToken).ConfigureAwait(false)))
            {
                LiveOwners.TryRemove(owner, out _);
                return null;
            }
            // The body names the holder. Written under the lease: a taker that broke it first makes this fail.
            await client.UploadAsync(BinaryData.FromString(body), new BlobUploadOptions { Conditions = new BlobRequestConditions { LeaseId = owner } }, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412)
        {
            LiveOwners.TryRemove(owner, out _);
            return null; // the lease was broken by a taker between our acquire and our write: theirs now
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsTransient(ex))
        {
            // Not acquired this round (the lease client has no retry layer): callers poll again. Should the lease
            // have been granted after all, it expires unrenewed and the claim is taken then.
            LiveOwners.TryRemove(owner, out _);
            return null;
        }
        catch
        {
            LiveOwners.TryRemove(owner, out _);
            throw;
        }
        var claim = new StoreClaim(path, owner, duration, renewEvery,
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

    private static async Task<bool> TryLeaseAsync(BlobLeaseClient lease, TimeSpan duration, CancellationToken cancellationToken)
    {
        try
        {
            await lease.AcquireAsync(duration, cancellationToken: cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.LeaseAlreadyPresent || ex.Status == 409)
        {
            return false;
        }
    }

    /// <summary>
    /// Breaks a lease whose holder ran on this host and is gone. The break is conditional on the blob still being the
    /// one whose body named that holder (If-Match on its ETag): a new holder's body write changes the ETag, so a taker
    /// that read the old body can no longer break the new lease; one that breaks it before that write makes the write fail.
    /// </summary>
    private static async Task<bool> TryBreakGoneHolderAsync(Azure.Storage.Blobs.BlobClient client, CancellationToken cancellationToken)
    {
        try
        {
            var content = (await client.DownloadContentAsync(cancellationToken).ConfigureAwait(false)).Value;
            if (content.Details.LeaseState != LeaseState.Leased) return true; // ended meanwhile: just try again
            if (!IsGone(ParseBody(content.Content.ToString()))) return false;
            await client.GetBlobLeaseClient().BreakAsync(TimeSpan.Zero, new RequestConditions { IfMatch = content.Details.ETag }, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 404 or 409 or 412)
        {
            return false;
        }
    }

    private static bool IsTransient(Exception ex) => ex switch
    {
        RequestFailedException r => r.Status is 408 or 429 or >= 500 or 0,
        HttpRequestException or TimeoutException or TaskCanceledException => true,
        _ => false,
    };

    private static StoreClaim? AcquireLocal(string full, string path, TimeSpan duration, TimeSpan renewEvery)
    {
        if (duration < TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(duration), duration, "local claims last at least 1 second");
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        var (owner, body) = NewOwner();
        try
        {
            if (TryCreateLock(full, body) || TryTakeOver(full, body, duration)) return Local(full, path, owner, body, duration, renewEvery);
        }
        catch
        {
            LiveOwners.TryRemove(owner, out _);
            throw;
        }
        LiveOwners.TryRemove(owner, out _);
        return null;
    }

    /// <summary>A new owner token, registered as live in this process before anyone can read it, and the body naming it.</summary>
    private static (string Owner, string Body) NewOwner()
    {
        string owner = Guid.NewGuid().ToString("N");
        LiveOwners.TryAdd(owner, 0);
        return (owner, JsonSerializer.Serialize(new ClaimBody(owner, Environment.MachineName, Environment.ProcessId, DateTimeOffset.UtcNow)));
    }

    /// <summary>
    /// Takes over a lock whose heartbeat is older than <paramref name="duration"/> or whose holder is gone. Takers first
    /// win a guard file (create-if-absent), re-check the lock under it and only then replace it by one rename, so a lock
    /// that a taker has just made fresh is never moved away by another (moving the stale lock aside and creating a new
    /// one let a third worker slip in while a fourth was giving a wrongly moved fresh lock back: two holders). A guard
    /// left by a taker that died is removed once it is as old as <paramref name="duration"/>; that round takes nothing.
    /// </summary>
    private static bool TryTakeOver(string full, string body, TimeSpan duration)
    {
        if (!IsTakeable(full, duration)) return false;
        string guard = $"{full}.takeover";
        if (!TryCreateLock(guard, body))
        {
            if (IsStale(guard, duration)) TryDelete(guard);
            return false;
        }
        try
        {
            if (!File.Exists(full)) return TryCreateLock(full, body); // released meanwhile: a plain create-if-absent
            if (!IsTakeable(full, duration)) return false;           // renewed or taken over meanwhile
            string staging = $"{full}.{Guid.NewGuid():N}.partial";
            File.WriteAllText(staging, body, Encoding.UTF8);
            File.Move(staging, full, overwrite: true); // rename(2): the stale lock is replaced in one step
            return true;
        }
        finally
        {
            if (IsOwner(guard, body)) TryDelete(guard);
        }
    }

    /// <summary>Whether the lock file's heartbeat is older than the duration (a missing file reads as 1601: stale).</summary>
    private static bool IsStale(string file, TimeSpan duration) => DateTime.UtcNow - File.GetLastWriteTimeUtc(file) >= duration;

    private static bool IsTakeable(string full, TimeSpan duration) => IsStale(full, duration) || IsGone(ReadBody(full, out _));

    /// <summary>
    /// Whether the body's holder ran on this host and its process is gone (or is an earlier process with our id). A
    /// holder elsewhere, or a body that does not say, is only ever stale by its heartbeat.
    /// </summary>
    private static bool IsGone(ClaimBody? body)
    {
        if (body is not { Host: { } host, Pid: int pid } || !string.Equals(host, Environment.MachineName, StringComparison.Ordinal)) return false;
        if (pid == Environment.ProcessId) return body.Owner is null || !LiveOwners.ContainsKey(body.Owner);
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true; // no such process
        }
    }

    private static ClaimBody? ReadBody(string full, out bool exists)
    {
        string text;
        try
        {
            text = File.ReadAllText(full, Encoding.UTF8);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            exists = false;
            return null;
        }
        exists = true;
        return ParseBody(text);
    }

    /// <summary>The body's fields; null for a body that is not one (empty while a blob holder writes it, another format).</summary>
    private static ClaimBody? ParseBody(string text)
    {
        try
        {
            return text.Length == 0 ? null : JsonSerializer.Deserialize<ClaimBody>(text);
        }
        catch (JsonException)
        {
            return null;
        }
    }

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

    private static StoreClaim Local(string full, string path, string owner, string body, TimeSpan duration, TimeSpan renewEvery)
    {
        var claim = new StoreClaim(path, owner, duration, renewEvery,
            _ =>
            {
                // Only ever touch our own lock: a holder whose lock was taken over must not refresh the new owner's.
                if (!IsOwner(full, body)) return Task.FromResult(false);
                File.SetLastWriteTimeUtc(full, DateTime.UtcNow);
                return Task.FromResult(true);
            },
            () =>
            {
                if (IsOwner(full, body)) File.Delete(full);
                return Task.CompletedTask;
            });
        claim.Start();
        return claim;
    }

    private static bool IsOwner(string full, string body)
    {
        try
        {
            return File.ReadAllText(full, Encoding.UTF8) == body;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }

    private static bool TryCreateLock(string full, string body)
    {
        string staging = $"{full}.{Guid.NewGuid():N}.partial";
        File.WriteAllText(staging, body, Encoding.UTF8);
        // The kernel picks one winner (File.Move(overwrite: false) checks, then renames: racing takers could both win).
        return NoReplaceMove.TryMove(staging, full);
    }

    private sealed record ClaimBody(
        [property: JsonPropertyName("owner")] string? Owner,
        [property: JsonPropertyName("host")] string? Host,
        [property: JsonPropertyName("pid")] int? Pid,
        [property: JsonPropertyName("since")] DateTimeOffset? Since);
}

/// <summary>Who holds a <see cref="StoreClaim"/>, from its body (fields are null where the body does not say).</summary>
/// <param name="Owner">The holder's token (<see cref="StoreClaim.Owner"/>).</param>
/// <param name="Host">The machine it runs on.</param>
/// <param name="Pid">Its process id there.</param>
/// <param name="Since">When it took the claim.</param>
/// <param name="Expires">When the claim expires unless renewed (on blobs: at the latest).</param>
/// <param name="IsStale">Whether it may be taken over now: expired, or its holder ran on this host and is gone.</param>
public sealed record ClaimHolder(string? Owner, string? Host, int? Pid, DateTimeOffset? Since, DateTimeOffset Expires, bool IsStale);
