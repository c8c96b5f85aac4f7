using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using Azure.Core;
using Azure.Identity;

namespace PrefPipe.Models.Remote;

/// <summary>
/// How requests prove who sends them: an API key (read from the environment, never from files), a Microsoft Entra token
/// (managed identity, for Azure OpenAI), or nothing (a local server). <see cref="ToString"/> never shows the key.
/// </summary>
public sealed class OpenAIAuthentication
{
    /// <summary>The Entra scope of Azure OpenAI (Cognitive Services).</summary>
    public const string CognitiveServicesScope = "https://cognitiveservices.azure.com/.default";

    private readonly string? _key;
    private readonly TokenCredential? _credential;
    private readonly string _scope;
    private volatile StrongBox<AccessToken>? _token;

    private OpenAIAuthentication(string? key, TokenCredential? credential, string scope)
    {
        _key = key;
        _credential = credential;
        _scope = scope;
    }

    /// <summary>No credentials (a server on a private network or loopback).</summary>
    public static OpenAIAuthentication None { get; } = new(null, null, CognitiveServicesScope);

    /// <summary>An API key: <c>Authorization: Bearer KEY</c>, or <c>api-key: KEY</c> on Azure OpenAI.</summary>
    public static OpenAIAuthentication ApiKey(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return new(key, null, CognitiveServicesScope);
    }

    /// <summary>A token credential (managed identity, workload identity, az login): <c>Authorization: Bearer TOKEN</c>.</summary>
    public static OpenAIAuthentication Token(TokenCredential credential, string scope = CognitiveServicesScope)
    {
        ArgumentNullException.ThrowIfNull(credential);
        return new(null, credential, scope);
    }

    /// <summary>
    /// The key in <paramref name="variable"/> when it is set and not empty; otherwise, for Azure OpenAI, a Microsoft Entra
    /// token from <paramref name="credential"/> (default <c>DefaultAzureCredential</c>: managed identity); otherwise none.
    /// </summary>
    /// <param name="variable">The environment variable holding the key, e.g. PREFPIPE_GENERATOR_API_KEY.</param>
    /// <param name="api">The endpoint's API shape.</param>
    /// <param name="credential">Made only when needed; default <c>new DefaultAzureCredential()</c>.</param>
    /// <param name="environment">Reads a variable; default <see cref="Environment.GetEnvironmentVariable(string)"/>.</param>
    public static OpenAIAuthentication FromEnvironment(string variable, OpenAIApi api, Func<TokenCredential>? credential = null, Func<string, string?>? environment = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(variable);
        string? key = (environment ?? Environment.GetEnvironmentVariable)(variable);
        if (!string.IsNullOrEmpty(key)) return ApiKey(key);
        return api == OpenAIApi.Azure ? Token(credential?.Invoke() ?? new DefaultAzureCredential()) : None;
    }

    /// <summary>What kind of credentials these are (never the key).</summary>
    public string Kind => _key is not null ? "api key" : _credential is not null ? "Microsoft Entra token" : "none";

    /// <inheritdoc />
    public override string ToString() => Kind;

    /// <summary>Adds the credentials to a request.</summary>
    internal async ValueTask ApplyAsync(HttpRequestMessage message, OpenAIApi api, CancellationToken cancellationToken)
    {
        if (_key is not null)
        {
            if (api == OpenAIApi.Azure) message.Headers.Add("api-key", _key);
            else message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
            return;
        }
        if (_credential is null) return;
        // Tokens live about an hour; take a new one five minutes before this one expires. Concurrent requests may both
        // fetch one at expiry (the credential caches too); either token is good.
        var token = _token;
        if (token is null || token.Value.ExpiresOn <= DateTimeOffset.UtcNow.AddMinutes(5))
            _token = token = new StrongBox<AccessToken>(await _credential.GetTokenAsync(new TokenRequestContext([_scope]), cancellationToken).ConfigureAwait(false));
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value.Token);
    }
}
