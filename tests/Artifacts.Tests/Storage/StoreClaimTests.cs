using System.Text;
using Azure.Storage.Blobs.Specialized;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

public sealed class StoreClaimTests
{
    private static LocalArtifactStore NewStore() => new(Directory.CreateTempSubdirectory("prefpipe-claim-").FullName);

    [Fact]
    public async Task TryAcquireAsync_LocalHeldClaim_RefusesASecondWorkerWhileItIsRenewed()
    {
        var store = NewStore();
        // 3 s claims over 7 s: the heartbeat renews about every second, so a renewal that is late by up to 2 s (a loaded
        // CI machine: 1 s claims failed once when a renewal came late) still keeps the claim fresh.
        await using var first = await StoreClaim.TryAcquireAsync(store, "r/rank/shard-0000.lease", TimeSpan.FromSeconds(3));
        Assert.NotNull(first);

        // More than two durations later the heartbeat has kept it fresh.
        await Task.Delay(TimeSpan.FromSeconds(7));
        Assert.Null(await StoreClaim.TryAcquireAsync(store, "r/rank/shard-0000.lease", TimeSpan.FromSeconds(3)));
        Assert.False(first.Lost.IsCancellationRequested);
    }

    [Fact]
    public async Task TryAcquireAsync_LocalStaleLock_IsTakenOverAndTheOldHolderLosesIt()
    {
        var store = NewStore();
        string lockFile = Path.Combine(store.Location, "r", "shard-0001.lease");
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        File.WriteAllText(lockFile, "dead-worker", Encoding.UTF8);
        File.SetLastWriteTimeUtc(lockFile, DateTime.UtcNow.AddSeconds(-10));

        await using var claim = await StoreClaim.TryAcquireAsync(store, "r/shard-0001.lease", TimeSpan.FromSeconds(5));

        Assert.NotNull(claim);
        Assert.Equal(claim.Owner, (await StoreClaim.ReadHolderAsync(store, "r/shard-0001.lease", TimeSpan.FromSeconds(5)))?.Owner);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(lockFile)!, "*.stale"));
    }

    [Fact]
    public async Task TryAcquireAsync_LocalFreshLockOfAGoneProcessOnThisHost_IsTakenOverAtOnce()
    {
        var store = NewStore();
        string lockFile = Path.Combine(store.Location, "r", "shard-0003.lease");
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        // Fresh heartbeat, but its process (a pid beyond the kernel's range) is gone.
        File.WriteAllText(lockFile, $$"""{"owner":"x","host":"{{Environment.MachineName}}","pid":{{int.MaxValue}},"since":"2026-12-01T00:00:00Z"}""", Encoding.UTF8);
        var before = await StoreClaim.ReadHolderAsync(store, "r/shard-0003.lease", TimeSpan.FromMinutes(5));
        Assert.True(before is { Owner: "x", Pid: int.MaxValue, IsStale: true });

        await using var claim = await StoreClaim.TryAcquireAsync(store, "r/shard-0003.lease", TimeSpan.FromMinutes(5));

        Assert.NotNull(claim);
        var after = await StoreClaim.ReadHolderAsync(store, "r/shard-0003.lease", TimeSpan.FromMinutes(5));
        Assert.Equal((claim.Owner, Environment.MachineName, Environment.ProcessId, false), (after?.Owner, after?.Host, after?.Pid, after?.IsStale));
        // A live holder of this process is not gone: a second worker here is refused.
        Assert.Null(await StoreClaim.TryAcquireAsync(store, "r/shard-0003.lease", TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public async Task TryAcquireAsync_ManyWorkersTakingOverOneStaleLock_ExactlyOneHoldsIt()
    {
        // Workers polling on the same interval see a dead worker's lock go stale at the same moment.
        for (int round = 0; round < 20; round++)
        {
            var store = NewStore();
            string path = $"r/shard-{round:D4}.lease";
            string lockFile = Path.Combine(store.Location, path);
            Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
            File.WriteAllText(lockFile, "dead-worker", Encoding.UTF8);
            File.SetLastWriteTimeUtc(lockFile, DateTime.UtcNow.AddSeconds(-60));

            using var start = new ManualResetEventSlim();
            var takers = Enumerable.Range(0, 12).Select(_ => Task.Run(async () =>
            {
                start.Wait();
                return await StoreClaim.TryAcquireAsync(store, path, TimeSpan.FromSeconds(30));
            })).ToList();
            start.Set();
            var claims = (await Task.WhenAll(takers)).Where(c => c is not null).ToList();

            var holder = Assert.Single(claims);
            Assert.Equal(holder!.Owner, (await StoreClaim.ReadHolderAsync(store, path, TimeSpan.FromSeconds(30)))?.Owner);
            Assert.Equal([Path.GetFileName(lockFile)], Directory.GetFiles(Path.GetDirectoryName(lockFile)!).Select(Path.GetFileName));
            await holder.DisposeAsync();
        }
    }

    [Fact]
    public async Task DisposeAsync_Local_ReleasesTheClaimForTheNextWorker()
    {
        var store = NewStore();
        var first = await StoreClaim.TryAcquireAsync(store, "r/merge.lease", TimeSpan.FromSeconds(30));
        Assert.NotNull(first);
        await first.DisposeAsync();

        await using var second = await StoreClaim.TryAcquireAsync(store, "r/merge.lease", TimeSpan.FromSeconds(30));
        Assert.NotNull(second);
    }

    [Fact]
    public async Task Lost_LocalLockReplacedBySomeoneElse_IsCancelledAtTheNextHeartbeat()
    {
        var store = NewStore();
        await using var claim = await StoreClaim.TryAcquireAsync(store, "r/shard-0002.lease", TimeSpan.FromSeconds(1));
        Assert.NotNull(claim);
        string lockFile = Path.Combine(store.Location, "r", "shard-0002.lease");
        File.WriteAllText(lockFile, "another-worker", Encoding.UTF8);
        var theirs = DateTime.UtcNow.AddMinutes(-1);
        File.SetLastWriteTimeUtc(lockFile, theirs);

        // The next heartbeat (every third of a second; later on a loaded machine) sees the lock is not its own.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!claim.Lost.IsCancellationRequested && DateTime.UtcNow < deadline) await Task.Delay(100);

        Assert.True(claim.Lost.IsCancellationRequested);
        // The lost holder's renewals left the new holder's lock as it was: neither rewritten nor touched.
        Assert.Equal("another-worker", File.ReadAllText(lockFile, Encoding.UTF8));
        Assert.Equal(theirs, File.GetLastWriteTimeUtc(lockFile), TimeSpan.FromSeconds(1));
    }
}

[Collection(AzuriteCollection.Name)]
public sealed class BlobStoreClaimTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task TryAcquireAsync_Blob_LeaseIsExclusiveUntilReleased()
    {
        var store = ArtifactStores.Open($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/claims/t-{Guid.NewGuid():N}",
            environment: name => name == ArtifactStores.ConnectionStringVariable ? azurite.ConnectionString : null);

        var first = await StoreClaim.TryAcquireAsync(store, "run/rank/shard-0000.lease", TimeSpan.FromSeconds(15));
        Assert.NotNull(first);
        Assert.Null(await StoreClaim.TryAcquireAsync(store, "run/rank/shard-0000.lease", TimeSpan.FromSeconds(15)));
        await first.DisposeAsync();

        await using var second = await StoreClaim.TryAcquireAsync(store, "run/rank/shard-0000.lease", TimeSpan.FromSeconds(15));
        Assert.NotNull(second);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => StoreClaim.TryAcquireAsync(store, "run/x.lease", TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task TryAcquireAsync_BlobManyWorkersTakingOverALeaseOfAGoneLocalProcess_ExactlyOneHoldsIt()
    {
        // A process of this host died holding a 60 s lease: takers break it at once, and exactly one ends up holding it.
        var container = azurite.Container("claims");
        await container.CreateIfNotExistsAsync();
        for (int round = 0; round < 20; round++)
        {
            string prefix = $"t-{Guid.NewGuid():N}", path = $"r/shard-{round:D4}.lease";
            var store = ArtifactStores.Open($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/claims/{prefix}",
                environment: name => name == ArtifactStores.ConnectionStringVariable ? azurite.ConnectionString : null);
            var blob = container.GetBlobClient($"{prefix}/{path}");
            await blob.UploadAsync(BinaryData.FromString($$"""{"owner":"gone","host":"{{Environment.MachineName}}","pid":{{int.MaxValue}},"since":"2026-12-01T00:00:00Z"}"""));
            await blob.GetBlobLeaseClient().AcquireAsync(TimeSpan.FromSeconds(60));

            using var start = new ManualResetEventSlim();
            var takers = Enumerable.Range(0, 12).Select(_ => Task.Run(async () =>
            {
                start.Wait();
                return await StoreClaim.TryAcquireAsync(store, path, TimeSpan.FromSeconds(15));
            })).ToList();
            start.Set();
            var claims = (await Task.WhenAll(takers)).Where(c => c is not null).ToList();

            var holder = Assert.Single(claims);
            var recorded = await StoreClaim.ReadHolderAsync(store, path, TimeSpan.FromSeconds(15));
            Assert.Equal((holder!.Owner, Environment.ProcessId, false), (recorded?.Owner, recorded?.Pid, recorded?.IsStale));
            await holder.DisposeAsync();
            Assert.Null(await StoreClaim.ReadHolderAsync(store, path, TimeSpan.FromSeconds(15))); // released
        }
    }

    [Fact]
    public async Task TryAcquireAsync_BlobLeaseOfALiveHolderElsewhere_IsNotBroken()
    {
        var container = azurite.Container("claims");
        await container.CreateIfNotExistsAsync();
        string prefix = $"t-{Guid.NewGuid():N}";
        var store = ArtifactStores.Open($"http://127.0.0.1:{azurite.Port}/devstoreaccount1/claims/{prefix}",
            environment: name => name == ArtifactStores.ConnectionStringVariable ? azurite.ConnectionString : null);
        var blob = container.GetBlobClient($"{prefix}/r/merge.lease");
        await blob.UploadAsync(BinaryData.FromString("""{"owner":"o","host":"other-host","pid":4242,"since":"2026-12-01T00:00:00Z"}"""));
        await blob.GetBlobLeaseClient("00000000-0000-0000-0000-000000000042").AcquireAsync(TimeSpan.FromSeconds(60));

        Assert.Null(await StoreClaim.TryAcquireAsync(store, "r/merge.lease", TimeSpan.FromSeconds(15)));

        var holder = await StoreClaim.ReadHolderAsync(store, "r/merge.lease", TimeSpan.FromSeconds(15));
        Assert.Equal(("other-host", 4242, false), (holder?.Host, holder?.Pid, holder?.IsStale));
        await blob.GetBlobLeaseClient("00000000-0000-0000-0000-000000000042").RenewAsync(); // still theirs
    }
}
