using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using Polly;
using Polly.RateLimiting;
using Polly.Retry;
using Polly.Timeout;

namespace PrefPipe.Ranking.Judges;

/// <summary>An LLM judge over an OpenAI-compatible or Azure OpenAI chat-completions endpoint.</summary>
/// <remarks>
/// Resilience (Polly 8, one pipeline per judge, name <see cref="PipelineName"/>): a concurrency limiter (the endpoint's
/// rate limit), retries with exponential back-off and jitter on 408/429/5xx, timeouts and connection failures only,
/// honouring Retry-After, and a timeout per attempt. HttpClient itself gets no retry handler, so retries never stack.
/// The API key is sent in a header and appears in no message, exception or log.
/// </remarks>
internal sealed class LlmJudge : IPairwiseJudge, IDisposable
{
    /// <summary>The resilience pipeline's name, for telemetry.</summary>
    public const string PipelineName = "prefpipe-llm-judge";

    private readonly HttpClient _http;
    private readonly LlmJudgeOptions _options;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly Uri _url;
    private readonly string? _apiKey;

    public LlmJudge(HttpClient http, LlmJudgeOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _http = http;
        _options = options;
        _apiKey = Environment.GetEnvironmentVariable(options.ApiKeyVariable) is { Length: > 0 } key ? key : null;
        string root = options.Endpoint!.ToString().TrimEnd('/');
        _url = options.Api == LlmApiKind.AzureOpenAI
            ? new Uri($"{root}/openai/deployments/{Uri.EscapeDataString(options.Model)}/chat/completions?api-version={Uri.EscapeDataString(options.ApiVersion)}")
            : new Uri($"{root}/chat/completions");
        _pipeline = BuildPipeline(options, time ?? TimeProvider.System);
    }

    /// <inheritdoc />
    public string Name => $"llm:{_options.Model}";

    /// <inheritdoc />
    public bool OrderSensitive => true;

    /// <summary>The pipeline, exposed for descriptor tests.</summary>
    internal ResiliencePipeline<HttpResponseMessage> Pipeline => _pipeline;

    /// <inheritdoc />
    public async ValueTask<JudgeVerdict> CompareAsync(JudgeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        string user = JudgePromptTemplate.Render(_options.PromptTemplate, request);
        var messages = new List<ChatMessageDto>();
        if (!string.IsNullOrEmpty(_options.SystemPrompt)) messages.Add(new ChatMessageDto("system", _options.SystemPrompt));
        messages.Add(new ChatMessageDto("user", user));
        var body = new ChatRequestDto(_options.Api == LlmApiKind.OpenAI ? _options.Model : null, messages, _options.Temperature, _options.MaxTokens);

        using var response = await _pipeline.ExecuteAsync(async ct =>
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, _url)
            {
                Content = JsonContent.Create(body, JudgeJson.Default.ChatRequestDto),
            };
            if (_apiKey is not null)
            {
                if (_options.Api == LlmApiKind.AzureOpenAI) message.Headers.Add("api-key", _apiKey);
                else message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
            }
            return await _http.SendAsync(message, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);

        string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException(
                $"LLM judge {_url.GetLeftPart(UriPartial.Path)}: HTTP {(int)response.StatusCode} {response.ReasonPhrase} after retries: {Truncate(text)}",
                null, response.StatusCode);
        string reply;
        try
        {
            var parsed = JsonSerializer.Deserialize(text, JudgeJson.Default.ChatResponseDto);
            reply = parsed?.Choices is [{ Message.Content: { } content }, ..] ? content
                : throw new InvalidDataException("no choices[0].message.content");
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"LLM judge {_url.GetLeftPart(UriPartial.Path)}: reply is not a chat completion ({ex.Message}): {Truncate(text)}", ex);
        }
        return new JudgeVerdict(ParseVerdict(reply, _options.VerdictMarkers ?? LlmJudgeOptions.DefaultVerdictMarkers), null, reply);
    }

    /// <summary>The verdict whose marker appears last in the reply; a reply without a marker is a tie.</summary>
    internal static Verdict ParseVerdict(string reply, IReadOnlyList<string> markers)
    {
        int a = reply.LastIndexOf(markers[0], StringComparison.Ordinal);
        int b = reply.LastIndexOf(markers[1], StringComparison.Ordinal);
        int c = reply.LastIndexOf(markers[2], StringComparison.Ordinal);
        int last = Math.Max(a, Math.Max(b, c));
        if (last < 0) return Verdict.Tie;
        return last == a ? Verdict.A : last == b ? Verdict.B : Verdict.Tie;
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private static ResiliencePipeline<HttpResponseMessage> BuildPipeline(LlmJudgeOptions options, TimeProvider time)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = PipelineName, TimeProvider = time };
        builder.AddConcurrencyLimiter(options.MaxConcurrency, queueLimit: int.MaxValue);
        if (options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(r => IsTransient(r.StatusCode)),
                DelayGenerator = args =>
                    ValueTask.FromResult(args.Outcome.Result?.Headers.RetryAfter?.Delta is { } delta && delta <= TimeSpan.FromMinutes(5)
                        ? (TimeSpan?)delta
                        : null),
                OnRetry = args =>
                {
                    args.Outcome.Result?.Dispose();
                    return default;
                },
            });
        }
        builder.AddTimeout(options.AttemptTimeout);
        return builder.Build();
    }

    private static bool IsTransient(HttpStatusCode code) =>
        code is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)code >= 500;

    private static string Truncate(string s) => s.Length <= 300 ? s : s[..300] + "…";
}

internal sealed record ChatMessageDto(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string Content);

internal sealed record ChatRequestDto(
    [property: JsonPropertyName("model"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Model,
    [property: JsonPropertyName("messages")] IReadOnlyList<ChatMessageDto> Messages,
    [property: JsonPropertyName("temperature")] double Temperature,
    [property: JsonPropertyName("max_tokens")] int MaxTokens);

internal sealed record ChatChoiceMessageDto([property: JsonPropertyName("content")] string? Content);

internal sealed record ChatChoiceDto([property: JsonPropertyName("message")] ChatChoiceMessageDto? Message);

internal sealed record ChatResponseDto([property: JsonPropertyName("choices")] IReadOnlyList<ChatChoiceDto>? Choices);

[JsonSerializable(typeof(ChatRequestDto))]
[JsonSerializable(typeof(ChatResponseDto))]
internal sealed partial class JudgeJson : JsonSerializerContext;
