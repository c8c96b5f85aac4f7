using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Models.Generation;

/// <summary>A prompt given one way: text (encoded as the model sees it), a conversation (rendered with the chat
/// template, as ingest does), or token ids as they are.</summary>
/// <param name="Text">Prompt text, or null.</param>
/// <param name="Messages">A conversation, or null.</param>
/// <param name="Ids">Token ids, or null.</param>
public sealed record PolicyPrompt(string? Text = null, IReadOnlyList<Turn>? Messages = null, IReadOnlyList<int>? Ids = null);

/// <summary>One generation and the prompt ids the model was fed.</summary>
/// <param name="PromptIds">The ids fed to the model.</param>
/// <param name="PromptText">Those ids decoded (special tokens shown).</param>
/// <param name="Result">The generated continuation.</param>
public sealed record PolicyGenerationResult(IReadOnlyList<int> PromptIds, string PromptText, GenerationResult Result);

/// <summary>
/// Generates from a Hugging Face policy folder with the pipeline's prompt encoding (chat template decision, system prompt,
/// end-of-sequence ids): what it feeds the model is exactly what ingest feeds the policy.
/// </summary>
public static class PolicyGeneration
{
    /// <summary>Encodes <paramref name="prompt"/>, loads the model and generates once.</summary>
    /// <param name="policyDirectory">The policy folder.</param>
    /// <param name="prompt">The prompt (exactly one of text, messages, ids).</param>
    /// <param name="mode">Chat template: auto, always or never (as ingest).</param>
    /// <param name="systemPrompt">A system turn put before conversations without one, or null.</param>
    /// <param name="options">Sampling options; end-of-sequence ids default to the policy's.</param>
    /// <param name="seed">Sampling seed.</param>
    /// <param name="cancellationToken">Checked per decoding step.</param>
    /// <param name="adapterDirectory">A PEFT LoRA adapter applied live on the policy, or null.</param>
    /// <exception cref="ArgumentException">Not exactly one way of giving the prompt.</exception>
    public static PolicyGenerationResult Generate(string policyDirectory, PolicyPrompt prompt, ChatTemplateMode mode, string? systemPrompt,
        GenerationOptions options, long seed, string? adapterDirectory = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        if (new[] { prompt.Text is not null, prompt.Messages is not null, prompt.Ids is not null }.Count(x => x) != 1)
            throw new ArgumentException("give exactly one of a prompt text, messages or prompt ids", nameof(prompt));
        var encoder = PromptEncoder.Load(AdapterModels.ModelFolder(policyDirectory), mode, systemPrompt);
        var tokenizer = encoder.Tokenizer;
        IReadOnlyList<int> ids = prompt.Text is { } text ? encoder.EncodeRendered(text)
            : prompt.Messages is { } messages ? encoder.Encode(messages).Ids
            : prompt.Ids!;
        options.EosTokenIds ??= encoder.EosTokenIds;
        using var model = AdapterModels.Load(policyDirectory);
        using var adapter = adapterDirectory is null ? null : LoraAdapter.Load(model, adapterDirectory);
        var generator = new TextGenerator(model, encoder.PadTokenId, t => tokenizer.Decode(t, skipSpecialTokens: true));
        var result = generator.Generate([new GenerationRequest(ids, seed)], options, cancellationToken)[0];
        return new PolicyGenerationResult(ids, tokenizer.Decode(ids), result);
    }
}
