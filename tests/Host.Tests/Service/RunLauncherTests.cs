using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

/// <summary>RunLauncher against a local run store: claims, unfinished runs and background work.</summary>
public sealed class RunLauncherTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Slices = Path.Combine(AppContext.BaseDirectory, "fixtures", "serve");

    internal static (ServeSettings Settings, LocalArtifactStore Store) Local(string schedule = "0 3 * * *")
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-launcher-").FullName;
        string runs = Path.Combine(dir, "runs"), inbox = Path.Combine(dir, "inbox");
        Directory.CreateDirectory(runs);
        Directory.CreateDirectory(inbox);
        string yaml = $"""
            name: svc
            storage: {runs}
            inputs:
              prompts: {Path.Combine(Slices, "prompts-a.jsonl")}
            models:
              policy: {Path.Combine(Demo, "policy")}
              reward: {Path.Combine(Demo, "reward")}
            training:
              plan: none
            triggers:
              schedule: "{schedule}"
              blob:
                location: {inbox}
            """;
        string path = Path.Combine(dir, "pipeline.yaml");
        File.WriteAllText(path, yaml);
        return (new ServeSettings(PipelineLoader.Load(path), [], Once: false, JsonLogs: false), new LocalArtifactStore(runs));
    }

    [Fact]
    public async Task Unfinished_CorruptMarker_IsSkippedWithALogLineAndTheOthersStillResume()
    {
        var (settings, store) = Local();
        var logger = new ListLogger<RunLauncher>();
        using var launcher = new RunLauncher(settings, store, logger);
        var good = new RunClaim("schedule", "20261123-030000", "svc-sched-20261123-030000", null, "2026-11-23T03:00:00Z");
        Assert.True(await launcher.TryClaimAsync(good));
        Assert.True(await store.TryCreateAsync("_service/blob/broken.json", Encoding.UTF8.GetBytes("{\"kind\": \"blob\", \"key\": ")));

        var unfinished = await launcher.UnfinishedAsync(includeInterrupted: true);

        Assert.Equal("svc-sched-20261123-030000", Assert.Single(unfinished).RunId);
        Assert.Contains(logger.Lines, l => l.Contains("_service/blob/broken.json", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_WorkThatThrows_IsLoggedAndReleasesItsSlot()
    {
        var (settings, store) = Local();
        var logger = new ListLogger<RunLauncher>();
        using var launcher = new RunLauncher(settings, store, logger);

        var slot = await launcher.AcquireSlotAsync();
        launcher.Start(slot, () => throw new IOException("storage is down"));
        await launcher.DrainAsync();

        Assert.Contains(logger.Lines, l => l.Contains("storage is down", StringComparison.Ordinal));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var again = await launcher.AcquireSlotAsync(cts.Token); // max_concurrent_runs is 1: the slot came back
    }
    [Fact]
    public async Task TryClaim_CreateCommittedButRetryAnsweredExists_StillWinsAndOthersLose()
    {
        var (settings, store) = Local();
        var lossy = new LostResponseStore(store);
        using var launcher = new RunLauncher(settings, lossy, NullLogger<RunLauncher>.Instance);
        using var other = new RunLauncher(settings, store, NullLogger<RunLauncher>.Instance);
        var claim = new RunClaim("schedule", "20261123-040000", "svc-sched-20261123-040000", null, "2026-11-23T04:00:00Z");

        Assert.True(await launcher.TryClaimAsync(claim)); // its create committed; the (retried) answer was "exists"
        Assert.Equal(1, lossy.LostResponses);
        Assert.False(await other.TryClaimAsync(claim)); // a second instance does not win the same trigger
        Assert.False(await launcher.TryClaimAsync(claim)); // nor does a later attempt of the first (a new nonce)
    }

    /// <summary>A store whose first create commits but reports "already exists", as a resilient store's retry of a
    /// create whose response was lost does.</summary>
    private sealed class LostResponseStore(IArtifactStore inner) : IArtifactStore
    {
        public int LostResponses { get; private set; }

        public string Location => inner.Location;

        public string UriOf(string path) => inner.UriOf(path);

        public ValueTask<bool> ExistsAsync(string path, CancellationToken cancellationToken = default) => inner.ExistsAsync(path, cancellationToken);

        public ValueTask<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default) => inner.OpenReadAsync(path, cancellationToken);

        public ValueTask CommitAsync(string path, string localFile, CancellationToken cancellationToken = default) => inner.CommitAsync(path, localFile, cancellationToken);

        public async ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
        {
            bool created = await inner.TryCreateAsync(path, content, cancellationToken);
            if (!created || LostResponses > 0) return created;
            LostResponses++;
            return await inner.TryCreateAsync(path, content, cancellationToken); // the retry: "exists"
        }

        public IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default) => inner.ListAsync(prefix, cancellationToken);

        public ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default) => inner.DeleteAsync(path, cancellationToken);
    }
}


/// <summary>Keeps formatted log lines for assertions.</summary>
internal sealed class ListLogger<T> : ILogger<T>
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines) return [.. _lines];
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines) _lines.Add($"{logLevel}: {formatter(state, exception)}");
    }
}
