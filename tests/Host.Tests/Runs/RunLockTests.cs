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

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => RunLock.AcquireAsync(store, "r1", CancellationToken.None));

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
}
