using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Ingest.Prompts;

/// <summary>A prompt as read from the input, before validation.</summary>
/// <param name="Row">0-based row in the input (for rejects).</param>
/// <param name="Text">The prompt text (TRL standard), or null when <paramref name="Messages"/> is given.</param>
/// <param name="Messages">The conversation (TRL conversational), or null.</param>
internal sealed record RawPrompt(long Row, string? Text, IReadOnlyList<Turn>? Messages);

/// <summary>A prompt ready for generation.</summary>
/// <param name="Row">Input row.</param>
/// <param name="PromptId">Stable id from the normalised content.</param>
/// <param name="Turns">The conversation (a plain prompt is one user turn).</param>
/// <param name="Rendered">The text the model sees (templated when the model has a template).</param>
/// <param name="PromptIds">Its tokens (truncated per policy).</param>
/// <param name="Truncated">Whether the prompt was cut to the limit.</param>
internal sealed record ValidPrompt(long Row, string PromptId, IReadOnlyList<Turn> Turns, string Rendered, IReadOnlyList<int> PromptIds, bool Truncated);

/// <summary>A row that will not be used, and why.</summary>
/// <param name="Row">Input row.</param>
/// <param name="PromptId">Its id when one could be computed.</param>
/// <param name="Reason">What was wrong and what was expected.</param>
internal sealed record PromptRejection(long Row, string? PromptId, string Reason);

/// <summary>
/// Validates prompts: non-empty, well-formed conversations (roles system/user/assistant, ending with a user turn),
/// duplicates by normalised content, and length after templating (reject or keep the end). Every input row ends up in
/// exactly one of the two outputs.
/// </summary>
internal sealed class PromptValidator(PromptEncoder encoder, IngestOptions options)
{
    private static readonly HashSet<string> Roles = ["system", "user", "assistant"];
    private readonly Dictionary<string, long> _seen = [];

    /// <summary>Validates one prompt; call in input order so the first of duplicates wins.</summary>
    public (ValidPrompt? Prompt, PromptRejection? Rejection) Validate(RawPrompt raw)
    {
        ArgumentNullException.ThrowIfNull(raw);
        IReadOnlyList<Turn> turns;
        string id;
        if (raw.Messages is { } messages)
        {
            if (messages.Count == 0) return Reject(raw, null, "messages is an empty list; expected at least one user turn");
            for (int i = 0; i < messages.Count; i++)
            {
                if (!Roles.Contains(messages[i].Role))
                    return Reject(raw, null, $"messages[{i}].role is '{messages[i].Role}'; expected system, user or assistant");
                if (string.IsNullOrWhiteSpace(messages[i].Content))
                    return Reject(raw, null, $"messages[{i}].content is empty");
            }
            if (messages[^1].Role != "user")
                return Reject(raw, null, $"the conversation ends with a '{messages[^1].Role}' turn; expected it to end with the user turn to answer");
            turns = messages.Select(m => m with { Content = m.Content }).ToList();
            id = PromptIdentity.IdFor(turns.Select(t => (t.Role, t.Content)));
        }
        else
        {
            if (string.IsNullOrWhiteSpace(raw.Text)) return Reject(raw, null, "prompt is empty; expected text");
            id = PromptIdentity.IdFor(PromptIdentity.Normalize(raw.Text));
            turns = [new Turn("user", raw.Text)];
        }
        if (_seen.TryGetValue(id, out long first))
        {
            if (options.Deduplicate) return Reject(raw, id, $"duplicate of row {first} (same normalised prompt)");
            // Kept repeats need their own ids downstream: the n-th occurrence (in input order) gets "-n".
            int n = 2;
            while (_seen.ContainsKey($"{id}-{n}")) n++;
            id = $"{id}-{n}";
        }
        _seen[id] = raw.Row;

        EncodedPrompt encoded;
        try
        {
            encoded = encoder.Encode(turns); // the system prompt, if any, is added there (templated prompts only)
        }
        catch (InvalidDataException ex)
        {
            return Reject(raw, id, ex.Message);
        }
        var ids = encoded.Ids;
        bool truncated = false;
        if (ids.Count > options.MaxPromptTokens)
        {
            if (options.OverLong == OverLongPolicy.Reject)
                return Reject(raw, id, $"{ids.Count} tokens after templating, more than max_prompt_tokens {options.MaxPromptTokens} (over_long: reject)");
            ids = ids.Skip(ids.Count - options.MaxPromptTokens).ToArray();
            truncated = true;
        }
        return (new ValidPrompt(raw.Row, id, turns, encoded.Rendered, ids, truncated), null);
    }

    private static (ValidPrompt?, PromptRejection?) Reject(RawPrompt raw, string? id, string reason) => (null, new PromptRejection(raw.Row, id, reason));
}
