using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrefPipe.Models.Remote;

/// <summary>One message of a chat-completions request.</summary>
/// <param name="Role">system, user or assistant.</param>
/// <param name="Content">The text.</param>
public sealed record OpenAIChatMessage(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string Content);

/// <summary>
/// A POST /chat/completions body (OpenAI API reference, "Create chat completion"). Null members are left out, so a server
/// only sees what the caller set. <see cref="Model"/> is filled in by the client (and left out on Azure OpenAI, where the
/// URL names the deployment).
/// </summary>
public sealed record ChatCompletionRequest
{
    /// <summary>The model; set by <see cref="OpenAICompatibleClient"/>.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>The conversation.</summary>
    [JsonPropertyName("messages")] public IReadOnlyList<OpenAIChatMessage> Messages { get; init; } = [];

    /// <summary>Sampling temperature (0: greedy).</summary>
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }

    /// <summary>Nucleus mass.</summary>
    [JsonPropertyName("top_p")] public double? TopP { get; init; }

    /// <summary>Most tokens to generate.</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }

    /// <summary>Choices to generate for this request.</summary>
    [JsonPropertyName("n")] public int? N { get; init; }

    /// <summary>Sampling seed.</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    /// <summary>Stop sequences (not part of the text returned).</summary>
    [JsonPropertyName("stop")] public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>Return the log-prob of each generated token (choices[].logprobs.content[].logprob).</summary>
    [JsonPropertyName("logprobs")] public bool? Logprobs { get; init; }
}

/// <summary>A POST /completions body (OpenAI API reference, "Create completion", the legacy text API). Null members are left out.</summary>
public sealed record TextCompletionRequest
{
    /// <summary>The model; set by <see cref="OpenAICompatibleClient"/>.</summary>
    [JsonPropertyName("model")] public string? Model { get; init; }

    /// <summary>The prompt text.</summary>
    [JsonPropertyName("prompt")] public string Prompt { get; init; } = "";

    /// <summary>Sampling temperature (0: greedy).</summary>
    [JsonPropertyName("temperature")] public double? Temperature { get; init; }

    /// <summary>Nucleus mass.</summary>
    [JsonPropertyName("top_p")] public double? TopP { get; init; }

    /// <summary>Most tokens to generate.</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; init; }

    /// <summary>Choices to generate for this request.</summary>
    [JsonPropertyName("n")] public int? N { get; init; }

    /// <summary>Sampling seed.</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    /// <summary>Stop sequences (not part of the text returned).</summary>
    [JsonPropertyName("stop")] public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>Log-probs of the sampled tokens and this many alternatives (choices[].logprobs.token_logprobs).</summary>
    [JsonPropertyName("logprobs")] public int? Logprobs { get; init; }
}

/// <summary>One generated choice, from either endpoint.</summary>
/// <param name="Index">The choice's index in the reply.</param>
/// <param name="Text">The generated text (choices[].text, or choices[].message.content).</param>
/// <param name="FinishReason">stop, length, or what the server says; null when absent.</param>
/// <param name="StopReason">What ended a "stop" choice, where the server says: vLLM's <c>stop_reason</c> or SGLang's
/// <c>matched_stop</c> (a stop string, or a token id; vLLM: null for EOS); <see cref="JsonValueKind.Undefined"/> when the
/// server sends neither.</param>
/// <param name="TokenLogprobs">The log-prob of each generated token, when the server returned them; else null.</param>
public sealed record OpenAIChoice(int Index, string Text, string? FinishReason, JsonElement StopReason, IReadOnlyList<double>? TokenLogprobs);

/// <summary>A completion reply.</summary>
/// <param name="Choices">The choices, in index order.</param>
/// <param name="CompletionTokens">usage.completion_tokens, when sent.</param>
public sealed record OpenAICompletion(IReadOnlyList<OpenAIChoice> Choices, int? CompletionTokens);

internal sealed record WireMessage([property: JsonPropertyName("content")] string? Content);

internal sealed record WireChoice(
    [property: JsonPropertyName("index")] int? Index,
    [property: JsonPropertyName("text")] string? Text,
    [property: JsonPropertyName("message")] WireMessage? Message,
    [property: JsonPropertyName("finish_reason")] string? FinishReason,
    [property: JsonPropertyName("stop_reason")] JsonElement StopReason,
    [property: JsonPropertyName("matched_stop")] JsonElement MatchedStop,
    [property: JsonPropertyName("logprobs")] JsonElement Logprobs);

internal sealed record WireUsage([property: JsonPropertyName("completion_tokens")] int? CompletionTokens);

internal sealed record WireCompletion(
    [property: JsonPropertyName("choices")] IReadOnlyList<WireChoice>? Choices,
    [property: JsonPropertyName("usage")] WireUsage? Usage);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(TextCompletionRequest))]
[JsonSerializable(typeof(WireCompletion))]
internal sealed partial class OpenAIJson : JsonSerializerContext;
