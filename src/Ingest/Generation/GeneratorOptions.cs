using System.ComponentModel.DataAnnotations;
using PrefPipe.Models;
using PrefPipe.Models.Remote;

namespace PrefPipe.Ingest.Generation;

/// <summary>Which engine generates the candidates.</summary>
public enum GeneratorType
{
    /// <summary>The policy on TorchSharp, in this process (seeded; ids and log-probs recorded exactly).</summary>
    Local,

    /// <summary>An OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp server, OpenAI, Azure OpenAI) serving the policy.</summary>
    OpenAI,
}

/// <summary>
/// <c>ingest.generator</c>: the engine that generates candidates. <c>type: local</c> (default) runs the policy here;
/// <c>type: openai</c> sends prompts to an OpenAI-compatible server. The key is never in here: it is read from the
/// environment variable <see cref="ApiKeyVariable"/> (Azure OpenAI without it: managed identity).
/// </summary>
public sealed class GeneratorOptions : IValidatableObject
{
    /// <summary>The environment variable holding the server's API key.</summary>
    public const string ApiKeyVariable = "PREFPIPE_GENERATOR_API_KEY";

    /// <summary>The engine.</summary>
    /// <value>Default <see cref="GeneratorType.Local"/>.</value>
    public GeneratorType Type { get; set; } = GeneratorType.Local;

    /// <summary>The server's base URL (type openai): http://vllm:8000/v1, https://api.openai.com/v1, https://NAME.openai.azure.com.</summary>
    public Uri? BaseUrl { get; set; }

    /// <summary>URL and key shape: openai, or azure (Azure OpenAI: deployment in the URL, api-version, api-key header).</summary>
    /// <value>Default openai.</value>
    public OpenAIApi Api { get; set; } = OpenAIApi.OpenAI;

    /// <summary>The name the server serves the policy under (the body's <c>model</c>; vLLM: <c>--served-model-name</c>).</summary>
    public string Model { get; set; } = "";

    /// <summary>Azure OpenAI deployment; default <see cref="Model"/>.</summary>
    public string? Deployment { get; set; }

    /// <summary>Azure OpenAI api-version.</summary>
    /// <value>Default "2024-10-21".</value>
    public string ApiVersion { get; set; } = "2024-10-21";

    /// <summary>Requests in flight at once. A batch of <c>batch_size</c> prompts is sent at once, so keep batch_size at
    /// least max_concurrency (or max_concurrency / K where the server lacks <c>n</c>).</summary>
    /// <value>Default 8; 1 to 1024.</value>
    [Range(1, 1024)]
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>Timeout of one attempt.</summary>
    /// <value>Default 120 s; 100 ms to 1 h.</value>
    [Range(typeof(TimeSpan), "00:00:00.1", "01:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Retries after the first attempt on 408/429/5xx, timeouts and connection failures (Retry-After honoured).
    /// A prompt that still fails becomes a rejected row with the reason.</summary>
    /// <value>Default 4; 0 to 20.</value>
    [Range(0, 20)]
    public int MaxRetries { get; set; } = 4;

    /// <summary>Base delay of the exponential back-off with jitter.</summary>
    /// <value>Default 1 s; 0 to 1 min.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether the server honours <c>n</c> (K choices from one request). true: one request per prompt; false: K
    /// requests with distinct seeds; null (default): try <c>n</c> and fall back to K requests when the server returns fewer
    /// choices or refuses the request with 400/422.</summary>
    public bool? NSupported { get; set; }

    /// <summary>Ask for per-token log-probs (chat: <c>logprobs: true</c>; completions: <c>logprobs: 1</c>). Turn off for a
    /// server that refuses the parameter; logprob_sum is then null.</summary>
    /// <value>Default true.</value>
    public bool Logprobs { get; set; } = true;

    /// <summary>The client options these settings describe.</summary>
    public OpenAIClientOptions ToClientOptions() => new()
    {
        BaseUrl = BaseUrl,
        Api = Api,
        Model = Model,
        Deployment = Deployment,
        ApiVersion = ApiVersion,
        MaxConcurrency = MaxConcurrency,
        Timeout = Timeout,
        MaxRetries = MaxRetries,
        RetryBaseDelay = RetryBaseDelay,
    };

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (Type != GeneratorType.OpenAI) yield break;
        if (BaseUrl is null)
            yield return new ValidationResult("base_url is required for type openai, e.g. http://localhost:8000/v1.", OptionsMembers.Under(validationContext, nameof(BaseUrl)));
        else if (!BaseUrl.IsAbsoluteUri || (BaseUrl.Scheme != Uri.UriSchemeHttp && BaseUrl.Scheme != Uri.UriSchemeHttps))
            yield return new ValidationResult($"base_url '{BaseUrl}' must be an absolute http(s) URL.", OptionsMembers.Under(validationContext, nameof(BaseUrl)));
        if (Api == OpenAIApi.OpenAI && string.IsNullOrWhiteSpace(Model))
            yield return new ValidationResult("model is required for type openai: the name the server serves the policy under.", OptionsMembers.Under(validationContext, nameof(Model)));
        if (Api == OpenAIApi.Azure && string.IsNullOrWhiteSpace(Model) && string.IsNullOrWhiteSpace(Deployment))
            yield return new ValidationResult("deployment (or model) is required for api azure.", OptionsMembers.Under(validationContext, nameof(Deployment)));
        if (Api == OpenAIApi.Azure && string.IsNullOrWhiteSpace(ApiVersion))
            yield return new ValidationResult("api_version is required for api azure, e.g. 2024-10-21.", OptionsMembers.Under(validationContext, nameof(ApiVersion)));
    }
}
