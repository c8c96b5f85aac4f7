using Parquet.Serialization;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Inputs;

public sealed class PromptSourceTests
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets");
    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-prompts-").FullName);

    private static async Task<List<PromptInput>> ReadAll(IAsyncEnumerable<PromptInput> source)
    {
        var list = new List<PromptInput>();
        await foreach (var input in source) list.Add(input);
        return list;
    }

    private async Task<List<PromptInput>> ReadText(string name, string content)
    {
        string temp = Path.GetTempFileName();
        await File.WriteAllTextAsync(temp, content);
        await _store.CommitAsync(name, temp);
        return await ReadAll(PromptSource.ReadAsync(_store, name));
    }

    private async Task WriteParquet<T>(string name, IEnumerable<T> rows)
    {
        string temp = Path.GetTempFileName();
        await ParquetSerializer.SerializeAsync(rows, temp);
        await _store.CommitAsync(name, temp);
    }

    [Fact]
    public async Task ReadAsync_PromptsParquetWithTwoRowGroups_ReadsAllRowsInOrderWithExtraColumns()
    {
        var rows = await ReadAll(PromptSource.ReadAsync(Path.Combine(Fixtures, "prompts.parquet")));

        Assert.Equal(["Tell me a joke.", "Summarize: the cat sat on the mat.", "Translate 'bonjour' to English.", "List three primes."], rows.Select(r => r.Prompt));
        Assert.Equal([0L, 1, 2, 3], rows.Select(r => r.Row));
        Assert.Equal(["{\"source\":\"a\"}", "{\"source\":\"b\"}", "{\"source\":\"a\"}", "{\"source\":\"c\"}"], rows.Select(r => r.Extra));
        Assert.All(rows, r => Assert.False(r.IsRejected));
    }

    [Fact]
    public async Task ReadAsync_PromptsJsonl_ReadsEachLine()
    {
        var rows = await ReadAll(PromptSource.ReadAsync(Path.Combine(Fixtures, "prompts.jsonl")));

        Assert.Equal(["Tell me a joke.", "Summarize: the cat sat on the mat."], rows.Select(r => r.Prompt));
        Assert.All(rows, r => Assert.Equal("{}", r.Extra));
    }

    [Fact]
    public async Task ReadAsync_JsonlWithBadRows_RejectsEachWithItsLineAndReason()
    {
        string[] lines =
        [
            """{"id": 1, "prompt": "fine"}""",
            """{"id": 2, "prompt": ""}""",
            """{"id": 3, "prompt": null}""",
            """{"id": 4, "prompt": 42}""",
            """{"id": 5, "prompt": "broken""",
            """[1, 2]""",
            """{"id": 6, "text": "no prompt key"}""",
            """{"id": 1, "prompt": "same id again"}""",
            """{"id": 7, "messages": [{"role": "user", "content": "hi"}], "lang": "en"}""",
            """{"id": 8, "messages": [{"role": "wizard", "content": "hi"}]}""",
            "",
            """{"id": 9, "prompt": "last"}""",
        ];
        var rows = await ReadText("bad.jsonl", string.Join('\n', lines) + "\n");

        Assert.Equal(12, rows.Count);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (long)i), rows.Select(r => r.Row));
        Assert.Equal("fine", rows[0].Prompt);
        Assert.Contains("line 2: column 'prompt' is empty", rows[1].RejectReason, StringComparison.Ordinal);
        Assert.Contains("line 3: column 'prompt' is null", rows[2].RejectReason, StringComparison.Ordinal);
        Assert.Contains("line 4: column 'prompt' is a JSON number; expected a string", rows[3].RejectReason, StringComparison.Ordinal);
        Assert.Contains("line 5: invalid JSON", rows[4].RejectReason, StringComparison.Ordinal);
        Assert.Contains("line 6: a JSON array, expected an object", rows[5].RejectReason, StringComparison.Ordinal);
        Assert.Contains("line 7: no 'prompt' or 'messages' key", rows[6].RejectReason, StringComparison.Ordinal);
        Assert.Contains("duplicate id '1' (first at row 0)", rows[7].RejectReason, StringComparison.Ordinal);
        Assert.Equal([("user", "hi")], rows[8].Messages!.Select(m => (m.Role, m.Content)));
        Assert.Equal("{\"id\":7,\"lang\":\"en\"}", rows[8].Extra);
        Assert.Contains("turn 0 has role 'wizard'", rows[9].RejectReason, StringComparison.Ordinal);
        Assert.Contains("line 11: empty line", rows[10].RejectReason, StringComparison.Ordinal);
        Assert.Equal("last", rows[11].Prompt);
        // Accepted or rejected, every row keeps its line as it is in the file.
        Assert.Equal(lines, rows.Select(r => r.Raw));
        var reject = rows[1].ToRejectRow("ingest", "bad.jsonl");
        Assert.Equal(("ingest", "bad.jsonl", 1L, "2"), (reject.Stage, reject.Source, reject.Row, reject.Key));
    }

    private sealed class NoPrompt { public string? Text { get; set; } }

    private sealed class IntPrompt { [System.Text.Json.Serialization.JsonPropertyName("prompt")] public int Prompt { get; set; } }

    private sealed class NullablePrompt
    {
        [System.Text.Json.Serialization.JsonPropertyName("prompt_id")] public string? PromptId { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("prompt")] public string? Prompt { get; set; }
    }

    [Fact]
    public async Task ReadAsync_ParquetWithoutPromptColumn_ThrowsNamingFileAndColumns()
    {
        await WriteParquet("np.parquet", [new NoPrompt { Text = "x" }]);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => ReadAll(PromptSource.ReadAsync(_store, "np.parquet")));

        Assert.Contains("np.parquet", ex.Message, StringComparison.Ordinal);
        Assert.Contains("no 'prompt' or 'messages' column", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Columns: Text", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadAsync_ParquetWithIntPrompt_ThrowsNamingTheType()
    {
        await WriteParquet("int.parquet", [new IntPrompt { Prompt = 3 }]);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => ReadAll(PromptSource.ReadAsync(_store, "int.parquet")));

        Assert.Contains("column 'prompt' is int32 not null; expected string", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadAsync_ParquetWithNullsEmptiesAndDuplicates_RejectsThoseRows()
    {
        await WriteParquet("rows.parquet", new NullablePrompt[]
        {
            new() { PromptId = "a", Prompt = "one" }, new() { PromptId = "b", Prompt = null }, new() { PromptId = "c", Prompt = "  " },
            new() { PromptId = "a", Prompt = "dup" }, new() { PromptId = null, Prompt = "no id" }, new() { PromptId = "d", Prompt = "two" },
        });

        var rows = await ReadAll(PromptSource.ReadAsync(_store, "rows.parquet"));

        Assert.Equal(["one", null, null, null, null, "two"], rows.Select(r => r.Prompt));
        Assert.Contains("row 1: column 'prompt' is null", rows[1].RejectReason, StringComparison.Ordinal);
        Assert.Contains("row 2: column 'prompt' is empty", rows[2].RejectReason, StringComparison.Ordinal);
        Assert.Contains("duplicate id 'a' (first at row 0)", rows[3].RejectReason, StringComparison.Ordinal);
        Assert.Contains("row 4: column 'prompt_id' is null or empty", rows[4].RejectReason, StringComparison.Ordinal);
        Assert.Equal("{\"prompt_id\":\"b\",\"prompt\":null}", rows[1].Raw);
        Assert.Equal("{\"prompt_id\":\"a\",\"prompt\":\"dup\"}", rows[3].Raw);
        Assert.Equal("{\"prompt_id\":\"a\",\"prompt\":\"one\"}", rows[0].Raw);
    }

    [Theory]
    [InlineData("notparquet.parquet", "not a Parquet file")]
    [InlineData("corrupt.parquet", "corrupt Parquet file")]
    public async Task ReadAsync_NotOrCorruptParquet_ThrowsNamingTheFile(string name, string expected)
    {
        string temp = Path.GetTempFileName();
        if (name.StartsWith("corrupt", StringComparison.Ordinal))
        {
            // Real magic at both ends, garbage footer in between.
            byte[] bytes = [.. "PAR1"u8, .. Enumerable.Repeat((byte)0xAB, 64), .. BitConverter.GetBytes(40), .. "PAR1"u8];
            await File.WriteAllBytesAsync(temp, bytes);
        }
        else
        {
            await File.WriteAllTextAsync(temp, "prompt,chosen\nx,y\n");
        }
        await _store.CommitAsync(name, temp);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => ReadAll(PromptSource.ReadAsync(_store, name)));

        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3000)]
    public async Task ReadAsync_InvalidUtf8OnOneLine_ReportsThatLine(int badLine)
    {
        // The reader decodes ahead in blocks: the bad bytes must be reported at their own line, not where reading was.
        using var bytes = new MemoryStream();
        for (int line = 1; line <= 4000; line++)
        {
            byte[] text = System.Text.Encoding.UTF8.GetBytes($"{{\"prompt\": \"prompt number {line}\"}}");
            if (line == badLine) text[^3] = 0xFF; // not a UTF-8 byte anywhere
            bytes.Write(text);
            bytes.WriteByte((byte)'\n');
        }
        string temp = Path.GetTempFileName();
        await File.WriteAllBytesAsync(temp, bytes.ToArray());
        await _store.CommitAsync("bad-utf8.jsonl", temp);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => ReadAll(PromptSource.ReadAsync(_store, "bad-utf8.jsonl")));

        Assert.Contains($"bad-utf8.jsonl: line {badLine}: not valid UTF-8", ex.Message, StringComparison.Ordinal);
    }
}
