using System.Text.Json;
using PrefPipe.Text.Templates;

namespace PrefPipe.Text.Tokenizers;

/// <summary>A prompt as the policy sees it.</summary>
/// <param name="Rendered">The text the model is given (templated when the policy has a chat template).</param>
/// <param name="Ids">Its token ids, exactly what generation is fed (one BOS at most, from the template or the post-processor).</param>
public sealed record EncodedPrompt(string Rendered, IReadOnlyList<int> Ids);

/// <summary>
/// The one place that turns prompts into the token ids a policy sees, and that decides which ids end a completion.
/// Ingest, training, PPO rollouts, evaluation and <c>prefpipe model generate</c> all encode through it, so the ids
/// generation used are the ids training scores.
/// </summary>
/// <remarks>
/// <para>Templated prompts are rendered with the chat template (generation prompt on) and encoded without the
/// post-processor, as transformers' <c>apply_chat_template(tokenize=True)</c> does: a template that starts with
/// <c>{{ bos_token }}</c> (Llama 3, Gemma) already carries the BOS, and a post-processor that adds BOS again would give
/// two (the silent double-BOS bug). Plain prompts (no template) are encoded with the post-processor, which adds the
/// tokenizer's BOS if it has one.</para>
/// <para>End of completion: the tokenizer's <c>eos_token</c>, every id in generation_config.json's <c>eos_token_id</c>
/// (instruct models stop at an end-of-turn token too) and config.json's <c>eos_token_id</c>.</para>
/// </remarks>
public sealed class PromptEncoder
{
    private readonly ChatTemplate? _template;
    private readonly string? _systemPrompt;
    private readonly CompletionEncoder _completions;

    private PromptEncoder(HfTokenizer tokenizer, ChatTemplate? template, string? systemPrompt, IReadOnlyList<int> eos, int pad)
    {
        Tokenizer = tokenizer;
        _template = template;
        _systemPrompt = string.IsNullOrEmpty(systemPrompt) ? null : systemPrompt;
        EosTokenIds = eos;
        PadTokenId = pad;
        _completions = Completions();
    }

    /// <summary>The policy's tokenizer.</summary>
    public HfTokenizer Tokenizer { get; }

    /// <summary>Every id that ends a completion (generation stops at any of them).</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>The id appended to a completion that has none of <see cref="EosTokenIds"/>: the tokenizer's EOS.</summary>
    public int EosTokenId => _completions.EosTokenId;

    /// <summary>Padding id for batches (pads are masked; the tokenizer's pad token, else the config's, else EOS).</summary>
    public int PadTokenId { get; }

    /// <summary>Loads the policy's tokenizer, chat template and end-of-sequence ids.</summary>
    /// <param name="policyDirectory">A Hugging Face model folder (tokenizer.json, tokenizer_config.json, config.json).</param>
    /// <param name="mode">When to use the chat template.</param>
    /// <param name="systemPrompt">A system turn prepended to conversations without one, when templating; null for none.</param>
    /// <exception cref="InvalidDataException">No end-of-sequence id anywhere, or <see cref="ChatTemplateMode.Always"/> without a template.</exception>
    public static PromptEncoder Load(string policyDirectory, ChatTemplateMode mode = ChatTemplateMode.Auto, string? systemPrompt = null)
    {
        var tokenizer = HfTokenizer.LoadHf(policyDirectory);
        ChatTemplate? template = null;
        if (mode != ChatTemplateMode.Never)
        {
            try
            {
                template = ChatTemplate.Load(policyDirectory);
            }
            catch (InvalidDataException) when (mode == ChatTemplateMode.Auto)
            {
                template = null; // no template: prompts are plain text
            }
        }
        var eos = new List<int>(tokenizer.EosTokenIds);
        foreach (int id in ConfigIds(policyDirectory, "eos_token_id"))
            if (!eos.Contains(id)) eos.Add(id);
        if (eos.Count == 0)
            throw new InvalidDataException($"{policyDirectory}: no end-of-sequence token: set eos_token in tokenizer_config.json or eos_token_id in generation_config.json/config.json; completions could not be terminated.");
        int pad = tokenizer.PadTokenId ?? ConfigIds(policyDirectory, "pad_token_id").Cast<int?>().FirstOrDefault() ?? eos[0];
        return new PromptEncoder(tokenizer, template, systemPrompt, eos, pad);
    }

    /// <summary>Whether prompts are rendered with a chat template (the policy has one and it is not turned off).</summary>
    public bool Templated => _template is not null;

    /// <summary>The conversation a templated prompt is rendered from: <paramref name="turns"/> with the system prompt, if
    /// any, prepended (when the conversation has no system turn of its own). What a chat-completions server is sent.</summary>
    public IReadOnlyList<Turn> Conversation(IReadOnlyList<Turn> turns)
    {
        ArgumentNullException.ThrowIfNull(turns);
        return WithSystemPrompt(turns);
    }

    /// <summary>Renders and encodes a conversation ending with the user turn to answer.</summary>
    /// <exception cref="InvalidDataException">A conversation of several turns and no chat template; a template error.</exception>
    public EncodedPrompt Encode(IReadOnlyList<Turn> turns) => _completions.EncodePrompt(turns);

    /// <summary>Encodes a plain prompt (TRL standard): one user turn, templated when the policy has a template.</summary>
    public EncodedPrompt EncodeText(string prompt) => Encode([new Turn("user", prompt ?? throw new ArgumentNullException(nameof(prompt)))]);

    /// <summary>
    /// Encodes prompt text that is already what the model sees (a rendered prompt stored in an artifact, or a TRL standard
    /// prompt). The post-processor's specials are added unless the text carries its own BOS, so a rendered
    /// <c>{{ bos_token }}</c> template and the post-processor never give two.
    /// </summary>
    public IReadOnlyList<int> EncodeRendered(string text) => EncodeRendered(Tokenizer, text);

    internal static IReadOnlyList<int> EncodeRendered(ITextTokenizer tokenizer, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bare = tokenizer.Encode(text, addSpecialTokens: false);
        if (tokenizer.BosTokenId is int bos && bare.Count > 0 && bare[0] == bos) return bare;
        return tokenizer.Encode(text, addSpecialTokens: true);
    }

    /// <summary>
    /// A completion exactly as it is trained and scored: the ids up to and including the first end-of-sequence id, or all
    /// of them followed by <see cref="EosTokenId"/> when none ends them (a sample cut by max_new_tokens, as TRL appends
    /// EOS to completions).
    /// </summary>
    public int[] Terminate(IReadOnlyList<int> completionIds) => _completions.Terminate(completionIds);

    /// <summary>A <see cref="CompletionEncoder"/> with the same template, system prompt and end-of-sequence ids (for conversational pairs).</summary>
    public CompletionEncoder Completions() => new(Tokenizer,
        _template is null ? null : (turns, generation) => _template.Render([.. WithSystemPrompt(turns).Select(t => new ChatMessage(t.Role, t.Content))], generation),
        EosTokenIds);

    private IReadOnlyList<Turn> WithSystemPrompt(IReadOnlyList<Turn> turns) =>
        _systemPrompt is not null && (turns.Count == 0 || turns[0].Role != "system") ? [new Turn("system", _systemPrompt), .. turns] : turns;

    private static List<int> ConfigIds(string directory, string key)
    {
        var ids = new List<int>();
        foreach (string name in new[] { "generation_config.json", "config.json" })
        {
            string file = Path.Combine(directory, name);
            if (!File.Exists(file)) continue;
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty(key, out var value)) continue;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int one)) ids.Add(one);
            else if (value.ValueKind == JsonValueKind.Array)
                ids.AddRange(value.EnumerateArray().Where(v => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out _)).Select(v => v.GetInt32()));
        }
        return ids;
    }
}
