using PrefPipe.Artifacts.Rows;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Trainer.Data;

/// <summary>A prompt for rollouts and evaluation, as the policy sees it.</summary>
/// <param name="PromptId">The prompt's id.</param>
/// <param name="Text">The rendered prompt (what the reward model reads before the response).</param>
/// <param name="Ids">The ids generation is fed: the ids ingest generated from when the prompt came through ingest.</param>
public sealed record TrainingPrompt(string PromptId, string Text, IReadOnlyList<int> Ids)
{
    /// <summary>
    /// The prompt of a pair. A conversation is rendered with the template; a pair with stored prompt ids (ours: its prompt
    /// is the input's text, the ids what the policy saw) is fed those ids, its text templated as ingest templates it; a
    /// standard pair from elsewhere has its prompt taken as the text the model is given (TRL's meaning).
    /// </summary>
    /// <exception cref="InvalidDataException">A conversation the policy cannot render (no chat template, a template error).</exception>
    public static TrainingPrompt From(PreferenceRow row, PromptEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(encoder);
        if (row.PromptMessages is { Count: > 0 } messages)
        {
            var encoded = encoder.Encode([.. messages.Select(m => new Turn(m.Role, m.Content))]);
            return new(row.PromptId, encoded.Rendered, row.PromptInputIds is { Count: > 0 } stored ? stored : encoded.Ids);
        }
        return row.PromptInputIds is { Count: > 0 } ids
            ? new(row.PromptId, encoder.EncodeText(row.Prompt).Rendered, ids)
            : new(row.PromptId, row.Prompt, encoder.EncodeRendered(row.Prompt));
    }

    /// <summary>A validated prompt from ingest: its stored ids, else its text or conversation encoded as ingest does.</summary>
    public static TrainingPrompt From(PromptRow row, PromptEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(encoder);
        var encoded = row.Messages is { Count: > 0 } messages
            ? encoder.Encode([.. messages.Select(m => new Turn(m.Role, m.Content))])
            : encoder.EncodeText(row.Prompt ?? "");
        return new(row.PromptId, encoded.Rendered, row.PromptInputIds is { Count: > 0 } ids ? ids : encoded.Ids);
    }

    /// <summary>A prompt given as text or a conversation, encoded as ingest encodes it.</summary>
    public static TrainingPrompt Encode(string promptId, string? text, IReadOnlyList<Turn>? messages, PromptEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        var encoded = messages is { Count: > 0 } ? encoder.Encode(messages) : encoder.EncodeText(text ?? "");
        return new(promptId, encoded.Rendered, encoded.Ids);
    }
}
