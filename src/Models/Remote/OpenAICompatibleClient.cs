using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Polly;
using Polly.RateLimiting;
using Polly.Retry;
using Polly.Timeout;

namespace PrefPipe.Models.Remote;

/// <summary>
/// A client of an OpenAI-compatible server (OpenAI, Azure OpenAI, vLLM, SGLang, TGI, llama.cpp server): POST
/// /chat/completions and /completions through one Polly 8 resilience pipeline. Used by ingest's external generator and by
/// ranking's LLM judge.
/// </summary>
/// <remarks>
/// The pipeline (named by the caller, for telemetry): a concurrency limiter (<see cref="OpenAIClientOptions.MaxConcurrency"/>
/// requests in flight, the rest queued), retries with exponential back-off and jitter on 408, 429 and 5xx, attempt timeouts
/// and connection failures only, honouring Retry-After (seconds or a date, up to 5 minutes), and a timeout per attempt.
/// HttpClient gets no retry handler of its own, so retries never stack. Credentials go in a header and appear in no
/// message, exception or log. Every attempt, retry and failed call is counted in the <c>PrefPipe</c> meter
/// (<c>prefpipe.remote.requests</c>, <c>prefpipe.remote.retries</c>, <c>prefpipe.remote.failures</c>).
/// </remarks>
public sealed class OpenAICompatibleClient : IDisposable
{
    private static readonly TimeSpan MaxRetryAfter = TimeSpan.FromMinutes(5);

    private readonly HttpClient _http;
    private readonly OpenAIClientOptions _options;
    private readonly OpenAIAuthentication _auth;
    private readonly string _purpose;
    private readonly string _client;
    private readonly TimeProvider _time;

    /// <summary>Creates a client; the options are checked here.</summary>
    /// <param name="http">The HTTP client (owned and disposed by this client).</param>
    /// <param name="options">Endpoint, model and resilience settings.</param>
    /// <param name="authentication">Credentials (<see cref="OpenAIAuthentication.FromEnvironment"/>).</param>
    /// <param name="pipelineName">The resilience pipeline's name, e.g. prefpipe-generator.</param>
    /// <param name="purpose">What errors start with, e.g. "generator" or "LLM judge".</param>
    /// <param name="time">Clock for back-off and timeouts (tests); default the system's.</param>
    /// <param name="client">The <c>prefpipe.client</c> tag of this client's metrics, e.g. "judge"; default <paramref name="purpose"/>.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is invalid.</exception>
    public OpenAICompatibleClient(HttpClient http, OpenAIClientOptions options, OpenAIAuthentication authentication, string pipelineName, string purpose, TimeProvider? time = null,
        string? client = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(authentication);
        options.Validate();
        _http = http;
        _options = options;
        _auth = authentication;
        _purpose = purpose;
        _client = client ?? purpose;
        _time = time ?? TimeProvider.System;
        string root = options.BaseUrl!.ToString().TrimEnd('/');
        if (options.Api == OpenAIApi.Azure)
        {
            string deployment = Uri.EscapeDataString(string.IsNullOrWhiteSpace(options.Deployment) ? options.Model : options.Deployment);
            string version = Uri.EscapeDataString(options.ApiVersion);
            ChatUrl = new Uri($"{root}/openai/deployments/{deployment}/chat/completions?api-version={version}");
            CompletionsUrl = new Uri($"{root}/openai/deployments/{deployment}/completions?api-version={version}");
        }
        else
        {
            ChatUrl = new Uri($"{root}/chat/completions");
            CompletionsUrl = new Uri($"{root}/completions");
        }
        Pipeline = BuildPipeline(options, pipelineName, _time, (status, error) => RemoteTelemetry.Retries.Add(1, RemoteTelemetry.Tags(_client, ChatUrl, status, error?.GetType().Name)));
    }

    /// <summary>Where chat completions go.</summary>
    public Uri ChatUrl { get; }

    /// <summary>Where text completions go.</summary>
    public Uri CompletionsUrl { get; }

    /// <summary>The resilience pipeline every request runs through (for descriptor tests).</summary>
    public ResiliencePipeline<HttpResponseMessage> Pipeline { get; }

    /// <summary>The options.</summary>
    public OpenAIClientOptions Options => _options;

    /// <summary>POST /chat/completions.</summary>
    /// <exception cref="HttpRequestException">The server answered with an error status after the retries (its status and body
    /// in the message), or could not be reached.</exception>
    /// <exception cref="TimeoutRejectedException">Every attempt timed out.</exception>
    /// <exception cref="InvalidDataException">The reply is not a chat completion.</exception>
    public Task<OpenAICompletion> ChatAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return PostAsync(ChatUrl, request with { Model = ModelInBody }, OpenAIJson.Default.ChatCompletionRequest, chat: true, cancellationToken);
    }

    /// <summary>POST /completions.</summary>
    /// <exception cref="HttpRequestException">The server answered with an error status after the retries, or could not be reached.</exception>
    /// <exception cref="TimeoutRejectedException">Every attempt timed out.</exception>
    /// <exception cref="InvalidDataException">The reply is not a text completion.</exception>
    public Task<OpenAICompletion> CompleteAsync(TextCompletionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return PostAsync(CompletionsUrl, request with { Model = ModelInBody }, OpenAIJson.Default.TextCompletionRequest, chat: false, cancellationToken);
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    // Azure OpenAI names the deployment in the URL; a model in the body is ignored there, so none is sent.
    private string? ModelInBody => _options.Api == OpenAIApi.Azure ? null : _options.Model;

    private async Task<OpenAICompletion> PostAsync<T>(Uri url, T body, JsonTypeInfo<T> type, bool chat, CancellationToken cancellationToken)
    {
        int attempts = 0;
        HttpResponseMessage response;
        try
        {
            response = await Pipeline.ExecuteAsync(async ct =>
            {
                Interlocked.Increment(ref attempts);
                using var message = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(body, type) };
                await _auth.ApplyAsync(message, _options.Api, ct).ConfigureAwait(false);
                try
                {
                    var reply = await _http.SendAsync(message, HttpCompletionOption.ResponseContentRead, ct).ConfigureAwait(false);
                    RemoteTelemetry.Requests.Add(1, RemoteTelemetry.Tags(_client, url, reply.StatusCode, null));
                    return reply;
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    // Cancelled without the caller asking: the attempt timed out (the pipeline's timeout strategy says so next).
                    string error = ex is OperationCanceledException && ct.IsCancellationRequested ? nameof(TimeoutRejectedException) : ex.GetType().Name;
                    RemoteTelemetry.Requests.Add(1, RemoteTelemetry.Tags(_client, url, null, error));
                    throw;
                }
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            RemoteTelemetry.Failures.Add(1, RemoteTelemetry.Tags(_client, url, null, ex.GetType().Name));
            throw;
        }
        using var owned = response;

        string where = $"{_purpose} {url.GetLeftPart(UriPartial.Path)}";
        string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            RemoteTelemetry.Failures.Add(1, RemoteTelemetry.Tags(_client, url, response.StatusCode, null));
            string tries = attempts > 1 ? string.Create(CultureInfo.InvariantCulture, $" after {attempts} attempts") : "";
            throw new HttpRequestException($"{where}: HTTP {(int)response.StatusCode} {response.ReasonPhrase}{tries}: {Truncate(text)}", null, response.StatusCode);
        }
        try
        {
            var parsed = JsonSerializer.Deserialize(text, OpenAIJson.Default.WireCompletion);
            if (parsed?.Choices is not { Count: > 0 } choices) throw new InvalidDataException("no choices");
            var result = new List<OpenAIChoice>(choices.Count);
            for (int i = 0; i < choices.Count; i++)
            {
                var c = choices[i];
                string content = (chat ? c.Message?.Content : c.Text) ?? throw new InvalidDataException(chat ? $"no choices[{i}].message.content" : $"no choices[{i}].text");
                var stopReason = c.StopReason.ValueKind != JsonValueKind.Undefined ? c.StopReason : c.MatchedStop;
                result.Add(new OpenAIChoice(c.Index ?? i, content, c.FinishReason, stopReason.ValueKind == JsonValueKind.Undefined ? default : stopReason.Clone(), TokenLogprobs(c.Logprobs)));
            }
            return new OpenAICompletion([.. result.OrderBy(c => c.Index)], parsed.Usage?.CompletionTokens);
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            RemoteTelemetry.Failures.Add(1, RemoteTelemetry.Tags(_client, url, null, ex.GetType().Name));
            throw new InvalidDataException($"{where}: reply is not a {(chat ? "chat completion" : "text completion")} ({ex.Message}): {Truncate(text)}", ex);
        }
    }

    /// <summary>
    /// A choice's per-token log-probs, from whichever shape the server sent: chat's <c>{"content": [{"logprob": x}, …]}</c>,
    /// the text API's <c>{"token_logprobs": [x, …]}</c>, or a bare array of numbers (TGI's /v1/completions declares one);
    /// null when absent or null. A null entry (an echoed first prompt token) reads as NaN.
    /// </summary>
    internal static IReadOnlyList<double>? TokenLogprobs(JsonElement logprobs)
    {
        static double Value(JsonElement e) => e.ValueKind == JsonValueKind.Number ? e.GetDouble() : double.NaN;
        switch (logprobs.ValueKind)
        {
            case JsonValueKind.Array:
                return [.. logprobs.EnumerateArray().Select(Value)];
            case JsonValueKind.Object when logprobs.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Array:
                return [.. content.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("logprob", out var l) ? Value(l) : double.NaN)];
            case JsonValueKind.Object when logprobs.TryGetProperty("token_logprobs", out var tokens) && tokens.ValueKind == JsonValueKind.Array:
                return [.. tokens.EnumerateArray().Select(Value)];
            default:
                return null;
        }
    }

    private static ResiliencePipeline<HttpResponseMessage> BuildPipeline(OpenAIClientOptions options, string name, TimeProvider time, Action<HttpStatusCode?, Exception?> retrying)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = name, TimeProvider = time };
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
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result, time)),
                OnRetry = args =>
                {
                    retrying(args.Outcome.Result?.StatusCode, args.Outcome.Exception);
                    args.Outcome.Result?.Dispose();
                    return default;
                },
            });
        }
        builder.AddTimeout(options.Timeout);
        return builder.Build();
    }

    /// <summary>The server's Retry-After (delta seconds or an HTTP date), when it gave one of at most 5 minutes; else null (back-off).</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeProvider time)
    {
        var header = response?.Headers.RetryAfter;
        TimeSpan? wait = header?.Delta ?? (header?.Date is { } date ? date - time.GetUtcNow() : null);
        if (wait is not { } w) return null;
        if (w < TimeSpan.Zero) w = TimeSpan.Zero;
        return w <= MaxRetryAfter ? w : null;
    }

    private static bool IsTransient(HttpStatusCode code) =>
        code is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)code >= 500;

    private static string Truncate(string s) => s.Length <= 300 ? s : s[..300] + "…";
}
