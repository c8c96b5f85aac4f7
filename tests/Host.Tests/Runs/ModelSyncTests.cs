using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;
using PrefPipe.Trainer.Stages;
using PrefPipe.Host.Tests.Service;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>Trained model folders survive the container: uploaded to a blob store with the run, restored where needed.</summary>
[Collection(ServeAzuriteCollection.Name)]
public sealed class ModelSyncTests(ServeAzuriteFixture azurite)
{
    [Fact]
    public async Task UploadThenRestore_BlobStore_RecreatesTheCheckpointByteForByte()
    {
        string work = Directory.CreateTempSubdirectory("prefpipe-modelsync-").FullName;
        string checkpoint = Path.Combine(work, "train", "checkpoint-3");
        Directory.CreateDirectory(checkpoint);
        var weights = new byte[4096];
        new Random(5).NextBytes(weights);
        await File.WriteAllBytesAsync(Path.Combine(checkpoint, "model.safetensors"), weights);
        await File.WriteAllTextAsync(Path.Combine(checkpoint, "trainer_state.json"), "{\"global_step\":3}");
        // The resume state lives in a subfolder: a resume in a fresh container needs it as much as the weights.
        Directory.CreateDirectory(Path.Combine(checkpoint, PrefPipe.Trainer.Checkpoint.StateFolder));
        var optimizer = new byte[1024];
        new Random(6).NextBytes(optimizer);
        await File.WriteAllBytesAsync(Path.Combine(checkpoint, PrefPipe.Trainer.Checkpoint.StateFolder, "optimizer.safetensors"), optimizer);
        var store = ArtifactStores.Open($"{azurite.BlobEndpoint}/artifacts-m/runs");

        string? uri = await ModelSync.UploadAsync(store, checkpoint, "r1/train/model");
        string fresh = Path.Combine(work, "fresh", "train");
        await ModelSync.RestoreAsync(store, "r1/train/model", fresh);

        Assert.Equal($"{azurite.BlobEndpoint}/artifacts-m/runs/r1/train/model/checkpoint-3", uri);
        Assert.Equal(Path.Combine(fresh, "checkpoint-3"), PrefPipe.Trainer.Checkpoint.Latest(fresh));
        Assert.Equal(weights, await File.ReadAllBytesAsync(Path.Combine(fresh, "checkpoint-3", "model.safetensors")));
        Assert.Equal(optimizer, await File.ReadAllBytesAsync(Path.Combine(fresh, "checkpoint-3", PrefPipe.Trainer.Checkpoint.StateFolder, "optimizer.safetensors")));
    }

    [Fact]
    public async Task Upload_RerunWithFewerSteps_RemovesTheOlderCheckpointSoRestoreGetsTheNewOne()
    {
        string work = Directory.CreateTempSubdirectory("prefpipe-modelsync-rerun-").FullName;
        var store = ArtifactStores.Open($"{azurite.BlobEndpoint}/artifacts-m/runs");
        foreach (var (step, content) in new[] { (5, "old"), (2, "new") })
        {
            string checkpoint = Path.Combine(work, $"run{step}", $"checkpoint-{step}");
            Directory.CreateDirectory(checkpoint);
            await File.WriteAllTextAsync(Path.Combine(checkpoint, "model.safetensors"), content);
            await File.WriteAllTextAsync(Path.Combine(checkpoint, "trainer_state.json"), $"{{\"global_step\":{step}}}");
            await ModelSync.UploadAsync(store, checkpoint, "r2/train/model");
        }

        string fresh = Path.Combine(work, "fresh", "train");
        await ModelSync.RestoreAsync(store, "r2/train/model", fresh);

        Assert.Equal(["r2/train/model/checkpoint-2/model.safetensors", "r2/train/model/checkpoint-2/trainer_state.json"],
            (await store.ListAsync("r2/train/model/").ToListAsync()).Order(StringComparer.Ordinal));
        Assert.Equal(Path.Combine(fresh, "checkpoint-2"), PrefPipe.Trainer.Checkpoint.Latest(fresh));
        Assert.Equal("new", await File.ReadAllTextAsync(Path.Combine(fresh, "checkpoint-2", "model.safetensors")));
    }

    [Fact]
    public async Task Upload_LocalStore_DoesNothing()
    {
        string work = Directory.CreateTempSubdirectory("prefpipe-modelsync-local-").FullName;
        Directory.CreateDirectory(Path.Combine(work, "checkpoint-1"));
        await File.WriteAllTextAsync(Path.Combine(work, "checkpoint-1", "trainer_state.json"), "{}");
        var store = new LocalArtifactStore(Path.Combine(work, "runs"));

        Assert.Null(await ModelSync.UploadAsync(store, Path.Combine(work, "checkpoint-1"), "r1/train/model"));
        Assert.Empty(await store.ListAsync("").ToListAsync());
    }
}
