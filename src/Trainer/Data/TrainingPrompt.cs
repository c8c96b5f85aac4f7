using PrefPipe.Artifacts.Rows;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Trainer.Data;

/// <summary>A prompt for rollouts and evaluation, as the policy sees it.</summary>
/// <param name="PromptId">The prompt's id.</param>
/// <param name="Text">The rendered prompt (what the reward model reads before the response).</param>
/// <param name="Ids">The ids generation is fed: the ids ingest generated from when the prompt came through ingest.</param>
public sealed record TrainingPrompt(string PromptId, string Text, IReadOnlyList<int> Ids)
{
    /// <summary>The prompt of a pair: its stored prompt ids, else its rendered prompt encoded.</summary>
    public static TrainingPrompt From(PreferenceRow row, PromptEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(encoder);
        return new(row.PromptId, row.Prompt, row.PromptInputIds is { Count: > 0 } ids ? ids : encoder.EncodeRendered(row.Prompt));
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
