using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace PrefPipe.Models.Remote;

/// <summary>Which URL and key shape an OpenAI-compatible endpoint speaks.</summary>
public enum OpenAIApi
{
    /// <summary>OpenAI-compatible (OpenAI, vLLM, SGLang, TGI, llama.cpp server, LiteLLM...): POST {base_url}/chat/completions
    /// and {base_url}/completions, <c>Authorization: Bearer KEY</c>, the model named in the body.</summary>
    OpenAI,

    /// <summary>Azure OpenAI: POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=V (and
    /// /completions), <c>api-key: KEY</c>, or a Microsoft Entra token (managed identity) when no key is set.</summary>
    Azure,
}

/// <summary>
/// Where and how an <see cref="OpenAICompatibleClient"/> talks to a server. The API key is never in here: the caller reads
/// it from the environment (<see cref="OpenAIAuthentication.FromEnvironment"/>), so no options file, log or artifact holds it.
/// </summary>
public sealed class OpenAIClientOptions : IValidatableObject
{
    /// <summary>The server's base URL: https://api.openai.com/v1, http://vllm:8000/v1, https://NAME.openai.azure.com.</summary>
    [Required]
    public Uri? BaseUrl { get; set; }

    /// <summary>URL and key shape.</summary>
    /// <value>Default <see cref="OpenAIApi.OpenAI"/>.</value>
    public OpenAIApi Api { get; set; } = OpenAIApi.OpenAI;

    /// <summary>The model the server serves (the body's <c>model</c>); on Azure the deployment when <see cref="Deployment"/> is unset.</summary>
    public string Model { get; set; } = "";

    /// <summary>Azure OpenAI deployment name (the URL's {deployment}); default <see cref="Model"/>.</summary>
    public string? Deployment { get; set; }

    /// <summary>Azure OpenAI api-version query value.</summary>
    /// <value>Default "2024-10-21" (the GA version).</value>
    public string ApiVersion { get; set; } = "2024-10-21";

    /// <summary>Requests in flight at once, across every caller of the client.</summary>
    /// <value>Default 8; 1 to 1024.</value>
    [Range(1, 1024)]
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>Timeout of one attempt (a timed-out attempt is retried).</summary>
    /// <value>Default 120 s; 100 ms to 1 h.</value>
    [Range(typeof(TimeSpan), "00:00:00.1", "01:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Retries after the first attempt, on 408/429/5xx, timeouts and connection failures only.</summary>
    /// <value>Default 4; 0 to 20.</value>
    [Range(0, 20)]
    public int MaxRetries { get; set; } = 4;

    /// <summary>Base delay of the exponential back-off with jitter; a Retry-After header (up to 5 minutes) wins when present.</summary>
    /// <value>Default 1 s; 0 to 1 min.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Throws when an option is invalid, naming every one.</summary>
    /// <param name="name">What the names in messages start with (a configuration section or a pipeline file's key); default: the type name.</param>
    /// <exception cref="OptionsValidationException">Some option is invalid; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new OpenAIClientOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(OpenAIClientOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (BaseUrl is { } url && (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)))
            yield return new ValidationResult($"base url '{url}' must be an absolute http(s) URL.", OptionsMembers.Under(validationContext, nameof(BaseUrl)));
        if (Api == OpenAIApi.OpenAI && string.IsNullOrWhiteSpace(Model))
            yield return new ValidationResult("model is required: the name the server serves the model under.", OptionsMembers.Under(validationContext, nameof(Model)));
        if (Api == OpenAIApi.Azure && string.IsNullOrWhiteSpace(Deployment) && string.IsNullOrWhiteSpace(Model))
            yield return new ValidationResult("deployment (or model) is required for Azure OpenAI.", OptionsMembers.Under(validationContext, nameof(Deployment)));
        if (Api == OpenAIApi.Azure && string.IsNullOrWhiteSpace(ApiVersion))
            yield return new ValidationResult("api_version is required for Azure OpenAI, e.g. 2024-10-21.", OptionsMembers.Under(validationContext, nameof(ApiVersion)));
    }
}

/// <summary>Checks <see cref="OpenAIClientOptions"/>: generated from its attributes, with its cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class OpenAIClientOptionsValidator : IValidateOptions<OpenAIClientOptions>;
