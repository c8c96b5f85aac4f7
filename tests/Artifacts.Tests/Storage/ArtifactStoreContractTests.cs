using System.Security.Cryptography;
using System.Text;
using Polly;
using Polly.Simmy;
using Polly.Simmy.Fault;
using Polly.Simmy.Latency;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

/// <summary>The behaviour every <see cref="IArtifactStore"/> promises; run against each implementation.</summary>
public abstract class ArtifactStoreContractTests
{
    /// <summary>A fresh, empty store (its own folder or blob prefix).</summary>
    protected abstract IArtifactStore Store { get; }

    private static string TempFile(string content)
    {
        string path = Path.Combine(Path.GetTempPath(), $"prefpipe-contract-{Guid.NewGuid():N}.bin");
        File.WriteAllText(path, content);
        return path;
    }

    private async Task<string> ReadTextAsync(string path)
    {
        await using var stream = await Store.OpenReadAsync(path);
        Assert.True(stream.CanSeek);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync();
    }

    private async Task<List<string>> ListAsync(string prefix)
    {
        var names = new List<string>();
        await foreach (string name in Store.ListAsync(prefix)) names.Add(name);
        return names;
    }

    [Fact]
    public async Task CommitAsync_ThenOpenRead_ReturnsTheBytesSeekably()
    {
        await Store.CommitAsync("runs/r1/data.bin", TempFile("hello ☕ artifacts"));

        await using var stream = await Store.OpenReadAsync("runs/r1/data.bin");
        Assert.True(stream.CanSeek);
        stream.Position = 6;
        Assert.Equal((byte)0xE2, (byte)stream.ReadByte()); // first byte of ☕ in UTF-8
        stream.Position = 0;
        using var reader = new StreamReader(stream);
        Assert.Equal("hello ☕ artifacts", await reader.ReadToEndAsync());
        Assert.True(await Store.ExistsAsync("runs/r1/data.bin"));
        Assert.False(await Store.ExistsAsync("runs/r1/other.bin"));
    }

    [Fact]
    public async Task CommitAsync_Again_ReplacesTheFile()
    {
        await Store.CommitAsync("a/file.txt", TempFile("first version, longer"));
        await Store.CommitAsync("a/file.txt", TempFile("second"));

        Assert.Equal("second", await ReadTextAsync("a/file.txt"));
        Assert.Equal(["a/file.txt"], await ListAsync(""));
    }

    [Fact]
    public async Task CommitAsync_SameContentTwice_IsIdempotent()
    {
        string file = TempFile("same bytes");
        await Store.CommitAsync("a/file.txt", file);
        await Store.CommitAsync("a/file.txt", file);

        Assert.Equal("same bytes", await ReadTextAsync("a/file.txt"));
        Assert.Equal(["a/file.txt"], await ListAsync(""));
    }

    [Fact]
    public async Task TryCreateAsync_ManyRacingWriters_ExactlyOneWins()
    {
        // Several rounds, each released at once, so a check-then-rename race would show (it did on CI's file system).
        for (int round = 0; round < 10; round++)
        {
            string path = $"claims/stage-{round}.lock";
            using var start = new ManualResetEventSlim();
            var writers = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
            {
                start.Wait();
                return (Index: i, Won: await Store.TryCreateAsync(path, Encoding.UTF8.GetBytes($"writer-{i}")));
            })).ToList();
            start.Set();
            var results = await Task.WhenAll(writers);

            var winners = results.Where(r => r.Won).ToList();
            Assert.Single(winners);
            Assert.Equal($"writer-{winners[0].Index}", await ReadTextAsync(path));
            Assert.False(await Store.TryCreateAsync(path, "late"u8.ToArray()));
        }
        Assert.Equal(Enumerable.Range(0, 10).Select(r => $"claims/stage-{r}.lock").Order(StringComparer.Ordinal), await ListAsync(""));
    }

    [Fact]
    public async Task ListAsync_ByPrefix_ReturnsCommittedRelativePaths()
    {
        foreach (string path in new[] { "run-1/prompts.parquet", "run-1/pairs/easy.parquet", "run-2/prompts.parquet", "run-10/x.json" })
            await Store.CommitAsync(path, TempFile(path));

        Assert.Equal(["run-1/pairs/easy.parquet", "run-1/prompts.parquet"], (await ListAsync("run-1/")).Order(StringComparer.Ordinal));
        Assert.Equal(["run-1/pairs/easy.parquet", "run-1/prompts.parquet", "run-10/x.json"], (await ListAsync("run-1")).Order(StringComparer.Ordinal));
        Assert.Equal(4, (await ListAsync("")).Count);
        Assert.Empty(await ListAsync("nothing/"));
    }

    [Fact]
    public async Task DeleteAsync_RemovesTheFile_AndIgnoresMissingFiles()
    {
        await Store.CommitAsync("d/file.txt", TempFile("x"));

        await Store.DeleteAsync("d/file.txt");
        await Store.DeleteAsync("d/file.txt");
        await Store.DeleteAsync("never/was.txt");

        Assert.False(await Store.ExistsAsync("d/file.txt"));
        Assert.Empty(await ListAsync(""));
    }

    [Fact]
    public async Task OpenReadAsync_MissingFile_ThrowsFileNotFoundNamingIt()
    {
        var ex = await Assert.ThrowsAsync<FileNotFoundException>(async () => await Store.OpenReadAsync("no/such/artifact.parquet"));

        Assert.Contains("no/such/artifact.parquet", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../escape.parquet")]
    [InlineData("/abs/path")]
    [InlineData("a//b")]
    [InlineData("a/./b")]
    [InlineData("a\\b")]
    [InlineData("https://elsewhere/x")]
    public async Task Operations_PathsThatCouldEscape_AreRefused(string path)
    {
        string file = TempFile("x");
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.CommitAsync(path, file));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.OpenReadAsync(path));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.TryCreateAsync(path, "x"u8.ToArray()));
        Assert.Throws<ArgumentException>(() => Store.UriOf(path));
    }

    [Fact]
    public async Task ParquetArtifacts_ThroughTheStore_RoundTripWithTheFileHash()
    {
        var rows = Pairs(300);

        var info = await ParquetArtifacts.WriteAsync(Store, "r/pairs.parquet", rows);
        var back = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(Store, "r/pairs.parquet");

        Assert.Equivalent(rows, back, strict: true);
        await using var stream = await Store.OpenReadAsync("r/pairs.parquet");
        Assert.Equal(info.Sha256, Convert.ToHexStringLower(await SHA256.HashDataAsync(stream)));
        Assert.Equal(Store.UriOf("r/pairs.parquet"), info.Uri);
    }

    [Fact]
    public async Task WriteAsync_UnderInjectedFaultsAndLatency_CompletesWithIdenticalOutputAndNoDuplicates()
    {
        var rows = Pairs(2000);
        var clean = await ParquetArtifacts.WriteAsync(Store, "clean/pairs.parquet", rows);

        int faults = 0, delays = 0;
        // Deterministic chaos: a fault on every 3rd attempt, a hang on every 4th attempt that got past the fault.
        int faultDraws = 0, latencyDraws = 0;
        var options = new StorageResilienceOptions
        {
            MaxRetryAttempts = 15,
            RetryBaseDelay = TimeSpan.FromMilliseconds(1),
            RetryMaxDelay = TimeSpan.FromMilliseconds(5),
            AttemptTimeout = TimeSpan.FromMilliseconds(500),
            BreakerMinimumThroughput = 1000,
        };
        // Chaos innermost: every attempt (including retries) may fail or hang past the attempt timeout.
        var pipeline = new ResiliencePipelineBuilder()
            .AddStorageResilience(options)
            .AddChaosFault(new ChaosFaultStrategyOptions
            {
                InjectionRate = 0.5,
                Randomizer = () => Interlocked.Increment(ref faultDraws) % 3 == 1 ? 0.0 : 1.0,
                FaultGenerator = new FaultGenerator().AddException(() => new IOException("injected transient fault")),
                OnFaultInjected = _ => { Interlocked.Increment(ref faults); return default; },
            })
            .AddChaosLatency(new ChaosLatencyStrategyOptions
            {
                InjectionRate = 0.5,
                Randomizer = () => Interlocked.Increment(ref latencyDraws) % 4 == 1 ? 0.0 : 1.0,
                // Called only when latency is injected; 30 s is far past the attempt timeout, so the attempt is abandoned.
                LatencyGenerator = _ => { Interlocked.Increment(ref delays); return ValueTask.FromResult(TimeSpan.FromSeconds(30)); },
            })
            .Build();
        var chaotic = new ResilientArtifactStore(Store, pipeline);

        ArtifactInfo? written = null;
        for (int run = 0; run < 3; run++) // re-running the writer is idempotent too
            written = await ParquetArtifacts.WriteAsync(chaotic, "chaos/pairs.parquet", rows);
        var back = await ParquetArtifacts.ReadAllAsync<PreferenceRow>(chaotic, "chaos/pairs.parquet");
        var listed = new List<string>();
        await foreach (string name in chaotic.ListAsync("chaos/")) listed.Add(name);

        Assert.True(faults > 0 && delays > 0, $"chaos injected {faults} faults and {delays} delays");
        Assert.Equal(clean.Sha256, written!.Sha256);
        Assert.Equal(2000, written.Rows);
        Assert.Equivalent(rows, back, strict: true);
        Assert.Equal(["chaos/pairs.parquet"], listed);
    }

    private static List<PreferenceRow> Pairs(int n) => Enumerable.Range(0, n).Select(i => new PreferenceRow
    {
        PromptId = $"p-{i:D5}", Prompt = $"Review of film {i}:", Chosen = $"Wonderful {i}", Rejected = $"Dull {i}",
        ScoreChosen = i * 0.5, ScoreRejected = -i * 0.25, RewardGap = i * 0.75, JudgeAgrees = i % 3 == 0, Method = "ipr:reward",
        ChosenIndex = i % 4, RejectedIndex = (i + 1) % 4,
        PromptMessages = i % 5 == 0 ? [new ChatTurnRow { Role = "user", Content = $"film {i}" }] : null,
    }).ToList();
}
