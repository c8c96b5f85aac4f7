using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts;

/// <summary>
/// Preference artifacts (rank's preferences, the splitter's easy and difficult sets) in the TRL shape their prompts call
/// for: pairs of plain prompts as TRL standard rows (<see cref="PreferenceRow"/>: prompt, chosen, rejected strings), pairs
/// of conversations as TRL conversational rows (<see cref="ConversationalPreferenceRow"/>: prompt a list of turns,
/// chosen and rejected the assistant turn). Both keep our columns (prompt_id, scores, indices, the token ids), and both
/// read back as <see cref="PreferenceRow"/>, a conversation in <see cref="PreferenceRow.PromptMessages"/>.
/// </summary>
/// <remarks>A Parquet column has one type per file, so one file holds one shape: when any pair has a conversation, every
/// pair is written conversational (a plain prompt as one user turn, as the policy's template sees it).</remarks>
public static class PreferenceArtifacts
{
    /// <summary>Writes <paramref name="pairs"/> in the shape their prompts call for (see the type's remarks).</summary>
    public static Task<ArtifactInfo> WriteAsync(IArtifactStore store, string path, IReadOnlyList<PreferenceRow> pairs,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        return pairs.Any(p => p.PromptMessages is { Count: > 0 })
            ? ParquetArtifacts.WriteAsync(store, path, pairs.Select(ToConversational), metadata, cancellationToken)
            : ParquetArtifacts.WriteAsync(store, path, pairs, metadata, cancellationToken);
    }

    /// <summary>Reads a preference artifact of either shape.</summary>
    /// <exception cref="InvalidDataException">Not a preference file, or a conversational completion that is not one assistant turn (row named).</exception>
    public static async Task<List<PreferenceRow>> ReadAllAsync(IArtifactStore store, string path, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (await PreferenceSource.DetectFormatAsync(store, path, cancellationToken).ConfigureAwait(false) == PreferenceFormat.Standard)
            return await ParquetArtifacts.ReadAllAsync<PreferenceRow>(store, path, cancellationToken).ConfigureAwait(false);
        var rows = await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(store, path, cancellationToken).ConfigureAwait(false);
        return [.. rows.Select((r, i) => FromConversational(r, $"{store.UriOf(path)}: row {i}"))];
    }

    /// <summary>A pair as a TRL conversational row (a plain prompt becomes one user turn).</summary>
    public static ConversationalPreferenceRow ToConversational(PreferenceRow pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        return new()
        {
            PromptId = pair.PromptId,
            Prompt = pair.PromptMessages is { Count: > 0 } turns ? [.. turns] : [new() { Role = "user", Content = pair.Prompt }],
            Chosen = [new() { Role = "assistant", Content = pair.Chosen }],
            Rejected = [new() { Role = "assistant", Content = pair.Rejected }],
            ScoreChosen = pair.ScoreChosen, ScoreRejected = pair.ScoreRejected, RewardGap = pair.RewardGap, JudgeAgrees = pair.JudgeAgrees,
            Method = pair.Method, ChosenIndex = pair.ChosenIndex, RejectedIndex = pair.RejectedIndex,
            PromptInputIds = pair.PromptInputIds, ChosenInputIds = pair.ChosenInputIds, RejectedInputIds = pair.RejectedInputIds,
        };
    }

    /// <summary>A TRL conversational row as a pair: its conversation in <see cref="PreferenceRow.PromptMessages"/>, its last user turn as the prompt text.</summary>
    /// <exception cref="InvalidDataException">No prompt turns, or a completion that is not exactly one assistant turn.</exception>
    public static PreferenceRow FromConversational(ConversationalPreferenceRow row, string where)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Prompt is not { Count: > 0 } prompt)
            throw new InvalidDataException($"{where}: 'prompt' has no turns; expected the prompt conversation");
        string Completion(List<ChatTurnRow>? turns, string column) => turns is [{ Role: "assistant" } turn]
            ? turn.Content
            : throw new InvalidDataException($"{where}: '{column}' has {turns?.Count ?? 0} turn(s); expected exactly one assistant turn");
        return new()
        {
            PromptId = row.PromptId,
            Prompt = prompt.LastOrDefault(t => t.Role == "user")?.Content ?? prompt[^1].Content,
            PromptMessages = prompt,
            Chosen = Completion(row.Chosen, "chosen"),
            Rejected = Completion(row.Rejected, "rejected"),
            ScoreChosen = row.ScoreChosen, ScoreRejected = row.ScoreRejected, RewardGap = row.RewardGap, JudgeAgrees = row.JudgeAgrees,
            Method = row.Method, ChosenIndex = row.ChosenIndex, RejectedIndex = row.RejectedIndex,
            PromptInputIds = row.PromptInputIds, ChosenInputIds = row.ChosenInputIds, RejectedInputIds = row.RejectedInputIds,
        };
    }
}
