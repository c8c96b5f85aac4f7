using System.Text;
using Azure.Storage.Blobs.Specialized;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Artifacts.Tests.Storage;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

public sealed class RunLockTests
{
    private static LocalArtifactStore Store() => new(Directory.CreateTempSubdirectory("prefpipe-lock-").FullName);

    /// <summary>The same folder under another spelling: a store this process does not already hold the run in, as
    /// another process's store would be (the in-process check keys on the store's location).</summary>
    private static LocalArtifactStore Alias(LocalArtifactStore store, int n) =>
        new(store.Location + string.Concat(Enumerable.Repeat("/.", n + 1)));

    /// <summary>Writes another writer's lock, last refreshed <paramref name="heartbeatAge"/> ago.</summary>
    private static string WriteLock(LocalArtifactStore store, string runId, string host, int pid, TimeSpan heartbeatAge)
    {
        string file = Path.Combine(store.Location, runId, "run.lock");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, $$"""{"owner":"{{Guid.NewGuid():N}}","host":"{{host}}","pid":{{pid}},"since":"{{DateTimeOffset.UtcNow.AddMinutes(-10):O}}"}""", Encoding.UTF8);
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow - heartbeatAge);
        return file;
    }

    [Fact]
    public async Task Acquire_HeldByAnotherLiveWriter_FailsNamingTheHolder()
    {
        var store = Store();
        WriteLock(store, "r1", "worker-7", 4242, TimeSpan.FromMinutes(1));

        var ex = await Assert.ThrowsAsync<RunLockHeldException>(() => RunLock.AcquireAsync(store, "r1", CancellationToken.None));

        Assert.Contains("worker-7 (process 4242)", ex.Message, StringComparison.Ordinal);
        Assert.True(await store.ExistsAsync(RunLock.PathOf("r1")));
    }

    [Fact]
    public async Task Acquire_ExpiredLockOrDeadLocalProcess_TakesOverAndReleasesOnDispose()
    {
        var store = Store();
        WriteLock(store, "r2", "worker-7", 4242, RunLock.Lifetime + TimeSpan.FromMinutes(1));
        await using (await RunLock.AcquireAsync(store, "r2", CancellationToken.None))
            Assert.True(await store.ExistsAsync(RunLock.PathOf("r2")));
        Assert.False(await store.ExistsAsync(RunLock.PathOf("r2")));

        // A holder on this host whose process is gone (pid beyond the kernel's range) is stale at once.
        WriteLock(store, "r3", Environment.MachineName, int.MaxValue, TimeSpan.Zero);
        await using (await RunLock.AcquireAsync(store, "r3", CancellationToken.None)) { }
    }

    [Fact]
    public async Task Acquire_SameRunTwiceInOneProcess_SecondFails()
    {
        var store = Store();
        await using var first = await RunLock.AcquireAsync(store, "r4", CancellationToken.None);

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => RunLock.AcquireAsync(store, "r4", CancellationToken.None));

        Assert.Contains("already running in this process", ex.Message, StringComparison.Ordinal);
        await using (await RunLock.AcquireAsync(store, "r5", CancellationToken.None)) { } // other runs are independent
    }

    [Fact]
    public async Task Refresh_FailingWhileStorageIsDown_KeepsRetryingAndDisposeNeitherThrowsNorKeepsTheRunHeld()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-lock-").FullName;
        var store = new LocalArtifactStore(root);
        string runFolder = Path.Combine(root, "r6"), aside = Path.Combine(root, "r6-aside"), lockFile = Path.Combine(runFolder, "run.lock");
        var held = await RunLock.AcquireAsync(store, "r6", TimeSpan.FromMilliseconds(50), CancellationToken.None);

        // "Storage outage": the run's folder is renamed away (one step: nothing races the refresher) and a file takes
        // its place, so every refresh in the meantime fails.
        Directory.Move(runFolder, aside);
        await File.WriteAllTextAsync(runFolder, "not a folder");
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        File.SetLastWriteTimeUtc(Path.Combine(aside, "run.lock"), DateTime.UtcNow.AddMinutes(-1));

        // Storage back: refreshing resumes (it did not stop at the first failure) and the lock was not lost.
        File.Delete(runFolder);
        Directory.Move(aside, runFolder);
        await WaitUntil(() => DateTime.UtcNow - File.GetLastWriteTimeUtc(lockFile) < TimeSpan.FromSeconds(30));
        Assert.False(held.Lost.IsCancellationRequested);

        // Outage again while disposing: neither the refresher nor the release throws, and the run is released here.
        Directory.Move(runFolder, aside);
        await File.WriteAllTextAsync(runFolder, "not a folder");
        await Task.Delay(TimeSpan.FromMilliseconds(200));
        await held.DisposeAsync();

        File.Delete(runFolder);
        await using (await RunLock.AcquireAsync(store, "r6", CancellationToken.None))
            Assert.True(await store.ExistsAsync(RunLock.PathOf("r6")));
    }

    [Fact]
    public async Task Acquire_HeldByAnotherLiveWriter_ThrowsRunLockHeldWithTheExpiry()
    {
        var store = Store();
        WriteLock(store, "r7", "worker-8", 4343, TimeSpan.FromMinutes(1));

        var ex = await Assert.ThrowsAsync<RunLockHeldException>(() => RunLock.AcquireAsync(store, "r7", CancellationToken.None));

        Assert.Equal("worker-8", ex.Host);
        Assert.Equal(4343, ex.Pid);
        Assert.Equal(DateTimeOffset.UtcNow + RunLock.Lifetime - TimeSpan.FromMinutes(1), ex.Expires, TimeSpan.FromSeconds(5)); // heartbeat + lifetime
        Assert.IsAssignableFrom<InvalidOperationException>(ex);
    }

    [Fact]
    public async Task Acquire_ManyWritersTakingOverOneStaleRunLock_ExactlyOneHoldsIt()
    {
        // Writers retried together after a crash see the dead writer's lock as stale at the same moment: expired
        // (even rounds) or left by a process of this host that is gone (odd rounds).
        for (int round = 0; round < 20; round++)
        {
            var store = Store();
            string runId = $"r-{round:D2}";
            string lockFile = round % 2 == 0
                ? WriteLock(store, runId, "worker-7", 4242, RunLock.Lifetime + TimeSpan.FromMinutes(1))
                : WriteLock(store, runId, Environment.MachineName, int.MaxValue, TimeSpan.Zero);

            using var start = new ManualResetEventSlim();
            var writers = Enumerable.Range(0, 12).Select(i => Task.Run<(RunLock? Lock, Exception? Error)>(async () =>
            {
                start.Wait();
                try
                {
                    return (await RunLock.AcquireAsync(Alias(store, i), runId, CancellationToken.None), null);
                }
                catch (InvalidOperationException ex)
                {
                    return (null, ex);
                }
            })).ToList();
            start.Set();
            var results = await Task.WhenAll(writers);

            var holder = Assert.Single(results, r => r.Lock is not null).Lock!;
            Assert.All(results.Where(r => r.Lock is null), r => Assert.IsType<RunLockHeldException>(r.Error));
            var recorded = await StoreClaim.ReadHolderAsync(store, RunLock.PathOf(runId), RunLock.Lifetime);
            Assert.NotNull(recorded);
            Assert.Equal((Environment.MachineName, Environment.ProcessId, false), (recorded.Host, recorded.Pid, recorded.IsStale));
            Assert.Equal(["run.lock"], Directory.GetFiles(Path.GetDirectoryName(lockFile)!).Select(Path.GetFileName));
            await holder.DisposeAsync();
            Assert.False(File.Exists(lockFile));
        }
    }

    [Fact]
    public async Task Refresh_AfterAnotherWriterTookTheLockOver_LeavesTheirLockAndReportsTheLoss()
    {
        var store = Store();
        string lockFile = Path.Combine(store.Location, "r8", "run.lock");
        var first = await RunLock.AcquireAsync(store, "r8", TimeSpan.FromSeconds(3), CancellationToken.None);

        // The first writer stalls past its lock's lifetime (no refresh reached the store); a second one takes over.
        File.SetLastWriteTimeUtc(lockFile, DateTime.UtcNow - RunLock.Lifetime - TimeSpan.FromMinutes(1));
        var second = await RunLock.AcquireAsync(Alias(store, 0), "r8", TimeSpan.FromMinutes(1), CancellationToken.None);
        string secondsLock = await File.ReadAllTextAsync(lockFile);
        var secondsHeartbeat = DateTime.UtcNow.AddMinutes(-2);
        File.SetLastWriteTimeUtc(lockFile, secondsHeartbeat);

        // The first writer's next refresh finds the lock is not its own: it learns it lost the run, and writes nothing.
        await WaitUntil(() => first.Lost.IsCancellationRequested);
        Assert.Equal(secondsLock, await File.ReadAllTextAsync(lockFile));
        Assert.Equal(secondsHeartbeat, File.GetLastWriteTimeUtc(lockFile), TimeSpan.FromSeconds(1));

        // Nor does its release remove the new holder's lock.
        await first.DisposeAsync();
        Assert.Equal(secondsLock, await File.ReadAllTextAsync(lockFile));
        Assert.False(second.Lost.IsCancellationRequested);
        await second.DisposeAsync();
        Assert.False(File.Exists(lockFile));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting");
            await Task.Delay(20);
        }
    }
}

[Collection(AzuriteCollection.Name)]
public sealed class BlobRunLockTests(AzuriteFixture azurite)
{
    private (IArtifactStore Store, Azure.Storage.Blobs.BlobContainerClient Container, string Prefix) Open()
    {
        string prefix = $"t-{Guid.NewGuid():N}";
        var store = ArtifactStores.Open($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/runlocks/{prefix}",
            environment: name => name == ArtifactStores.ConnectionStringVariable ? azurite.ConnectionString : null);
        return (store, azurite.Container("runlocks"), prefix);
    }

    [Fact]
    public async Task Acquire_BlobHeldByAnotherLiveWriter_FailsNamingItAndSucceedsOnceReleased()
    {
        var (store, _, _) = Open();
        // Another writer (here a claim of this process outside the run lock) holds the run's lease.
        var other = await StoreClaim.TryAcquireAsync(store, RunLock.PathOf("b1"), TimeSpan.FromSeconds(60));
        Assert.NotNull(other);

        var ex = await Assert.ThrowsAsync<RunLockHeldException>(() => RunLock.AcquireAsync(store, "b1", CancellationToken.None));
        Assert.Equal((Environment.MachineName, Environment.ProcessId), (ex.Host, ex.Pid));
        Assert.InRange(ex.Expires, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddSeconds(61));

        await other.DisposeAsync();
        await using var held = await RunLock.AcquireAsync(store, "b1", CancellationToken.None);
        Assert.False(held.Lost.IsCancellationRequested);
    }

    [Fact]
    public async Task Acquire_BlobLeaseOfAGoneProcessOnThisHost_TakesItOverAtOnce()
    {
        var (store, container, prefix) = Open();
        await container.CreateIfNotExistsAsync();
        var blob = container.GetBlobClient($"{prefix}/{RunLock.PathOf("b2")}");
        await blob.UploadAsync(BinaryData.FromString($$"""{"owner":"gone","host":"{{Environment.MachineName}}","pid":{{int.MaxValue}},"since":"2026-12-01T00:00:00Z"}"""));
        await blob.GetBlobLeaseClient().AcquireAsync(TimeSpan.FromSeconds(60)); // never renewed: its process is gone

        await using var held = await RunLock.AcquireAsync(store, "b2", CancellationToken.None);

        var holder = await StoreClaim.ReadHolderAsync(store, RunLock.PathOf("b2"), TimeSpan.FromSeconds(60));
        Assert.Equal((Environment.MachineName, Environment.ProcessId), (holder?.Host, holder?.Pid));
    }
}
