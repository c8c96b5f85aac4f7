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

    private RunLock(IArtifactStore store, string path, string key, LockContent content)
    {
        _store = store;
        _path = path;
        _key = key;
        _refresher = RefreshAsync(content, _stop.Token);
    }

    /// <summary>The lock's path for a run.</summary>
    public static string PathOf(string runId) => $"{runId}/run.lock";

    /// <summary>Takes the run's lock, or throws <see cref="InvalidOperationException"/> naming who holds it.</summary>
    public static async Task<RunLock> AcquireAsync(IArtifactStore store, string runId, CancellationToken cancellationToken)
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
                    return new RunLock(store, path, key, content);
                var holder = await ReadAsync(store, path, cancellationToken).ConfigureAwait(false);
                if (holder is not null && !IsStale(holder))
                    throw new InvalidOperationException(
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

    private async Task RefreshAsync(LockContent content, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(Lifetime / 5, cancellationToken).ConfigureAwait(false);
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
        }
        catch (OperationCanceledException)
        {
            // released
        }
    }

    /// <summary>Stops refreshing and removes the lock.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _refresher.ConfigureAwait(false);
        _stop.Dispose();
        try
        {
            await _store.DeleteAsync(_path, CancellationToken.None).ConfigureAwait(false);
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
