using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using PrefPipe.Models.Remote;
using PrefPipe.Tests.Remote;

namespace PrefPipe.Models.Tests.Remote;

/// <summary>The client's attempts, retries and failures as the <c>PrefPipe</c> meter publishes them, read with a <see cref="MeterListener"/>.</summary>
public sealed class RemoteTelemetryTests
{
    private const string SecretKey = "sk-metrics-test-2b7d-secret";

    /// <summary>Measurements of the PrefPipe meter's remote counters from one server port (tests run in parallel).</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();

        public Recorder(int port)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "PrefPipe" && instrument.Name.StartsWith("prefpipe.remote.", StringComparison.Ordinal)) listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                var t = new Dictionary<string, object?>();
                foreach (var tag in tags) t[tag.Key] = tag.Value;
                if (t.GetValueOrDefault("server.port") is int p && p == port) Measurements.Enqueue((instrument.Name, value, t));
            });
            _listener.Start();
        }

        public ConcurrentQueue<(string Name, long Value, Dictionary<string, object?> Tags)> Measurements { get; } = new();

        public long Sum(string name) => Measurements.Where(m => m.Name == name).Sum(m => m.Value);

        public void Dispose() => _listener.Dispose();
    }

    private static OpenAICompatibleClient Client(OpenAIReferenceServer server, int maxRetries = 3, double timeoutSeconds = 10) => new(new HttpClient(), new OpenAIClientOptions
    {
        BaseUrl = server.V1, Model = "policy", MaxConcurrency = 2, MaxRetries = maxRetries,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10), Timeout = TimeSpan.FromSeconds(timeoutSeconds),
    }, OpenAIAuthentication.ApiKey(SecretKey), "prefpipe-llm-judge", "LLM judge", client: "judge");

    [Fact]
    public async Task ChatAsync_ServiceUnavailableThenOk_CountsOneRetryTwoRequestsNoFailure()
    {
        await using var server = new OpenAIReferenceServer { Faults = r => r.Number == 1 ? new OpenAIReferenceServer.Fault(503) : null };
        using var recorder = new Recorder(server.BaseUri.Port);
        using var client = Client(server);

        await client.ChatAsync(new ChatCompletionRequest { Messages = [new OpenAIChatMessage("user", "p")], MaxTokens = 4 });

        var retry = Assert.Single(recorder.Measurements, m => m.Name == "prefpipe.remote.retries");
        Assert.Equal(1, retry.Value);
        Assert.Equal("judge", retry.Tags["prefpipe.client"]);
        Assert.Equal(503, retry.Tags["http.response.status_code"]);
        Assert.Equal("127.0.0.1", retry.Tags["server.address"]);
        Assert.Equal([503, 200], recorder.Measurements.Where(m => m.Name == "prefpipe.remote.requests").Select(m => m.Tags["http.response.status_code"]));
        Assert.Equal(0, recorder.Sum("prefpipe.remote.failures"));
        // Tags carry no credential, path or query string.
        Assert.All(recorder.Measurements.SelectMany(m => m.Tags.Values).OfType<string>(), v =>
        {
            Assert.DoesNotContain(SecretKey, v, StringComparison.Ordinal);
            Assert.DoesNotContain("/", v, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task ChatAsync_ServerErrorEveryTime_CountsEachRetryAndOneFailure()
    {
        await using var server = new OpenAIReferenceServer { Faults = _ => new OpenAIReferenceServer.Fault(500) };
        using var recorder = new Recorder(server.BaseUri.Port);
        using var client = Client(server, maxRetries: 2);

        await Assert.ThrowsAsync<HttpRequestException>(() => client.ChatAsync(new ChatCompletionRequest { Messages = [new OpenAIChatMessage("user", "p")] }));

        Assert.Equal((2, 3, 1), (recorder.Sum("prefpipe.remote.retries"), recorder.Sum("prefpipe.remote.requests"), recorder.Sum("prefpipe.remote.failures")));
        Assert.Equal(500, Assert.Single(recorder.Measurements, m => m.Name == "prefpipe.remote.failures").Tags["http.response.status_code"]);
    }

    [Fact]
    public async Task ChatAsync_EveryAttemptTimesOut_TaggedAsTimeouts()
    {
        await using var server = new OpenAIReferenceServer { Delay = TimeSpan.FromSeconds(3) };
        using var recorder = new Recorder(server.BaseUri.Port);
        using var client = Client(server, maxRetries: 1, timeoutSeconds: 0.2);

        await Assert.ThrowsAsync<Polly.Timeout.TimeoutRejectedException>(() => client.ChatAsync(new ChatCompletionRequest { Messages = [new OpenAIChatMessage("user", "p")] }));

        Assert.Equal(
            [("prefpipe.remote.requests", "TimeoutRejectedException"), ("prefpipe.remote.retries", "TimeoutRejectedException"),
             ("prefpipe.remote.requests", "TimeoutRejectedException"), ("prefpipe.remote.failures", "TimeoutRejectedException")],
            recorder.Measurements.Select(m => (m.Name, m.Tags["error.type"] as string)));
    }
}
