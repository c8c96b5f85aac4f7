using System.Collections;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Parquet.Schema;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Inputs;

/// <summary>
/// One input row: a prompt (text or conversation) ready to use, or a rejection with its reason. Every row of the input
/// comes out exactly once, in order, so rows in = accepted + rejected.
/// </summary>
public sealed record PromptInput
{
    /// <summary>0-based row in the input (Parquet: across row groups; JSONL: line number − 1).</summary>
    public long Row { get; init; }

    /// <summary>The prompt text (TRL standard), or null for conversations and rejections.</summary>
    public string? Prompt { get; init; }

    /// <summary>The conversation (TRL conversational), or null.</summary>
    public IReadOnlyList<ChatTurnRow>? Messages { get; init; }

    /// <summary>The row's id (from <see cref="PromptSourceOptions.IdColumns"/>), or null when the input has none.</summary>
    public string? Id { get; init; }

    /// <summary>The other columns as a JSON object (kept, not interpreted).</summary>
    public string Extra { get; init; } = "{}";

    /// <summary>Why the row cannot be used (names the column and what was expected), or null when accepted.</summary>
    public string? RejectReason { get; init; }

    /// <summary>
    /// The row as read, for provenance and the rejects artifact: a JSON line's text as it is in the file (also when it
    /// is not valid JSON), a Parquet row as a JSON object of all its columns.
    /// </summary>
    public string? Raw { get; init; }

    /// <summary>Whether the row was rejected.</summary>
    public bool IsRejected => RejectReason is not null;

    /// <summary>The rejection as a row of the rejects artifact.</summary>
    /// <exception cref="InvalidOperationException">The row was accepted.</exception>
    public RejectRow ToRejectRow(string stage, string source) => IsRejected
        ? new RejectRow { Stage = stage, Source = source, Row = Row, Key = Id, Reason = RejectReason!, Raw = Raw }
        : throw new InvalidOperationException($"row {Row} was accepted; only rejected rows become reject rows");
}

/// <summary>Which columns a prompt input uses.</summary>
public sealed class PromptSourceOptions
{
    /// <summary>Column with the prompt text. <value>Default "prompt".</value></summary>
    public string PromptColumn { get; set; } = "prompt";

    /// <summary>Column with the conversation (list of {role, content}). <value>Default "messages".</value></summary>
    public string MessagesColumn { get; set; } = "messages";

    /// <summary>Id columns, first present wins; ids must be unique. <value>Default "prompt_id", "id".</value></summary>
    public IReadOnlyList<string> IdColumns { get; set; } = ["prompt_id", "id"];
}

/// <summary>
/// Reads prompts from Parquet or JSON lines (local or blob), streaming. Policy for bad input:
/// <list type="bullet">
/// <item>Structural problems throw <see cref="InvalidDataException"/> naming the file and what was expected: not
/// Parquet/JSONL, a corrupt Parquet file, no prompt or messages column (Parquet), a column of the wrong type (Parquet).</item>
/// <item>Row problems reject that row with a reason naming the row and column (<see cref="PromptInput.RejectReason"/>):
/// null, empty or whitespace-only prompt; malformed messages (not a list of {role, content}, unknown role, empty
/// content); an invalid JSON line, a line that is not an object, or one without a prompt/messages key (JSONL); a value of
/// the wrong JSON type; a duplicate id (the first occurrence is kept). Callers write rejections to a rejects artifact.</item>
/// </list>
/// </summary>
public static class PromptSource
{
    private static readonly string[] Roles = ["system", "user", "assistant", "tool"];

    /// <summary>Reads prompts from a file location: a local path, <c>az://…/file.parquet</c> or a blob URL.</summary>
    public static IAsyncEnumerable<PromptInput> ReadAsync(string fileLocation, PromptSourceOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (store, path) = ArtifactStores.OpenFile(fileLocation);
        return ReadAsync(store, path, options, cancellationToken);
    }

    /// <summary>Reads prompts from <paramref name="path"/> in <paramref name="store"/>; the format follows the extension (.parquet, .jsonl/.json), else the content.</summary>
    /// <exception cref="InvalidDataException">A structural problem (see the class remarks), naming the file.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public static async IAsyncEnumerable<PromptInput> ReadAsync(IArtifactStore store, string path, PromptSourceOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        options ??= new PromptSourceOptions();
        string source = store.UriOf(path);
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        bool parquet = path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) ||
                       (!path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) && !path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && UntypedParquet.LooksLikeParquet(stream));
        var ids = new Dictionary<string, long>(StringComparer.Ordinal);
        var rows = parquet ? ParquetRowsAsync(stream, source, options, cancellationToken) : JsonLinesAsync(stream, source, options, cancellationToken);
        await foreach (var input in rows.ConfigureAwait(false))
        {
            if (!input.IsRejected && input.Id is { } id && !ids.TryAdd(id, input.Row))
                yield return input with { Prompt = null, Messages = null, RejectReason = $"row {input.Row}: duplicate id '{id}' (first at row {ids[id]}); ids must be unique" };
            else
                yield return input;
        }
    }

    private static async IAsyncEnumerable<PromptInput> ParquetRowsAsync(Stream stream, string source, PromptSourceOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var reader = await UntypedParquet.OpenAsync(stream, source, cancellationToken).ConfigureAwait(false);
        var fields = reader.Schema.Fields.ToDictionary(f => f.Name, StringComparer.Ordinal);
        fields.TryGetValue(options.PromptColumn, out var promptField);
        fields.TryGetValue(options.MessagesColumn, out var messagesField);
        if (promptField is null && messagesField is null)
            throw new InvalidDataException($"{source}: no '{options.PromptColumn}' or '{options.MessagesColumn}' column; expected a string column " +
                $"'{options.PromptColumn}' or a list<struct<role: string, content: string>> column '{options.MessagesColumn}'. Columns: {string.Join(", ", fields.Keys)}.");
        if (promptField is not null && !UntypedParquet.IsString(promptField))
            throw new InvalidDataException($"{source}: column '{options.PromptColumn}' is {UntypedParquet.TypeName(promptField)}; expected string.");
        if (messagesField is not null && !UntypedParquet.IsMessages(messagesField))
            throw new InvalidDataException($"{source}: column '{options.MessagesColumn}' is {UntypedParquet.TypeName(messagesField)}; expected list<struct<role: string, content: string>>.");
        string? idColumn = options.IdColumns.FirstOrDefault(fields.ContainsKey);

        long row = 0;
        await foreach (var values in UntypedParquet.ReadRowsAsync(stream, reader, source, cancellationToken).ConfigureAwait(false))
        {
            yield return Build(row++, values, UntypedParquet.ToJsonObject(values), promptField is not null, messagesField is not null, idColumn, options, fromJson: false);
        }
    }

    private static async IAsyncEnumerable<PromptInput> JsonLinesAsync(Stream stream, string source, PromptSourceOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: true, leaveOpen: true);
        long row = 0;
        while (true)
        {
            string? line;
            try
            {
                line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (DecoderFallbackException ex)
            {
                // The reader decodes ahead in blocks, so its position is not the bad line's: find that in the bytes.
                long badLine = await InvalidUtf8LineAsync(stream, cancellationToken).ConfigureAwait(false);
                throw new InvalidDataException($"{source}: line {badLine}: not valid UTF-8 text; expected JSON lines (UTF-8) or Parquet.", ex);
            }
            if (line is null) yield break;
            long current = row++;
            if (string.IsNullOrWhiteSpace(line))
            {
                yield return Reject(current, $"line {current + 1}: empty line; expected a JSON object", line);
                continue;
            }
            JsonDocument? document = null;
            string? parseError = null;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException ex)
            {
                parseError = ex.Message;
            }
            if (document is null)
            {
                yield return Reject(current, $"line {current + 1}: invalid JSON ({parseError}); expected one JSON object per line", line);
                continue;
            }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    yield return Reject(current, $"line {current + 1}: a JSON {document.RootElement.ValueKind.ToString().ToLowerInvariant()}, expected an object", line);
                    continue;
                }
                var values = new List<KeyValuePair<string, object?>>();
                foreach (var property in document.RootElement.EnumerateObject()) values.Add(new(property.Name, property.Value.Clone()));
                bool hasPrompt = values.Any(v => v.Key == options.PromptColumn), hasMessages = values.Any(v => v.Key == options.MessagesColumn);
                if (!hasPrompt && !hasMessages)
                {
                    yield return Reject(current, $"line {current + 1}: no '{options.PromptColumn}' or '{options.MessagesColumn}' key", line);
                    continue;
                }
                string? idColumn = options.IdColumns.FirstOrDefault(c => values.Any(v => v.Key == c));
                yield return Build(current, values, line, hasPrompt, hasMessages, idColumn, options, fromJson: true);
            }
        }
    }

    /// <summary>The 1-based number of the first line (split at '\n') whose bytes are not valid UTF-8, reading the stream from its start.</summary>
    private static async Task<long> InvalidUtf8LineAsync(Stream stream, CancellationToken cancellationToken)
    {
        stream.Position = 0;
        var buffer = new byte[1 << 16];
        var current = new List<byte>();
        long line = 1;
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            for (int i = 0; i < read; i++)
            {
                if (buffer[i] != (byte)'\n')
                {
                    current.Add(buffer[i]);
                    continue;
                }
                if (!System.Text.Unicode.Utf8.IsValid(CollectionsMarshal.AsSpan(current))) return line;
                current.Clear();
                line++;
            }
        }
        return line;
    }

    private static PromptInput Reject(long row, string reason, string? raw) => new() { Row = row, RejectReason = reason, Raw = raw };

    private static PromptInput Build(long row, IReadOnlyCollection<KeyValuePair<string, object?>> values, string raw, bool hasPrompt, bool hasMessages, string? idColumn,
        PromptSourceOptions options, bool fromJson)
    {
        object? Get(string key) => values.FirstOrDefault(v => v.Key == key).Value;
        string extra = UntypedParquet.ToJsonObject(values, options.PromptColumn, options.MessagesColumn);
        string where = fromJson ? $"line {row + 1}" : $"row {row}";
        string? id = idColumn is null ? null : Scalar(Get(idColumn));
        PromptInput Fail(string reason) => new() { Row = row, Id = id, Extra = extra, RejectReason = $"{where}: {reason}", Raw = raw };
        if (idColumn is not null && string.IsNullOrWhiteSpace(id))
            return Fail($"column '{idColumn}' is null or empty; expected a non-empty id");

        object? prompt = hasPrompt ? Get(options.PromptColumn) : null;
        object? messages = hasMessages ? Get(options.MessagesColumn) : null;
        if (IsNull(prompt) && IsNull(messages))
            return Fail(hasPrompt ? $"column '{options.PromptColumn}' is null; expected non-empty text" : $"column '{options.MessagesColumn}' is null; expected a list of {{role, content}}");
        if (!IsNull(prompt))
        {
            string? text = prompt is JsonElement { ValueKind: JsonValueKind.String } e ? e.GetString() : UntypedParquet.AsString(prompt);
            if (text is null) return Fail($"column '{options.PromptColumn}' is a {Kind(prompt)}; expected a string");
            if (string.IsNullOrWhiteSpace(text)) return Fail($"column '{options.PromptColumn}' is empty; expected non-empty text");
            return new PromptInput { Row = row, Prompt = text, Id = id, Extra = extra, Raw = raw };
        }
        var (turns, problem) = ParseMessages(messages);
        if (problem is not null) return Fail($"column '{options.MessagesColumn}': {problem}");
        return new PromptInput { Row = row, Messages = turns, Id = id, Extra = extra, Raw = raw };
    }

    /// <summary>Turns an untyped list of {role, content} (Parquet structs or JSON objects) into chat turns, or says what is wrong.</summary>
    internal static (List<ChatTurnRow>? Turns, string? Problem) ParseMessages(object? value)
    {
        var items = new List<(string? Role, string? Content, bool IsObject)>();
        switch (value)
        {
            case JsonElement { ValueKind: JsonValueKind.Array } array:
                foreach (var item in array.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.Object) { items.Add((null, null, false)); continue; }
                    string? role = item.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
                    string? content = item.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                    items.Add((role, content, true));
                }
                break;
            case JsonElement other:
                return (null, $"a JSON {other.ValueKind.ToString().ToLowerInvariant()}; expected a list of {{role, content}}");
            case IEnumerable list when value is not string:
                foreach (object? item in list)
                {
                    if (item is not IDictionary dict) { items.Add((null, null, false)); continue; }
                    items.Add((UntypedParquet.AsString(dict.Contains("role") ? dict["role"] : null), UntypedParquet.AsString(dict.Contains("content") ? dict["content"] : null), true));
                }
                break;
            default:
                return (null, $"a {Kind(value)}; expected a list of {{role, content}}");
        }
        if (items.Count == 0) return (null, "empty list; expected at least one {role, content} turn");
        var turns = new List<ChatTurnRow>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var (role, content, isObject) = items[i];
            if (!isObject) return (null, $"turn {i} is not an object; expected {{role, content}}");
            if (role is null || !Roles.Contains(role, StringComparer.Ordinal)) return (null, $"turn {i} has role '{role ?? "null"}'; expected one of {string.Join(", ", Roles)}");
            if (string.IsNullOrWhiteSpace(content)) return (null, $"turn {i} ({role}) has null or empty content; expected text");
            turns.Add(new ChatTurnRow { Role = role, Content = content });
        }
        return (turns, null);
    }

    private static bool IsNull(object? value) => value is null || value is JsonElement { ValueKind: JsonValueKind.Null };

    private static string? Scalar(object? value) => value switch
    {
        null => null,
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString(),
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetRawText(),
        JsonElement { ValueKind: JsonValueKind.Null } => null,
        JsonElement e => e.GetRawText(),
        _ => UntypedParquet.AsString(value) ?? Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string Kind(object? value) => value switch
    {
        JsonElement e => $"JSON {e.ValueKind.ToString().ToLowerInvariant()}",
        null => "null",
        _ => value.GetType().Name,
    };
}
