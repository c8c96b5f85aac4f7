using System.Text;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

public sealed class RunLockTests
{
    private static LocalArtifactStore Store() => new(Directory.CreateTempSubdirectory("prefpipe-lock-").FullName);

    private static byte[] Lock(string host, int pid, DateTimeOffset expires) => Encoding.UTF8.GetBytes(
        $$"""{"host":"{{host}}","pid":{{pid}},"since":"{{DateTimeOffset.UtcNow.AddMinutes(-1):O}}","expires":"{{expires:O}}"}""");

    [Fact]
    public async Task Acquire_HeldByAnotherLiveWriter_FailsNamingTheHolder()
    {
        var store = Store();
        Assert.True(await store.TryCreateAsync(RunLock.PathOf("r1"), Lock("worker-7", 4242, DateTimeOffset.UtcNow.AddMinutes(4))));

        var ex = await Assert.ThrowsAsync<RunLockHeldException>(() => RunLock.AcquireAsync(store, "r1", CancellationToken.None));

        Assert.Contains("worker-7 (process 4242)", ex.Message, StringComparison.Ordinal);
        Assert.True(await store.ExistsAsync(RunLock.PathOf("r1")));
    }

    [Fact]
    public async Task Acquire_ExpiredLockOrDeadLocalProcess_TakesOverAndReleasesOnDispose()
    {
        var store = Store();
        await store.TryCreateAsync(RunLock.PathOf("r2"), Lock("worker-7", 4242, DateTimeOffset.UtcNow.AddMinutes(-1)));
        await using (await RunLock.AcquireAsync(store, "r2", CancellationToken.None))
            Assert.True(await store.ExistsAsync(RunLock.PathOf("r2")));
        Assert.False(await store.ExistsAsync(RunLock.PathOf("r2")));

        // A holder on this host whose process is gone (pid beyond the kernel's range) is stale at once.
        await store.TryCreateAsync(RunLock.PathOf("r3"), Lock(Environment.MachineName, int.MaxValue, DateTimeOffset.UtcNow.AddMinutes(4)));
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
        string runFolder = Path.Combine(root, "r6");
        var held = await RunLock.AcquireAsync(store, "r6", TimeSpan.FromMilliseconds(50), CancellationToken.None);

        // "Storage outage": the run's folder is replaced by a file, so committing the refreshed lock fails.
        Directory.Delete(runFolder, recursive: true);
        await File.WriteAllTextAsync(Path.Combine(root, "r6"), "not a folder");
        await WaitUntil(() => held.FailedRefreshes >= 2);
        int before = held.Refreshes;

        // Storage back: refreshing resumes (it did not stop at the first failure).
        File.Delete(runFolder);
        Directory.CreateDirectory(runFolder);
        await WaitUntil(() => held.Refreshes > before);

        // Outage again while disposing: neither the refresher nor the delete throws, and the run is released here.
        Directory.Delete(runFolder, recursive: true);
        await File.WriteAllTextAsync(runFolder, "not a folder");
        await WaitUntil(() => held.FailedRefreshes >= 3);
        await held.DisposeAsync();

        File.Delete(runFolder);
        await using (await RunLock.AcquireAsync(store, "r6", CancellationToken.None))
            Assert.True(await store.ExistsAsync(RunLock.PathOf("r6")));
    }

    [Fact]
    public async Task Acquire_HeldByAnotherLiveWriter_ThrowsRunLockHeldWithTheExpiry()
    {
        var store = Store();
        var expires = DateTimeOffset.UtcNow.AddMinutes(4);
        Assert.True(await store.TryCreateAsync(RunLock.PathOf("r7"), Lock("worker-8", 4343, expires)));

        var ex = await Assert.ThrowsAsync<RunLockHeldException>(() => RunLock.AcquireAsync(store, "r7", CancellationToken.None));

        Assert.Equal("worker-8", ex.Host);
        Assert.Equal(4343, ex.Pid);
        Assert.Equal(expires, ex.Expires, TimeSpan.FromSeconds(1));
        Assert.IsAssignableFrom<InvalidOperationException>(ex);
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
