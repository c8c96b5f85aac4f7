using System.Diagnostics;
using System.Net;
using Azure.Core;
using Polly.Testing;
using PrefPipe.Models.Remote;
using PrefPipe.Tests.Remote;

namespace PrefPipe.Models.Tests.Remote;

public sealed class OpenAICompatibleClientTests
{
    private const string SecretKey = "sk-client-test-7f3a9c1e-secret";

    private static OpenAICompatibleClient Client(OpenAIReferenceServer server, Action<OpenAIClientOptions>? configure = null,
        OpenAIAuthentication? auth = null, HttpMessageHandler? handler = null)
    {
        var options = new OpenAIClientOptions
        {
            BaseUrl = server.V1, Model = "policy", MaxConcurrency = 4, MaxRetries = 3,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10), Timeout = TimeSpan.FromSeconds(10),
        };
        configure?.Invoke(options);
        return new OpenAICompatibleClient(handler is null ? new HttpClient() : new HttpClient(handler), options,
            auth ?? OpenAIAuthentication.ApiKey(SecretKey), "test-pipeline", "generator");
    }

    [Fact]
    public async Task CompleteAsync_PlainPrompt_PostsEveryParameterToCompletionsAndReadsTextAndLogprobs()
    {
        await using var server = new OpenAIReferenceServer();
        using var client = Client(server);

        var reply = await client.CompleteAsync(new TextCompletionRequest
        {
            Prompt = "Write a review of Heat.", Temperature = 0.7, TopP = 0.9, MaxTokens = 6, N = 3, Seed = 42, Stop = ["\n\n"], Logprobs = 1,
        });

        var request = Assert.Single(server.Requests);
        Assert.Equal("/v1/completions", request.Path);
        Assert.Equal($"Bearer {SecretKey}", request.Headers["Authorization"]);
        Assert.Equal("policy", request.Body["model"]!.GetValue<string>());
        Assert.Equal(0.7, request.Body["temperature"]!.GetValue<double>());
        Assert.Equal(0.9, request.Body["top_p"]!.GetValue<double>());
        Assert.Equal(6, request.Body["max_tokens"]!.GetValue<int>());
        Assert.Equal(3, request.Body["n"]!.GetValue<int>());
        Assert.Equal(42, request.Body["seed"]!.GetValue<long>());
        Assert.Equal("\n\n", request.Body["stop"]![0]!.GetValue<string>());
        Assert.Equal(1, request.Body["logprobs"]!.GetValue<int>());
        Assert.Equal(3, reply.Choices.Count);
        for (int i = 0; i < 3; i++)
        {
            var (text, logprobs, finish) = OpenAIReferenceServer.Sample("Write a review of Heat.", 42, i, 6, ["\n\n"]);
            Assert.Equal(text, reply.Choices[i].Text);
            Assert.Equal(logprobs, reply.Choices[i].TokenLogprobs);
            Assert.Equal(finish, reply.Choices[i].FinishReason);
        }
        Assert.Equal(reply.Choices.Sum(c => c.TokenLogprobs!.Count), reply.CompletionTokens);
    }

    [Fact]
    public async Task ChatAsync_Conversation_PostsMessagesToChatCompletionsAndReadsContentLogprobs()
    {
        await using var server = new OpenAIReferenceServer();
        using var client = Client(server);

        var reply = await client.ChatAsync(new ChatCompletionRequest
        {
            Messages = [new("system", "Be brief."), new("user", "Review Alien.")], MaxTokens = 20, Seed = 7, Logprobs = true,
        });

        var request = Assert.Single(server.Requests);
        Assert.Equal("/v1/chat/completions", request.Path);
        Assert.Equal(["system", "user"], request.Body["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()));
        Assert.Null(request.Body["n"]); // unset members are left out, not sent as null
        Assert.Null(request.Body["stop"]);
        var (text, logprobs, _) = OpenAIReferenceServer.Sample("Review Alien.", 7, 0, 20, []);
        Assert.Equal(text, Assert.Single(reply.Choices).Text);
        Assert.Equal(logprobs, reply.Choices[0].TokenLogprobs);
    }

    [Fact]
    public async Task ChatAsync_LogprobsNotReturned_TokenLogprobsNull()
    {
        await using var server = new OpenAIReferenceServer { ReturnsLogprobs = false };
        using var client = Client(server);

        var reply = await client.ChatAsync(new ChatCompletionRequest { Messages = [new("user", "Review Alien.")], Logprobs = true });

        Assert.Null(reply.Choices[0].TokenLogprobs);
    }

    [Fact]
    public async Task CompleteAsync_TransientServiceUnavailable_RetriedUntilItAnswers()
    {
        await using var server = new OpenAIReferenceServer { Faults = r => r.Number <= 2 ? new OpenAIReferenceServer.Fault(503) : null };
        using var client = Client(server);

        var reply = await client.CompleteAsync(new TextCompletionRequest { Prompt = "p", MaxTokens = 4 });

        Assert.Equal(3, server.Requests.Count);
        Assert.Equal(OpenAIReferenceServer.Sample("p", 0, 0, 4, []).Text, reply.Choices[0].Text);
    }

    [Fact]
    public async Task CompleteAsync_TooManyRequestsWithRetryAfter_WaitsThatLongNotTheBackOff()
    {
        await using var server = new OpenAIReferenceServer { Faults = r => r.Number == 1 ? new OpenAIReferenceServer.Fault(429, RetryAfterSeconds: 1) : null };
        using var client = Client(server); // back-off base 10 ms: only Retry-After explains a wait of a second
        var clock = Stopwatch.StartNew();

        await client.CompleteAsync(new TextCompletionRequest { Prompt = "p" });

        Assert.Equal(2, server.Requests.Count);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(950), TimeSpan.FromSeconds(8));
    }

    [Theory]
    [InlineData("""{"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.25}]}""", new[] { -0.5, -1.25 })] // chat
    [InlineData("""{"tokens": ["a", "b"], "token_logprobs": [-0.5, -1.25], "top_logprobs": null}""", new[] { -0.5, -1.25 })] // text
    [InlineData("""[-0.5, -1.25]""", new[] { -0.5, -1.25 })] // TGI's /v1/completions declares a bare array
    [InlineData("""null""", null)]
    public void TokenLogprobs_EveryShapeServersSend(string json, double[]? expected)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);

        Assert.Equal(expected, OpenAICompatibleClient.TokenLogprobs(document.RootElement));
    }

    [Fact]
    public void RetryAfter_HttpDate_IsTheTimeUntilThen_AndLongWaitsFallBackToTheBackOff()
    {
        var time = new FixedTime(new DateTimeOffset(2026, 1, 1, 12, 0, 0, TimeSpan.Zero));
        using var date = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        date.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(time.GetUtcNow().AddSeconds(30));
        using var tooLong = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        tooLong.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromHours(1));

        Assert.Equal(TimeSpan.FromSeconds(30), OpenAICompatibleClient.RetryAfter(date, time));
        Assert.Null(OpenAICompatibleClient.RetryAfter(tooLong, time));
    }

    [Fact]
    public async Task CompleteAsync_PermanentServerError_FailsAfterEveryRetryNamingStatusAndBodyNeverTheKey()
    {
        await using var server = new OpenAIReferenceServer { Faults = _ => new OpenAIReferenceServer.Fault(500, Message: "engine crashed") };
        using var client = Client(server, o => o.MaxRetries = 2);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.CompleteAsync(new TextCompletionRequest { Prompt = "p" }));

        Assert.Equal(3, server.Requests.Count);
        Assert.Equal(HttpStatusCode.InternalServerError, ex.StatusCode);
        Assert.Contains("HTTP 500", ex.Message, StringComparison.Ordinal);
        Assert.Contains("after 3 attempts", ex.Message, StringComparison.Ordinal);
        Assert.Contains("engine crashed", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(SecretKey, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompleteAsync_NotFound_FailsAtOnceWithoutRetry()
    {
        await using var server = new OpenAIReferenceServer { Model = "other" };
        using var client = Client(server);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.CompleteAsync(new TextCompletionRequest { Prompt = "p" }));

        Assert.Single(server.Requests);
        Assert.Contains("does not exist", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_ManyAtOnce_NeverMoreInFlightThanMaxConcurrency()
    {
        await using var server = new OpenAIReferenceServer { Delay = TimeSpan.FromMilliseconds(150) };
        using var client = Client(server, o => o.MaxConcurrency = 3);

        await Task.WhenAll(Enumerable.Range(0, 12).Select(i => client.CompleteAsync(new TextCompletionRequest { Prompt = $"p{i}" })));

        Assert.Equal(12, server.Requests.Count);
        Assert.Equal(3, server.MaxInFlight);
    }

    [Fact]
    public async Task ChatAsync_Azure_UsesDeploymentPathApiVersionAndApiKeyHeaderWithoutModel()
    {
        await using var server = new OpenAIReferenceServer();
        using var client = Client(server, o => { o.BaseUrl = server.BaseUri; o.Api = OpenAIApi.Azure; o.Deployment = "gpt-4o-mini"; o.ApiVersion = "2024-10-21"; });

        await client.ChatAsync(new ChatCompletionRequest { Messages = [new("user", "hi")] });
        await client.CompleteAsync(new TextCompletionRequest { Prompt = "hi" });

        var requests = server.Requests.ToArray();
        Assert.Equal("/openai/deployments/gpt-4o-mini/chat/completions", requests[0].Path);
        Assert.Equal("/openai/deployments/gpt-4o-mini/completions", requests[1].Path);
        Assert.All(requests, r =>
        {
            Assert.Equal("?api-version=2024-10-21", r.Query);
            Assert.Equal(SecretKey, r.Headers["api-key"]);
            Assert.False(r.Headers.ContainsKey("Authorization"));
            Assert.Null(r.Body["model"]);
        });
    }

    [Fact]
    public async Task ChatAsync_AzureWithoutKey_SendsAnEntraTokenForCognitiveServices()
    {
        await using var server = new OpenAIReferenceServer();
        var credential = new StaticCredential("entra-token-1");
        var auth = OpenAIAuthentication.FromEnvironment("PREFPIPE_TEST_UNSET_KEY_VARIABLE", OpenAIApi.Azure, () => credential, _ => null);
        using var client = Client(server, o => { o.BaseUrl = server.BaseUri; o.Api = OpenAIApi.Azure; o.Model = "dep"; }, auth);

        await client.ChatAsync(new ChatCompletionRequest { Messages = [new("user", "hi")] });
        await client.ChatAsync(new ChatCompletionRequest { Messages = [new("user", "hi again")] });

        Assert.All(server.Requests, r => Assert.Equal("Bearer entra-token-1", r.Headers["Authorization"]));
        Assert.Equal([OpenAIAuthentication.CognitiveServicesScope], credential.Scopes);
        Assert.Equal(1, credential.Calls); // cached until five minutes before it expires
        Assert.Equal("Microsoft Entra token", auth.ToString());
    }

    [Fact]
    public void FromEnvironment_KeySet_IsAnApiKeyThatToStringNeverShows()
    {
        var auth = OpenAIAuthentication.FromEnvironment("V", OpenAIApi.OpenAI, environment: _ => SecretKey);

        Assert.Equal("api key", auth.ToString());
        Assert.Equal("none", OpenAIAuthentication.FromEnvironment("V", OpenAIApi.OpenAI, environment: _ => "").ToString());
    }

    [Fact]
    public void Pipeline_Descriptor_HasLimiterRetryAndTimeoutInThatOrder()
    {
        var options = new OpenAIClientOptions { BaseUrl = new Uri("http://127.0.0.1:9/v1"), Model = "m", MaxRetries = 5, Timeout = TimeSpan.FromSeconds(9) };
        using var client = new OpenAICompatibleClient(new HttpClient(), options, OpenAIAuthentication.None, "p", "generator");

        var descriptor = client.Pipeline.GetPipelineDescriptor();

        Assert.Collection(descriptor.Strategies,
            s => Assert.IsType<Polly.RateLimiting.RateLimiterStrategyOptions>(s.Options),
            s => Assert.Equal(5, Assert.IsType<Polly.Retry.RetryStrategyOptions<HttpResponseMessage>>(s.Options).MaxRetryAttempts),
            s => Assert.Equal(TimeSpan.FromSeconds(9), Assert.IsType<Polly.Timeout.TimeoutStrategyOptions>(s.Options).Timeout));
    }

    [Fact]
    public void Options_MissingModelAndRelativeUrl_FailNamingBoth()
    {
        var options = new OpenAIClientOptions { BaseUrl = new Uri("v1", UriKind.Relative) };

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => options.Validate("generator"));

        Assert.Contains(ex.Failures, f => f.Contains("base url 'v1'", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.Contains("model is required", StringComparison.Ordinal));
    }

    private sealed class StaticCredential(string token) : TokenCredential
    {
        public List<string> Scopes { get; } = [];

        public int Calls { get; private set; }

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            Calls++;
            Scopes.AddRange(requestContext.Scopes);
            return new AccessToken(token, DateTimeOffset.UtcNow.AddHours(1));
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
