namespace PrefPipe.Text.Tokenizers;

/// <summary>One conversation turn.</summary>
/// <param name="Role">system, user or assistant.</param>
/// <param name="Content">The text.</param>
public sealed record Turn(string Role, string Content);

/// <summary>A prompt and a completion as token ids: the model sees PromptIds then CompletionIds.</summary>
/// <param name="PromptIds">Prompt tokens, with the BOS / generation prompt the template or post-processor gives.</param>
/// <param name="CompletionIds">Completion tokens, ending with exactly one end-of-sequence token.</param>
public sealed record EncodedCompletion(IReadOnlyList<int> PromptIds, IReadOnlyList<int> CompletionIds);

/// <summary>
/// Tokenises prompts and completions so that training sees exactly what generation produces: the completion is what
/// follows the prompt's last token. Designs out the silent template bugs users hit elsewhere: no second BOS before the
/// completion (special tokens are added once, by the template or the post-processor), exactly one EOS at the end (never
/// two, e.g. <c>&lt;|im_end|&gt;&lt;|im_end|&gt;</c>), and a clear error when a chat template does not render the prompt
/// as a prefix of prompt + completion (e.g. a template that injects a default system prompt or rewrites history).
/// </summary>
public sealed class CompletionEncoder
{
    private readonly ITextTokenizer _tokenizer;
    private readonly Func<IReadOnlyList<Turn>, bool, string>? _template;
    private readonly HashSet<int> _eos;

    /// <param name="tokenizer">The policy's tokenizer.</param>
    /// <param name="template">Renders turns with the chat template (second argument: add_generation_prompt), or null
    /// for plain text prompts (TRL "standard" format).</param>
    /// <param name="eosTokenIds">End-of-turn ids that finish a completion (the tokenizer's EOS when empty).</param>
    public CompletionEncoder(ITextTokenizer tokenizer, Func<IReadOnlyList<Turn>, bool, string>? template, IEnumerable<int>? eosTokenIds = null)
    {
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _template = template;
        _eos = [.. eosTokenIds ?? []];
        if (_eos.Count == 0 && tokenizer.EosTokenId is int eos) _eos.Add(eos);
        if (_eos.Count == 0) throw new ArgumentException("the tokenizer has no EOS token and none was given: completions could not be terminated", nameof(eosTokenIds));
    }

    /// <summary>The id appended to plain-text completions.</summary>
    public int EosTokenId => _tokenizer.EosTokenId is int e && _eos.Contains(e) ? e : _eos.First();

    /// <summary>The text the model is given: the templated conversation with the generation prompt, or the raw prompt.</summary>
    /// <exception cref="InvalidDataException">A conversation other than one user turn, and no chat template.</exception>
    public string RenderPrompt(IReadOnlyList<Turn> prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (_template is not null) return _template(prompt, true);
        if (prompt.Count != 1 || prompt[0].Role != "user")
            throw new InvalidDataException($"a conversation with {prompt.Count} turn(s) needs a chat template, and this model has none (or chat_template is 'never'); give plain prompts or a model with a chat template.");
        return prompt[0].Content;
    }

    /// <summary>
    /// The prompt as generation and training see it: rendered once, then encoded without the post-processor when a template
    /// rendered it (as transformers' <c>apply_chat_template(tokenize=True)</c>: a <c>{{ bos_token }}</c> template already
    /// carries BOS) and with it for a plain prompt.
    /// </summary>
    public EncodedPrompt EncodePrompt(IReadOnlyList<Turn> prompt)
    {
        string rendered = RenderPrompt(prompt);
        return new EncodedPrompt(rendered, _tokenizer.Encode(rendered, addSpecialTokens: _template is null));
    }

    /// <summary>Encodes a prompt and its completion (the assistant's reply).</summary>
    /// <exception cref="InvalidDataException">The chat template does not render the prompt as a prefix of the full conversation.</exception>
    public EncodedCompletion Encode(IReadOnlyList<Turn> prompt, string completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        var promptIds = EncodePrompt(prompt).Ids;
        List<int> completionIds;
        if (_template is null)
        {
            // TRL standard format: specials from the post-processor on the prompt only, EOS appended to the completion.
            completionIds = [.. _tokenizer.Encode(completion, addSpecialTokens: false)];
        }
        else
        {
            string promptText = _template(prompt, true);
            string fullText = _template([.. prompt, new Turn("assistant", completion)], false);
            if (!fullText.StartsWith(promptText, StringComparison.Ordinal))
            {
                int at = 0;
                while (at < promptText.Length && at < fullText.Length && promptText[at] == fullText[at]) at++;
                throw new InvalidDataException(
                    $"the chat template renders the prompt differently on its own (with the generation prompt) than inside prompt + completion; " +
                    $"they differ from character {at}: prompt '…{Excerpt(promptText, at)}…' vs conversation '…{Excerpt(fullText, at)}…'. " +
                    "Training on this would not match generation; fix the template or use plain prompts.");
            }
            // Tokenise the completion as the continuation of the prompt's tokens: exactly what generation produces.
            completionIds = [.. _tokenizer.Encode(fullText[promptText.Length..], addSpecialTokens: false)];
        }
        return new EncodedCompletion(promptIds, Terminate(completionIds)); // drops the template's trailing "\n" etc.
    }

    /// <summary>
    /// Encodes a prompt that was already rendered (e.g. the prompt text stored with a generated candidate) and a completion,
    /// exactly as generation saw them: prompt ids = the rendered text, with the post-processor's specials unless the text
    /// carries its own BOS (<see cref="PromptEncoder.EncodeRendered(string)"/>); completion ids end with exactly one end-of-turn token.
    /// </summary>
    public EncodedCompletion EncodeRendered(string renderedPrompt, string completion)
    {
        ArgumentNullException.ThrowIfNull(renderedPrompt);
        ArgumentNullException.ThrowIfNull(completion);
        var promptIds = PromptEncoder.EncodeRendered(_tokenizer, renderedPrompt);
        return new EncodedCompletion(promptIds, Terminate(_tokenizer.Encode(completion, addSpecialTokens: false)));
    }

    /// <summary>A completion's text as ids, without specials and unterminated (<see cref="Terminate"/> ends them): how a
    /// completion generated elsewhere, known only as text, is scored after its prompt's ids.</summary>
    public IReadOnlyList<int> EncodeCompletionText(string completion)
    {
        ArgumentNullException.ThrowIfNull(completion);
        return _tokenizer.Encode(completion, addSpecialTokens: false);
    }

    /// <summary>
    /// A completion exactly as it is trained and scored: the ids up to and including the first end-of-turn id, or all of
    /// them followed by <see cref="EosTokenId"/> when none ends them (a sample cut by max_new_tokens; TRL appends EOS too).
    /// </summary>
    public int[] Terminate(IReadOnlyList<int> completionIds)
    {
        ArgumentNullException.ThrowIfNull(completionIds);
        for (int i = 0; i < completionIds.Count; i++)
            if (_eos.Contains(completionIds[i])) return [.. completionIds.Take(i + 1)];
        return [.. completionIds, EosTokenId];
    }

    private static string Excerpt(string s, int at) => s.Substring(Math.Max(0, at - 10), Math.Min(30, s.Length - Math.Max(0, at - 10))).ReplaceLineEndings("\\n");
}
