using PrefPipe.Artifacts.Rows;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Trainer.Data;

/// <summary>A preference pair as token ids, ready for the model.</summary>
/// <param name="Key">The pair's key (prompt_id), for rejects and ordering.</param>
/// <param name="PromptIds">Prompt tokens (after prompt truncation).</param>
/// <param name="ChosenIds">Chosen completion tokens (after truncation).</param>
/// <param name="RejectedIds">Rejected completion tokens (after truncation).</param>
public sealed record EncodedPair(string Key, int[] PromptIds, int[] ChosenIds, int[] RejectedIds)
{
    /// <summary>Longest of prompt + chosen and prompt + rejected.</summary>
    public int Length => PromptIds.Length + Math.Max(ChosenIds.Length, RejectedIds.Length);
}

/// <summary>A pair that cannot be trained on, and why.</summary>
/// <param name="Key">The pair's key.</param>
/// <param name="Reason">What is wrong.</param>
public sealed record PairRejection(string Key, string Reason);

/// <summary>
/// Turns (prompt, chosen, rejected) into token ids with the length limits applied, and refuses pairs that would train
/// the wrong thing: empty completions and pairs whose chosen and rejected are identical, before or after truncation
/// (TRL PR #6321, OpenRLHF PR #1313 — elsewhere these train silently).
/// </summary>
/// <remarks>
/// Prompt first: longer than max_prompt_length → keep its end (keep_end, TRL's default) or its start. Then completions
/// are cut from their end so prompt + completion ≤ max_length. A cut completion loses its EOS, as in TRL.
/// </remarks>
internal sealed class PairEncoder(CompletionEncoder encoder, int maxLength, int maxPromptLength, TruncationMode mode)
{
    /// <summary>Encodes one pair whose prompt is a conversation (rendered here with the template, if any).</summary>
    public (EncodedPair? Pair, PairRejection? Rejection) Encode(string key, IReadOnlyList<Turn> prompt, string chosen, string rejected) =>
        Encode(key, chosen, rejected, c => encoder.Encode(prompt, c));

    /// <summary>Encodes one pair whose prompt text is already rendered as the policy saw it (pairs made by the data stages).</summary>
    public (EncodedPair? Pair, PairRejection? Rejection) EncodeRendered(string key, string renderedPrompt, string chosen, string rejected) =>
        Encode(key, chosen, rejected, c => encoder.EncodeRendered(renderedPrompt, c));

    /// <summary>
    /// Encodes a pair made by the data stages. When it carries the ids generation used (prompt_input_ids,
    /// chosen_input_ids, rejected_input_ids) those are trained on as they are, so training scores exactly what the policy
    /// generated. With the prompt's ids but no completion ids (candidates from an external server, which returns text) the
    /// prompt ids are kept and the completion texts are encoded with the policy's tokenizer after them. Otherwise its
    /// rendered prompt and texts are encoded.
    /// </summary>
    public (EncodedPair? Pair, PairRejection? Rejection) Encode(PreferenceRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return row switch
        {
            { PromptInputIds.Count: > 0, ChosenInputIds: not null, RejectedInputIds: not null } =>
                EncodeIds(row.PromptId, row.PromptInputIds, row.ChosenInputIds, row.RejectedInputIds),
            { PromptInputIds.Count: > 0, ChosenInputIds: null, RejectedInputIds: null } =>
                EncodeIds(row.PromptId, row.PromptInputIds, encoder.EncodeCompletionText(row.Chosen), encoder.EncodeCompletionText(row.Rejected)),
            _ => EncodeRendered(row.PromptId, row.Prompt, row.Chosen, row.Rejected),
        };
    }

    /// <summary>
    /// Encodes a pair given as the token ids generation used: completions are ended by exactly one end-of-turn id and cut
    /// to max_length; a prompt longer than max_prompt_length is refused rather than cut (it would no longer be the
    /// prompt the responses were generated from).
    /// </summary>
    public (EncodedPair? Pair, PairRejection? Rejection) EncodeIds(string key, IReadOnlyList<int> promptIds, IReadOnlyList<int> chosenIds, IReadOnlyList<int> rejectedIds)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(chosenIds);
        ArgumentNullException.ThrowIfNull(rejectedIds);
        if (chosenIds.Count == 0 || rejectedIds.Count == 0)
            return (null, new PairRejection(key, $"empty {(chosenIds.Count == 0 ? "chosen" : "rejected")} completion"));
        if (chosenIds.SequenceEqual(rejectedIds))
            return (null, new PairRejection(key, "chosen and rejected are identical"));
        if (promptIds.Count > maxPromptLength)
            return (null, new PairRejection(key, $"the prompt generation used has {promptIds.Count} tokens, more than max_prompt_length {maxPromptLength}; " +
                "training on a cut prompt would score a context the policy never generated from: raise max_prompt_length or lower ingest.max_prompt_tokens"));
        return Limit(key, new EncodedCompletion(promptIds, encoder.Terminate(chosenIds)), new EncodedCompletion(promptIds, encoder.Terminate(rejectedIds)));
    }

    private (EncodedPair? Pair, PairRejection? Rejection) Encode(string key, string chosen, string rejected, Func<string, EncodedCompletion> encode)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        if (string.IsNullOrWhiteSpace(chosen) || string.IsNullOrWhiteSpace(rejected))
            return (null, new PairRejection(key, $"empty {(string.IsNullOrWhiteSpace(chosen) ? "chosen" : "rejected")} completion"));
        if (string.Equals(chosen, rejected, StringComparison.Ordinal))
            return (null, new PairRejection(key, "chosen and rejected are identical"));

        EncodedCompletion c, r;
        try
        {
            c = encode(chosen);
            r = encode(rejected);
        }
        catch (InvalidDataException ex)
        {
            return (null, new PairRejection(key, ex.Message));
        }
        return Limit(key, c, r);
    }

    private (EncodedPair? Pair, PairRejection? Rejection) Limit(string key, EncodedCompletion c, EncodedCompletion r)
    {
        int[] promptIds = [.. c.PromptIds];
        if (promptIds.Length > maxPromptLength)
            promptIds = mode == TruncationMode.KeepEnd ? promptIds[^maxPromptLength..] : promptIds[..maxPromptLength];
        int room = maxLength - promptIds.Length;
        int[] chosenIds = [.. c.CompletionIds.Take(room)];
        int[] rejectedIds = [.. r.CompletionIds.Take(room)];
        if (chosenIds.AsSpan().SequenceEqual(rejectedIds))
            return (null, new PairRejection(key, $"chosen and rejected are identical after truncation to max_length {maxLength} (prompt {promptIds.Length} tokens)"));
        return (new EncodedPair(key, promptIds, chosenIds, rejectedIds), null);
    }
}
