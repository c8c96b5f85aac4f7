using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Runs;

/// <summary>
/// One writer per run: <c>{run}/run.lock</c>, created with create-if-absent (a no-replace rename locally,
/// <c>If-None-Match: *</c> on blobs) so that of two processes starting the same run id exactly one proceeds. The holder
/// refreshes the lock's expiry while it works and deletes it when it stops (completed, failed or cancelled). A lock is
/// stale, and is taken over, when its expiry has passed (a killed process) or when its holder ran on this host and is
/// gone; otherwise the second writer fails with a message naming the holder.
/// </summary>
internal sealed class RunLock : IAsyncDisposable
{
    /// <summary>How long a lock stays valid without a refresh.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(5);

    private static readonly ConcurrentDictionary<string, byte> HeldHere = new();
    private readonly IArtifactStore _store;
    private readonly string _path;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _refresher;

    private readonly string _key;
    private readonly TimeSpan _refreshInterval;

    private RunLock(IArtifactStore store, string path, string key, LockContent content, TimeSpan refreshInterval)
    {
        _store = store;
        _path = path;
        _key = key;
        _refreshInterval = refreshInterval;
        _refresher = RefreshAsync(content, _stop.Token);
    }

    /// <summary>The lock's path for a run.</summary>
    public static string PathOf(string runId) => $"{runId}/run.lock";

    /// <summary>Takes the run's lock, or throws <see cref="InvalidOperationException"/> naming who holds it
    /// (<see cref="RunLockHeldException"/> when another live writer holds it).</summary>
    public static Task<RunLock> AcquireAsync(IArtifactStore store, string runId, CancellationToken cancellationToken) =>
        AcquireAsync(store, runId, Lifetime / 5, cancellationToken);

    /// <summary>As <see cref="AcquireAsync(IArtifactStore, string, CancellationToken)"/>, refreshing every <paramref name="refreshInterval"/> (tests).</summary>
    internal static async Task<RunLock> AcquireAsync(IArtifactStore store, string runId, TimeSpan refreshInterval, CancellationToken cancellationToken)
    {
        string path = PathOf(runId);
        string key = $"{store.Location}|{path}";
        if (!HeldHere.TryAdd(key, 0))
            throw new InvalidOperationException($"run '{runId}' is already running in this process; wait for it to finish");
        try
        {
            for (int attempt = 0; attempt < 3; attempt++)
            {
                var content = new LockContent(Environment.MachineName, Environment.ProcessId, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow + Lifetime);
                if (await store.TryCreateAsync(path, JsonSerializer.SerializeToUtf8Bytes(content), cancellationToken).ConfigureAwait(false))
                    return new RunLock(store, path, key, content, refreshInterval);
                var holder = await ReadAsync(store, path, cancellationToken).ConfigureAwait(false);
                if (holder is not null && !IsStale(holder))
                    throw new RunLockHeldException(runId, holder.Host, holder.Pid, holder.Expires,
                        $"run '{runId}' is being written by {holder.Host} (process {holder.Pid}) since {holder.Since:u}; two writers would overwrite each other's artifacts. " +
                        $"Wait for it, or if that process is gone, its lock expires at {holder.Expires:u}.");
                await store.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
            }
            throw new InvalidOperationException($"run '{runId}': could not take {path} after removing a stale lock three times; another writer keeps taking it");
        }
        catch
        {
            HeldHere.TryRemove(key, out _);
            throw;
        }
    }

    private static bool IsStale(LockContent holder)
    {
        if (holder.Expires < DateTimeOffset.UtcNow) return true;
        if (!string.Equals(holder.Host, Environment.MachineName, StringComparison.Ordinal)) return false;
        if (holder.Pid == Environment.ProcessId) return true; // a previous process with our pid (containers: pid 1); not held here
        try
        {
            using var process = Process.GetProcessById(holder.Pid);
            return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true; // no such process
        }
    }

    private static async Task<LockContent?> ReadAsync(IArtifactStore store, string path, CancellationToken cancellationToken)
    {
        try
        {
            await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
            return await JsonSerializer.DeserializeAsync<LockContent>(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or JsonException)
        {
            return null; // released meanwhile, or half-written by a crashed holder: treat as stale
        }
    }

    /// <summary>How many refreshes failed so far (a storage outage); each later one tries again.</summary>
    internal int FailedRefreshes => Volatile.Read(ref _failedRefreshes);

    /// <summary>How many refreshes succeeded so far.</summary>
    internal int Refreshes => Volatile.Read(ref _refreshes);

    private int _failedRefreshes;
    private int _refreshes;

    private async Task RefreshAsync(LockContent content, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_refreshInterval, cancellationToken).ConfigureAwait(false);
                await RefreshOnceAsync(content, cancellationToken).ConfigureAwait(false);
                Interlocked.Increment(ref _refreshes);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return; // released
            }
#pragma warning disable CA1031 // One failed refresh (a storage outage) must not end refreshing: the next one tries again.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Interlocked.Increment(ref _failedRefreshes);
                Trace.TraceWarning($"refreshing {_path} failed ({ex.GetType().Name}); retrying in {_refreshInterval}");
            }
        }
    }

    private async Task RefreshOnceAsync(LockContent content, CancellationToken cancellationToken)
    {
        string temp = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(temp, JsonSerializer.SerializeToUtf8Bytes(content with { Expires = DateTimeOffset.UtcNow + Lifetime }), cancellationToken).ConfigureAwait(false);
            await _store.CommitAsync(_path, temp, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>Stops refreshing and removes the lock (best effort: a storage error here never replaces the run's outcome;
    /// an undeleted lock expires after <see cref="Lifetime"/>).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await _refresher.ConfigureAwait(false);
            }
#pragma warning disable CA1031 // The refresher catches its own errors; whatever is left must not mask the run's outcome.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Trace.TraceWarning($"refresher of {_path} ended with {ex.GetType().Name}");
            }
            _stop.Dispose();
            try
            {
                await _store.DeleteAsync(_path, CancellationToken.None).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // Best effort: the lock expires by itself.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Trace.TraceWarning($"could not delete {_path} ({ex.GetType().Name}); it expires at the latest after {Lifetime}");
            }
        }
        finally
        {
            HeldHere.TryRemove(_key, out _);
        }
    }

    private sealed record LockContent(
        [property: JsonPropertyName("host")] string Host,
        [property: JsonPropertyName("pid")] int Pid,
        [property: JsonPropertyName("since")] DateTimeOffset Since,
        [property: JsonPropertyName("expires")] DateTimeOffset Expires);
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
