using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

public sealed class LocalArtifactStoreTests : ArtifactStoreContractTests
{
    protected override IArtifactStore Store { get; } = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-local-store-").FullName);
}

public sealed class LocalArtifactStoreFolderTests
{
    [Fact]
    public void Constructor_RootIsAFileOrUnderOne_FailsNamingThePaths()
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-local-root-").FullName, "file");
        File.WriteAllText(file, "x");

        var isFile = Assert.Throws<ArgumentException>(() => new LocalArtifactStore(file));
        var underFile = Assert.Throws<ArgumentException>(() => new LocalArtifactStore(Path.Combine(file, "a", "b")));

        Assert.StartsWith($"storage {file} is a file; expected a folder", isFile.Message, StringComparison.Ordinal);
        Assert.StartsWith($"storage {Path.Combine(file, "a", "b")} lies under {file}, which is a file", underFile.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenReadAsync_ADirectory_SaysItIsADirectory()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-local-dir-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "prompts.jsonl"));
        var store = new LocalArtifactStore(root);

        var ex = await Assert.ThrowsAsync<FileNotFoundException>(async () => await store.OpenReadAsync("prompts.jsonl"));

        Assert.Contains("prompts.jsonl is a directory, expected a file", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RemovePartials_LeftoverStagingFilesAndFolders_RemovedExceptTheOnesKept()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-local-partials-").FullName;
        var store = new LocalArtifactStore(root);
        string temp = Path.GetTempFileName();
        await File.WriteAllTextAsync(temp, "done");
        await store.CommitAsync("r1/ingest/prompts.parquet", temp);
        File.WriteAllText(Path.Combine(root, "r1", "ingest", "candidates.parquet.0123.partial"), "half");
        Directory.CreateDirectory(Path.Combine(root, "r1", "train", "checkpoint-4.partial"));
        File.WriteAllText(Path.Combine(root, "r1", "train", "checkpoint-4.partial", "model.safetensors"), "half");
        Directory.CreateDirectory(Path.Combine(root, "r1", "ingest", "shards", "k-2"));
        File.WriteAllText(Path.Combine(root, "r1", "ingest", "shards", "k-2", "part.parquet.99.partial"), "in flight");
        File.WriteAllText(Path.Combine(root, "r2.partial"), "another run");

        var removed = store.RemovePartials("r1", (path, _) => path.Contains("/shards/", StringComparison.Ordinal));

        Assert.Equal(["r1/ingest/candidates.parquet.0123.partial", "r1/train/checkpoint-4.partial"], removed.Order(StringComparer.Ordinal));
        Assert.True(File.Exists(Path.Combine(root, "r1", "ingest", "prompts.parquet")));
        Assert.False(Directory.Exists(Path.Combine(root, "r1", "train", "checkpoint-4.partial")));
        Assert.True(File.Exists(Path.Combine(root, "r1", "ingest", "shards", "k-2", "part.parquet.99.partial")), "kept: a live writer's");
        Assert.True(File.Exists(Path.Combine(root, "r2.partial")), "outside the prefix");
    }
}
