using Polly;
using PrefPipe.Models.Remote;

namespace PrefPipe.Ranking.Judges;

/// <summary>An LLM judge over an OpenAI-compatible or Azure OpenAI chat-completions endpoint.</summary>
/// <remarks>
/// HTTP, resilience and credentials are the shared <see cref="OpenAICompatibleClient"/>'s (one Polly 8 pipeline per judge,
/// name <see cref="PipelineName"/>: a concurrency limiter, retries with back-off on 408/429/5xx, timeouts and connection
/// failures honouring Retry-After, a timeout per attempt). The API key comes from the variable
/// <see cref="LlmJudgeOptions.ApiKeyVariable"/> names (Azure OpenAI without one: managed identity) and appears in no
/// message, exception or log.
/// </remarks>
internal sealed class LlmJudge : IPairwiseJudge, IDisposable
{
    /// <summary>The resilience pipeline's name, for telemetry.</summary>
    public const string PipelineName = "prefpipe-llm-judge";

    private readonly LlmJudgeOptions _options;
    private readonly OpenAICompatibleClient _client;

    public LlmJudge(HttpClient http, LlmJudgeOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        var api = options.Api == LlmApiKind.AzureOpenAI ? OpenAIApi.Azure : OpenAIApi.OpenAI;
        _client = new OpenAICompatibleClient(http, new OpenAIClientOptions
        {
            BaseUrl = options.Endpoint,
            Api = api,
            Model = options.Model,
            ApiVersion = options.ApiVersion,
            MaxConcurrency = options.MaxConcurrency,
            Timeout = options.AttemptTimeout,
            MaxRetries = options.MaxRetries,
            RetryBaseDelay = options.RetryBaseDelay,
        }, OpenAIAuthentication.FromEnvironment(options.ApiKeyVariable, api), PipelineName, "LLM judge", time, client: "judge");
    }

    /// <inheritdoc />
    public string Name => $"llm:{_options.Model}";

    /// <inheritdoc />
    public bool OrderSensitive => true;

    /// <summary>The pipeline, exposed for descriptor tests.</summary>
    internal ResiliencePipeline<HttpResponseMessage> Pipeline => _client.Pipeline;

    /// <inheritdoc />
    public async ValueTask<JudgeVerdict> CompareAsync(JudgeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        string user = JudgePromptTemplate.Render(_options.PromptTemplate, request);
        var messages = new List<OpenAIChatMessage>();
        if (!string.IsNullOrEmpty(_options.SystemPrompt)) messages.Add(new OpenAIChatMessage("system", _options.SystemPrompt));
        messages.Add(new OpenAIChatMessage("user", user));
        var reply = await _client.ChatAsync(new ChatCompletionRequest { Messages = messages, Temperature = _options.Temperature, MaxTokens = _options.MaxTokens },
            cancellationToken).ConfigureAwait(false);
        string text = reply.Choices[0].Text;
        return new JudgeVerdict(ParseVerdict(text, _options.VerdictMarkers ?? LlmJudgeOptions.DefaultVerdictMarkers), null, text);
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
    public void Dispose() => _client.Dispose();
}
