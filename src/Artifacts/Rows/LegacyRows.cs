using System.Text.Json.Serialization;
using Parquet.Schema;
using Parquet.Serialization;

namespace PrefPipe.Artifacts.Rows;

/// <summary>
/// Files written with an older schema version of a row type, read into the current type. Parquet.Net reads a column only
/// into a property of the same nullability (a required column into a nullable property fails, and the reverse), so a
/// version that changed a column's nullability keeps its old shape here, recognised by the file's schema, and each row
/// is upgraded as it is read.
/// </summary>
internal static class LegacyRows
{
    /// <summary>Reads one row group of an older-version file as <typeparamref name="T"/>.</summary>
    public delegate Task<IList<T>> RowGroupReader<T>(Stream stream, int rowGroup, CancellationToken cancellationToken);

    /// <summary>A reader for <paramref name="schema"/> when it is an older version of <typeparamref name="T"/>; null when it is the current one (or not one we know).</summary>
    public static RowGroupReader<T>? ReaderFor<T>(ParquetSchema schema)
    {
        if (typeof(T) == typeof(CandidateRow) && CandidateRowV2.Matches(schema))
            return (RowGroupReader<T>)(object)new RowGroupReader<CandidateRow>(CandidateRowV2.ReadAsync);
        return null;
    }
}

/// <summary>
/// <see cref="CandidateRow"/> as schema versions 1 and 2 wrote it: <c>logprob_sum</c> a required double, NaN where an
/// external generator returned no log-probs. Read as version 3 with NaN as null.
/// </summary>
internal sealed record CandidateRowV2
{
    [JsonPropertyName("prompt_id")] public string PromptId { get; init; } = "";

    [JsonPropertyName("prompt")] public string Prompt { get; init; } = "";

    [JsonPropertyName("candidate_index")] public int CandidateIndex { get; init; }

    [JsonPropertyName("response")] public string Response { get; init; } = "";

    [JsonPropertyName("token_count")] public int TokenCount { get; init; }

    [JsonPropertyName("finish_reason")] public string FinishReason { get; init; } = "";

    [JsonPropertyName("seed")] public long Seed { get; init; }

    [JsonPropertyName("logprob_sum")] public double LogprobSum { get; init; }

    [JsonPropertyName("prompt_input_ids")] public List<int>? PromptInputIds { get; init; }

    [JsonPropertyName("response_input_ids")] public List<int>? ResponseInputIds { get; init; }

    /// <summary>Whether <paramref name="schema"/> is this shape: a candidates file whose <c>logprob_sum</c> cannot be null.</summary>
    public static bool Matches(ParquetSchema schema) =>
        schema.Fields.Any(f => f.Name == "candidate_index") && schema.Fields.Any(f => f is DataField { Name: "logprob_sum", IsNullable: false });

    public static async Task<IList<CandidateRow>> ReadAsync(Stream stream, int rowGroup, CancellationToken cancellationToken)
    {
        var rows = (await ParquetSerializer.DeserializeAsync<CandidateRowV2>(stream, null, rowGroup, cancellationToken).ConfigureAwait(false)).Data;
        return [.. rows.Select(r => r.ToCurrent())];
    }

    public CandidateRow ToCurrent() => new()
    {
        PromptId = PromptId,
        Prompt = Prompt,
        CandidateIndex = CandidateIndex,
        Response = Response,
        TokenCount = TokenCount,
        FinishReason = FinishReason,
        Seed = Seed,
        LogprobSum = double.IsNaN(LogprobSum) ? null : LogprobSum,
        PromptInputIds = PromptInputIds,
        ResponseInputIds = ResponseInputIds,
    };
}
