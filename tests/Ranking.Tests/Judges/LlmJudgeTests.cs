using Microsoft.Extensions.Options;
using Polly.Testing;
using PrefPipe.Ranking.Judges;

namespace PrefPipe.Ranking.Tests.Judges;

public sealed class LlmJudgeTests
{
    private const string KeyVariable = "PREFPIPE_TEST_JUDGE_KEY";
    private const string SecretKey = "sk-test-0123456789-secret";

    static LlmJudgeTests() => Environment.SetEnvironmentVariable(KeyVariable, SecretKey);

    private static JudgeRequest Request(string a, string b) => new("p1", "Write a review.", 0, a, 1, b);

    /// <summary>A judge that prefers the response containing "good", whichever position it is in.</summary>
    private static LoopbackChatServer.Reply PrefersGood(LoopbackChatServer.Request r)
    {
        string user = r.UserMessage;
        string a = Between(user, "[The Start of Assistant A's Answer]\n", "\n[The End of Assistant A's Answer]");
        string b = Between(user, "[The Start of Assistant B's Answer]\n", "\n[The End of Assistant B's Answer]");
        string verdict = a.Contains("good", StringComparison.Ordinal) == b.Contains("good", StringComparison.Ordinal) ? "[[C]]"
            : a.Contains("good", StringComparison.Ordinal) ? "[[A]]" : "[[B]]";
        return new LoopbackChatServer.Reply(200, $"Assistant answers compared; mentions of [[A]] in reasoning do not count. Final: {verdict}");
    }

    private static string Between(string s, string start, string end)
    {
        int i = s.IndexOf(start, StringComparison.Ordinal) + start.Length;
        return s[i..s.IndexOf(end, i, StringComparison.Ordinal)];
    }

    private static LlmJudge Judge(LoopbackChatServer server, Action<LlmJudgeOptions>? configure = null, HttpMessageHandler? handler = null)
    {
        var options = new LlmJudgeOptions
        {
            Endpoint = new Uri(server.BaseUri, "v1"),
            Model = "judge-model",
            ApiKeyVariable = KeyVariable,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            AttemptTimeout = TimeSpan.FromSeconds(5),
        };
        configure?.Invoke(options);
        return new LlmJudge(handler is null ? new HttpClient() : new HttpClient(handler), options);
    }

    /// <summary>Counts the requests the client sends (attempts), whether or not the server got to record them.</summary>
    private sealed class CountingHandler() : DelegatingHandler(new HttpClientHandler())
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _count);
            return base.SendAsync(request, cancellationToken);
        }
    }

    [Fact]
    public async Task CompareAsync_BothOrders_ParsesTheLastVerdictMarker()
    {
        await using var server = new LoopbackChatServer(PrefersGood);
        using var judge = Judge(server);

        var first = await judge.CompareAsync(Request("a good film", "a dull film"));
        var second = await judge.CompareAsync(Request("a dull film", "a good film"));

        Assert.Equal(Verdict.A, first.Verdict);
        Assert.Equal(Verdict.B, second.Verdict);
        Assert.Contains("Final: [[A]]", first.Raw, StringComparison.Ordinal);
        var sent = server.Requests.First();
        Assert.Equal("/v1/chat/completions", sent.Path);
        Assert.Equal($"Bearer {SecretKey}", sent.Headers["Authorization"]);
        Assert.Equal("judge-model", sent.Body.GetProperty("model").GetString());
        Assert.Equal(0, sent.Body.GetProperty("temperature").GetDouble());
    }

    [Fact]
    public async Task CompareAsync_AzureOpenAi_UsesDeploymentPathApiVersionAndApiKeyHeader()
    {
        await using var server = new LoopbackChatServer(PrefersGood);
        using var judge = Judge(server, o => { o.Api = LlmApiKind.AzureOpenAI; o.Endpoint = server.BaseUri; o.Model = "gpt4o-judge"; });

        await judge.CompareAsync(Request("good", "bad"));

        var sent = Assert.Single(server.Requests);
        Assert.Equal("/openai/deployments/gpt4o-judge/chat/completions", sent.Path);
        Assert.Equal("?api-version=2024-10-21", sent.Query);
        Assert.Equal(SecretKey, sent.Headers["api-key"]);
        Assert.False(sent.Headers.ContainsKey("Authorization"));
        Assert.False(sent.Body.TryGetProperty("model", out _));
    }

    [Fact]
    public async Task CompareAsync_TooManyRequestsThenOk_RetriesAndSucceeds()
    {
        int calls = 0;
        await using var server = new LoopbackChatServer(r =>
            Interlocked.Increment(ref calls) <= 2 ? new LoopbackChatServer.Reply(429, RetryAfterSeconds: 0) : PrefersGood(r));
        using var judge = Judge(server);

        var verdict = await judge.CompareAsync(Request("good", "bad"));

        Assert.Equal(Verdict.A, verdict.Verdict);
        Assert.Equal(3, server.Requests.Count);
    }

    [Fact]
    public async Task CompareAsync_BadRequest_FailsAtOnceWithoutRetryAndWithoutTheKey()
    {
        await using var server = new LoopbackChatServer(_ => new LoopbackChatServer.Reply(400, RawBody: "{\"error\":\"bad model\"}"));
        using var judge = Judge(server);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(async () => await judge.CompareAsync(Request("good", "bad")));

        Assert.Single(server.Requests);
        Assert.Contains("HTTP 400", ex.Message, StringComparison.Ordinal);
        Assert.Contains("bad model", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(SecretKey, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompareAsync_EndpointTooSlow_TimesOutPerAttemptAndRetries()
    {
        await using var server = new LoopbackChatServer(_ => new LoopbackChatServer.Reply(200, "[[A]]", Delay: TimeSpan.FromSeconds(30)));
        var attempts = new CountingHandler();
        using var judge = Judge(server, o => { o.AttemptTimeout = TimeSpan.FromMilliseconds(500); o.MaxRetries = 2; }, attempts);

        await Assert.ThrowsAsync<Polly.Timeout.TimeoutRejectedException>(async () => await judge.CompareAsync(Request("good", "bad")));

        // Counted where the client sends them: on a loaded machine an attempt can time out before the loopback server has
        // read (and recorded) its request, so the server's count is not the number of attempts.
        Assert.Equal(3, attempts.Count);
    }

    [Fact]
    public async Task CompareAsync_ReplyIsNotAChatCompletion_NamesTheEndpointAndShowsTheBody()
    {
        await using var server = new LoopbackChatServer(_ => new LoopbackChatServer.Reply(200, RawBody: "{\"unexpected\": true}"));
        using var judge = Judge(server);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(async () => await judge.CompareAsync(Request("good", "bad")));

        Assert.Contains("/v1/chat/completions", ex.Message, StringComparison.Ordinal);
        Assert.Contains("unexpected", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pipeline_Descriptor_HasLimiterRetryAndTimeoutInThatOrder()
    {
        var options = new LlmJudgeOptions { Endpoint = new Uri("http://127.0.0.1:9/"), Model = "m", MaxRetries = 3, AttemptTimeout = TimeSpan.FromSeconds(7) };
        using var judge = new LlmJudge(new HttpClient(), options);

        var descriptor = judge.Pipeline.GetPipelineDescriptor();

        Assert.Collection(descriptor.Strategies,
            s => Assert.IsType<Polly.RateLimiting.RateLimiterStrategyOptions>(s.Options),
            s => Assert.Equal(3, Assert.IsType<Polly.Retry.RetryStrategyOptions<HttpResponseMessage>>(s.Options).MaxRetryAttempts),
            s => Assert.Equal(TimeSpan.FromSeconds(7), Assert.IsType<Polly.Timeout.TimeoutStrategyOptions>(s.Options).Timeout));
    }

    [Theory]
    [InlineData("I think [[B]] is better", Verdict.B)]
    [InlineData("[[A]] at first, but on reflection [[C]]", Verdict.Tie)]
    [InlineData("no marker here", Verdict.Tie)]
    [InlineData("[[B]] ... final verdict: [[A]]", Verdict.A)]
    public void ParseVerdict_LastMarkerWins(string reply, Verdict expected) =>
        Assert.Equal(expected, LlmJudge.ParseVerdict(reply, ["[[A]]", "[[B]]", "[[C]]"]));

    [Fact]
    public async Task CompareAsync_PromptAndResponsesContainingPlaceholders_AreSentVerbatim()
    {
        await using var server = new LoopbackChatServer(_ => new LoopbackChatServer.Reply(200, "[[C]]"));
        using var judge = Judge(server, o => o.PromptTemplate = "Q: {prompt}\nA: {response_a}\nB: {response_b}\nAnswer as {\"winner\": \"A\"}.");
        const string prompt = "What does {response_a} mean in a template?";
        const string a = "It is replaced by the first answer; {response_b} by the second.";
        const string b = "Write {prompt} where the question goes.";

        await judge.CompareAsync(new JudgeRequest("p1", prompt, 0, a, 1, b));

        var sent = Assert.Single(server.Requests);
        Assert.Equal($"Q: {prompt}\nA: {a}\nB: {b}\nAnswer as {{\"winner\": \"A\"}}.", sent.UserMessage);
    }

    [Fact]
    public void Options_TemplateWithUnknownPlaceholder_FailsNamingIt()
    {
        var options = new LlmJudgeOptions
        {
            Endpoint = new Uri("http://127.0.0.1:9/"), Model = "m",
            PromptTemplate = "{prompt}\n{response_a}\n{response_b}\nCompare with the reference: {reference_answer}",
        };

        var ex = Assert.Throws<OptionsValidationException>(() => new LlmJudge(new HttpClient(), options));

        Assert.Contains("unknown placeholder {reference_answer}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_TemplateWithoutPlaceholders_FailsNamingThem()
    {
        var options = new LlmJudgeOptions { Endpoint = new Uri("http://127.0.0.1:9/"), Model = "m", PromptTemplate = "Which is better? {prompt}" };

        var ex = Assert.Throws<OptionsValidationException>(() => new LlmJudge(new HttpClient(), options));

        Assert.Contains("{response_a}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("{response_b}", ex.Message, StringComparison.Ordinal);
    }
}
