using System.CommandLine;
using PrefPipe.Host.Pipelines;
using PrefPipe.Ingest.Generation;
using PrefPipe.Models.Remote;

namespace PrefPipe.Host.Commands;

/// <summary>
/// <c>prefpipe ingest</c>'s flags for <c>ingest.generator</c>: one per pipeline key, <c>--generator-KEY</c> with the key's
/// underscores as dashes (the type is <c>--generator</c>), the same values and defaults as the file. The API key is never
/// a flag: it comes from <see cref="GeneratorOptions.ApiKeyVariable"/> only (Azure OpenAI without it: managed identity).
/// </summary>
internal sealed class GeneratorFlags
{
    private static readonly GeneratorOptions Defaults = new();

    private GeneratorFlags()
    {
    }

    public Option<GeneratorType> Type { get; } = new("--generator")
    {
        Description = $"Candidate engine: local (the policy, in this process) or openai (an OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp server, Azure OpenAI). The server's key comes from {GeneratorOptions.ApiKeyVariable} only.",
        DefaultValueFactory = _ => Defaults.Type,
    };

    public Option<Uri?> BaseUrl { get; } = new("--generator-base-url")
    {
        Description = "openai: the server's base URL, e.g. http://vllm:8000/v1, https://api.openai.com/v1, https://NAME.openai.azure.com.",
        CustomParser = AbsoluteUrl("--generator-base-url", "http://localhost:8000/v1"),
    };

    /// <summary>A URL flag's parser: a value that is not an absolute URL is a parse error (exit 2 naming the flag), not an
    /// exception when the value is read.</summary>
    internal static Func<System.CommandLine.Parsing.ArgumentResult, Uri?> AbsoluteUrl(string flag, string example) => result =>
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri)) return uri;
        result.AddError($"{flag} {text}: expected an absolute http(s) URL, e.g. {example}");
        return null;
    };

    public Option<OpenAIApi> Api { get; } = new("--generator-api")
    {
        Description = "openai: URL and key shape, openai or azure (Azure OpenAI: deployment in the URL, api-version, api-key header or managed identity).",
        DefaultValueFactory = _ => Defaults.Api,
    };

    public Option<string?> Model { get; } = new("--generator-model")
    {
        Description = "openai: the name the server serves the policy under (vLLM: --served-model-name).",
    };

    public Option<string?> Deployment { get; } = new("--generator-deployment")
    {
        Description = "Azure OpenAI deployment (default: --generator-model).",
    };

    public Option<string> ApiVersion { get; } = new("--generator-api-version")
    {
        Description = "Azure OpenAI api-version.",
        DefaultValueFactory = _ => Defaults.ApiVersion,
    };

    public Option<int> MaxConcurrency { get; } = new("--generator-max-concurrency")
    {
        Description = "openai: requests in flight at once, 1 to 1024 (keep --batch-size at least this).",
        DefaultValueFactory = _ => Defaults.MaxConcurrency,
    };

    public Option<TimeSpan> Timeout { get; } = Duration("--generator-timeout", "openai: timeout of one attempt, 100ms to 1h (250ms, 30s, 5m or 00:05:00).", Defaults.Timeout);

    public Option<int> MaxRetries { get; } = new("--generator-max-retries")
    {
        Description = "openai: retries after the first attempt on 408, 429, 5xx, timeouts and connection failures (Retry-After honoured), 0 to 20.",
        DefaultValueFactory = _ => Defaults.MaxRetries,
    };

    public Option<TimeSpan> RetryBaseDelay { get; } = Duration("--generator-retry-base-delay", "openai: base delay of the exponential back-off with jitter, 0 to 1m.", Defaults.RetryBaseDelay);

    public Option<bool?> NSupported { get; } = new("--generator-n-supported")
    {
        Description = "openai: true: K candidates from one request with n = K; false: K requests with distinct seeds; unset: detected.",
    };

    public Option<bool> Logprobs { get; } = new("--generator-logprobs")
    {
        Description = "openai: ask for per-token log-probs (false for a server that refuses the parameter; logprob_sum is then null).",
        DefaultValueFactory = _ => Defaults.Logprobs,
    };

    /// <summary>Every flag, in the order of the pipeline keys.</summary>
    public IReadOnlyList<Option> All => [Type, BaseUrl, Api, Model, Deployment, ApiVersion, MaxConcurrency, Timeout, MaxRetries, RetryBaseDelay, NSupported, Logprobs];

    public static GeneratorFlags Create() => new();

    /// <summary>The flag that sets the pipeline key <c>ingest.generator.KEY</c>.</summary>
    public static string FlagOf(string key) => key == "type" ? "--generator" : "--generator-" + key.Replace('_', '-');

    /// <summary>The options the flags give (validated by the caller, with the rest of ingest's options).</summary>
    public GeneratorOptions Bind(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return new GeneratorOptions
        {
            Type = parse.GetValue(Type),
            BaseUrl = parse.GetValue(BaseUrl),
            Api = parse.GetValue(Api),
            Model = parse.GetValue(Model) ?? "",
            Deployment = parse.GetValue(Deployment),
            ApiVersion = parse.GetValue(ApiVersion) ?? "",
            MaxConcurrency = parse.GetValue(MaxConcurrency),
            Timeout = parse.GetValue(Timeout),
            MaxRetries = parse.GetValue(MaxRetries),
            RetryBaseDelay = parse.GetValue(RetryBaseDelay),
            NSupported = parse.GetValue(NSupported),
            Logprobs = parse.GetValue(Logprobs),
        };
    }

    // A duration as pipeline files write it (YamlBinder.TryDuration), not only .NET's 00:00:30.
    private static Option<TimeSpan> Duration(string name, string description, TimeSpan defaultValue) => new(name)
    {
        Description = description,
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            if (result.Tokens.Count == 0) return defaultValue;
            string text = result.Tokens[0].Value;
            if (YamlBinder.TryDuration(text, out var value)) return value;
            result.AddError($"{name} {text}: expected {YamlBinder.DurationExpected}");
            return defaultValue;
        },
    };
}
