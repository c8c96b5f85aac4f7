using System.Collections.Concurrent;
using System.Diagnostics;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Runs;

/// <summary>
/// One writer per run: a <see cref="StoreClaim"/> on <c>{run}/run.lock</c>, so that of two processes starting the same
/// run id exactly one proceeds (locally a lock file made by a no-replace rename and taken over under a guard file;
/// on Azure Blob a lease). The holder renews it while it works and releases it when it stops (completed, failed or
/// cancelled). A lock is stale, and is taken over, when it was not renewed for its lifetime (a killed process) or at
/// once when its holder ran on this host and is gone; otherwise the second writer fails with a message naming the
/// holder. A renewal only ever renews this holder's own lock: one that finds it taken over cancels <see cref="Lost"/>.
/// </summary>
internal sealed class RunLock : IAsyncDisposable
{
    /// <summary>How long a lock stays valid without a refresh, at most (blob leases: one minute).</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    private static readonly ConcurrentDictionary<string, byte> HeldHere = new();
    private readonly StoreClaim _claim;
    private readonly string _key;

    private RunLock(StoreClaim claim, string key)
    {
        _claim = claim;
        _key = key;
    }

    /// <summary>The lock's path for a run.</summary>
    public static string PathOf(string runId) => $"{runId}/run.lock";

    /// <summary>Cancelled when the lock was lost: a refresh found it taken over, or refreshes failed until it expired.
    /// The run must stop writing then: another writer may hold the run.</summary>
    public CancellationToken Lost => _claim.Lost;

    /// <summary>Takes the run's lock, or throws <see cref="InvalidOperationException"/> naming who holds it
    /// (<see cref="RunLockHeldException"/> when another live writer holds it).</summary>
    public static Task<RunLock> AcquireAsync(IArtifactStore store, string runId, CancellationToken cancellationToken) =>
        AcquireAsync(store, runId, null, cancellationToken);

    /// <summary>As <see cref="AcquireAsync(IArtifactStore, string, CancellationToken)"/>, refreshing every <paramref name="refreshInterval"/> (tests).</summary>
    internal static async Task<RunLock> AcquireAsync(IArtifactStore store, string runId, TimeSpan? refreshInterval, CancellationToken cancellationToken)
    {
        string path = PathOf(runId);
        string key = $"{store.Location}|{path}";
        if (!HeldHere.TryAdd(key, 0))
            throw new InvalidOperationException($"run '{runId}' is already running in this process; wait for it to finish");
        try
        {
            var lifetime = StoreClaim.DurationFor(store, Lifetime);
            for (int attempt = 0; attempt < 3; attempt++)
            {
                if (attempt > 0) await Task.Delay(TimeSpan.FromMilliseconds(100 * attempt), cancellationToken).ConfigureAwait(false);
                var claim = await StoreClaim.TryAcquireAsync(store, path, lifetime, refreshInterval ?? lifetime / 3, cancellationToken).ConfigureAwait(false);
                if (claim is not null) return new RunLock(claim, key);
                var holder = await StoreClaim.ReadHolderAsync(store, path, lifetime, cancellationToken).ConfigureAwait(false);
                if (holder is null || holder.IsStale) continue; // released, or being taken over by another: look again
                string who = holder.Host is null ? "another writer" : $"{holder.Host} (process {holder.Pid})";
                string since = holder.Since is { } s ? $" since {s:u}" : "";
                throw new RunLockHeldException(runId, holder.Host ?? "unknown", holder.Pid ?? 0, holder.Expires,
                    $"run '{runId}' is being written by {who}{since}; two writers would overwrite each other's artifacts. " +
                    $"Wait for it, or if that process is gone, its lock expires at {holder.Expires:u}.");
            }
            throw new InvalidOperationException($"run '{runId}': could not take {path} in three attempts; another writer keeps taking it");
        }
        catch
        {
            HeldHere.TryRemove(key, out _);
            throw;
        }
    }

    /// <summary>Stops refreshing and removes the lock (best effort: a storage error here never replaces the run's outcome;
    /// an unreleased lock expires after its lifetime).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _claim.DisposeAsync().ConfigureAwait(false);
        }
        // Best effort: the lock expires by itself, and must not mask the run's outcome.
        catch (Exception ex)
        {
            Trace.TraceWarning($"could not release {_claim.Path} ({ex.GetType().Name}); it expires at the latest after {_claim.Duration}");
        }
        finally
        {
            HeldHere.TryRemove(_key, out _);
        }
    }
}

/// <summary>Another live writer holds the run's lock (<see cref="Expires"/> says until when at the latest, unless refreshed).</summary>
internal sealed class RunLockHeldException : InvalidOperationException
{
    public RunLockHeldException(string runId, string host, int pid, DateTimeOffset expires, string message)
        : base(message)
    {
        RunId = runId;
        Host = host;
        Pid = pid;
        Expires = expires;
    }

    /// <summary>The run whose lock is held.</summary>
    public string RunId { get; }

    /// <summary>The holder's host name.</summary>
    public string Host { get; }

    /// <summary>The holder's process id.</summary>
    public int Pid { get; }

    /// <summary>When the holder's lock expires unless it refreshes it.</summary>
    public DateTimeOffset Expires { get; }
}
