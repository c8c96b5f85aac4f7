using System.Runtime.CompilerServices;
using Parquet.Schema;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Inputs;

/// <summary>The TRL preference format of a file.</summary>
public enum PreferenceFormat
{
    /// <summary>prompt, chosen, rejected as strings.</summary>
    Standard,

    /// <summary>chosen and rejected (and optionally prompt) as list&lt;struct&lt;role, content&gt;&gt;.</summary>
    Conversational,
}

/// <summary>One row of a preference file: a pair, or a rejection with its reason.</summary>
/// <param name="Row">0-based row across row groups.</param>
/// <param name="Pair">The pair, or null when rejected.</param>
/// <param name="RejectReason">Why the row cannot be used, naming the row and column; null when accepted.</param>
/// <param name="Raw">The raw row as JSON, for rejections.</param>
public sealed record PreferenceInput(long Row, PreferenceRow? Pair, string? RejectReason, string? Raw);

/// <summary>
/// Reads TRL preference files (Parquet), standard or conversational (explicit prompt messages, or implicit: the shared
/// leading turns of chosen and rejected are the prompt). Same bad-input policy as <see cref="PromptSource"/>: missing
/// <c>chosen</c>/<c>rejected</c>/<c>prompt</c> columns or wrong column types throw <see cref="InvalidDataException"/>;
/// nulls, empty texts, malformed turns, a completion of more than one turn, and duplicate <c>prompt_id</c>s reject the row.
/// </summary>
public static class PreferenceSource
{
    /// <summary>Detects the format from the schema.</summary>
    /// <exception cref="InvalidDataException">Not a preference file (names the columns and what was expected).</exception>
    public static async Task<PreferenceFormat> DetectFormatAsync(IArtifactStore store, string path, CancellationToken cancellationToken = default)
    {
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        await using var reader = await UntypedParquet.OpenAsync(stream, store.UriOf(path), cancellationToken).ConfigureAwait(false);
        return Detect(reader.Schema, store.UriOf(path));
    }

    /// <summary>Reads pairs from a TRL preference Parquet file, a row group at a time.</summary>
    /// <exception cref="InvalidDataException">Not Parquet, corrupt, or without the expected columns.</exception>
    public static async IAsyncEnumerable<PreferenceInput> ReadAsync(IArtifactStore store, string path, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        string source = store.UriOf(path);
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        await using var reader = await UntypedParquet.OpenAsync(stream, source, cancellationToken).ConfigureAwait(false);
        var format = Detect(reader.Schema, source);
        var ids = new Dictionary<string, long>(StringComparer.Ordinal);
        long row = 0;
        await foreach (var values in UntypedParquet.ReadRowsAsync(stream, reader, source, cancellationToken).ConfigureAwait(false))
        {
            long current = row++;
            var input = Build(current, values, format);
            if (input.Pair is { PromptId.Length: > 0 } pair && !ids.TryAdd(pair.PromptId, current))
                input = new PreferenceInput(current, null, $"row {current}: duplicate prompt_id '{pair.PromptId}' (first at row {ids[pair.PromptId]})", UntypedParquet.ToJsonObject(values));
            yield return input;
        }
    }

    private static PreferenceFormat Detect(ParquetSchema schema, string source)
    {
        var fields = schema.Fields.ToDictionary(f => f.Name, StringComparer.Ordinal);
        string columns = string.Join(", ", fields.Keys);
        foreach (string required in new[] { "chosen", "rejected" })
            if (!fields.ContainsKey(required))
                throw new InvalidDataException($"{source}: no '{required}' column; expected TRL preference columns prompt, chosen, rejected. Columns: {columns}.");
        var chosen = fields["chosen"];
        var rejected = fields["rejected"];
        PreferenceFormat format;
        if (UntypedParquet.IsString(chosen) && UntypedParquet.IsString(rejected)) format = PreferenceFormat.Standard;
        else if (UntypedParquet.IsMessages(chosen) && UntypedParquet.IsMessages(rejected)) format = PreferenceFormat.Conversational;
        else
            throw new InvalidDataException($"{source}: 'chosen' is {UntypedParquet.TypeName(chosen)} and 'rejected' is {UntypedParquet.TypeName(rejected)}; " +
                "expected both string (standard) or both list<struct<role: string, content: string>> (conversational).");
        if (fields.TryGetValue("prompt", out var prompt))
        {
            if (!UntypedParquet.IsString(prompt) && !(format == PreferenceFormat.Conversational && UntypedParquet.IsMessages(prompt)))
                throw new InvalidDataException($"{source}: 'prompt' is {UntypedParquet.TypeName(prompt)}; expected {(format == PreferenceFormat.Standard ? "string" : "string or list<struct<role: string, content: string>>")}.");
        }
        else if (format == PreferenceFormat.Standard)
        {
            throw new InvalidDataException($"{source}: no 'prompt' column; the standard format needs prompt, chosen, rejected strings. Columns: {columns}.");
        }
        foreach (string score in new[] { "score_chosen", "score_rejected" })
            if (fields.TryGetValue(score, out var f) && (f is not DataField d || !(d.ClrType == typeof(double) || d.ClrType == typeof(float) || d.ClrType == typeof(long) || d.ClrType == typeof(int))))
                throw new InvalidDataException($"{source}: '{score}' is {UntypedParquet.TypeName(f)}; expected a number.");
        return format;
    }

    private static PreferenceInput Build(long row, Dictionary<string, object?> values, PreferenceFormat format)
    {
        PreferenceInput Fail(string reason) => new(row, null, $"row {row}: {reason}", UntypedParquet.ToJsonObject(values));
        values.TryGetValue("prompt", out object? promptValue);
        string? promptId = values.TryGetValue("prompt_id", out object? idValue) ? UntypedParquet.AsString(idValue) : null;
        double? scoreChosen = values.TryGetValue("score_chosen", out object? sc) && sc is not null ? Convert.ToDouble(sc, System.Globalization.CultureInfo.InvariantCulture) : null;
        double? scoreRejected = values.TryGetValue("score_rejected", out object? sr) && sr is not null ? Convert.ToDouble(sr, System.Globalization.CultureInfo.InvariantCulture) : null;

        if (format == PreferenceFormat.Standard)
        {
            string? prompt = UntypedParquet.AsString(promptValue), chosen = UntypedParquet.AsString(values["chosen"]), rejected = UntypedParquet.AsString(values["rejected"]);
            if (string.IsNullOrWhiteSpace(prompt)) return Fail("column 'prompt' is null or empty; expected text");
            if (string.IsNullOrWhiteSpace(chosen)) return Fail("column 'chosen' is null or empty; expected text");
            if (string.IsNullOrWhiteSpace(rejected)) return Fail("column 'rejected' is null or empty; expected text");
            return new(row, WithIds(Pair(promptId, prompt, null, chosen, rejected, scoreChosen, scoreRejected), values), null, null);
        }

        var (chosenTurns, chosenProblem) = PromptSource.ParseMessages(values["chosen"]);
        if (chosenProblem is not null) return Fail($"column 'chosen': {chosenProblem}");
        var (rejectedTurns, rejectedProblem) = PromptSource.ParseMessages(values["rejected"]);
        if (rejectedProblem is not null) return Fail($"column 'rejected': {rejectedProblem}");
        // Each side ends with its completion: one missing is the problem to name, not that the sides share no prompt turns.
        foreach (var (column, turns) in new[] { ("chosen", chosenTurns!), ("rejected", rejectedTurns!) })
            if (turns[^1].Role != "assistant")
                return Fail($"'{column}' has no assistant turn after the prompt (its last turn is {turns[^1].Role}); expected the prompt turns, then the assistant's completion");

        List<ChatTurnRow> promptTurns;
        List<ChatTurnRow> chosenRest, rejectedRest;
        if (promptValue is not null && UntypedParquet.AsString(promptValue) is null)
        {
            // Explicit prompt: a conversation; chosen and rejected are the completions.
            var (turns, problem) = PromptSource.ParseMessages(promptValue);
            if (problem is not null) return Fail($"column 'prompt': {problem}");
            promptTurns = turns!;
            chosenRest = chosenTurns!;
            rejectedRest = rejectedTurns!;
        }
        else
        {
            // Implicit prompt: the turns chosen and rejected share.
            int shared = 0;
            while (shared < chosenTurns!.Count - 1 && shared < rejectedTurns!.Count - 1 && chosenTurns[shared] == rejectedTurns[shared]) shared++;
            promptTurns = chosenTurns.Take(shared).ToList();
            chosenRest = chosenTurns.Skip(shared).ToList();
            rejectedRest = rejectedTurns!.Skip(shared).ToList();
            if (promptTurns.Count == 0) return Fail("'chosen' and 'rejected' share no leading turns and there is no prompt conversation; expected the prompt turns first");
        }
        if (chosenRest.Count != 1 || chosenRest[0].Role != "assistant")
            return Fail($"column 'chosen': the completion has {chosenRest.Count} turn(s); expected exactly one assistant turn after the prompt");
        if (rejectedRest.Count != 1 || rejectedRest[0].Role != "assistant")
            return Fail($"column 'rejected': the completion has {rejectedRest.Count} turn(s); expected exactly one assistant turn after the prompt");
        string promptText = UntypedParquet.AsString(promptValue) is { Length: > 0 } p && !string.IsNullOrWhiteSpace(p)
            ? p
            : promptTurns.LastOrDefault(t => t.Role == "user")?.Content ?? promptTurns[^1].Content;
        return new(row, WithIds(Pair(promptId, promptText, promptTurns, chosenRest[0].Content, rejectedRest[0].Content, scoreChosen, scoreRejected), values), null, null);
    }

    /// <summary>
    /// Token ids as generation made them (our pairs; TRL's tokenized columns): kept when all three are there; the prompt's
    /// alone when neither completion has ids (candidates from an external server: text only, the prompt's ids known).
    /// </summary>
    private static PreferenceRow WithIds(PreferenceRow pair, Dictionary<string, object?> values)
    {
        var (promptIds, chosenIds, rejectedIds) = (Ids(values, "prompt_input_ids"), Ids(values, "chosen_input_ids"), Ids(values, "rejected_input_ids"));
        return (promptIds, chosenIds, rejectedIds) switch
        {
            ({ Count: > 0 }, not null, not null) => pair with { PromptInputIds = promptIds, ChosenInputIds = chosenIds, RejectedInputIds = rejectedIds },
            ({ Count: > 0 }, null, null) => pair with { PromptInputIds = promptIds },
            _ => pair,
        };
    }

    /// <summary>A list&lt;int&gt; column's value, or null when the column is absent, null or not a list of integers.</summary>
    private static List<int>? Ids(Dictionary<string, object?> values, string column)
    {
        if (!values.TryGetValue(column, out object? value) || value is not System.Collections.IEnumerable items || value is string) return null;
        var ids = new List<int>();
        foreach (object? item in items)
        {
            if (item is int i) ids.Add(i);
            else if (item is long l && l is >= int.MinValue and <= int.MaxValue) ids.Add((int)l);
            else return null;
        }
        return ids;
    }

    private static PreferenceRow Pair(string? id, string prompt, List<ChatTurnRow>? messages, string chosen, string rejected, double? scoreChosen, double? scoreRejected) => new()
    {
        PromptId = id ?? "",
        Prompt = prompt,
        PromptMessages = messages,
        Chosen = chosen,
        Rejected = rejected,
        ScoreChosen = scoreChosen ?? double.NaN,
        ScoreRejected = scoreRejected ?? double.NaN,
        RewardGap = (scoreChosen ?? double.NaN) - (scoreRejected ?? double.NaN),
        Method = "input",
    };
}
