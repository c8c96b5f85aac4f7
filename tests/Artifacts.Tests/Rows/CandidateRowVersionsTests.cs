using Parquet;
using Parquet.Meta;
using Parquet.Schema;
using Parquet.Serialization;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Rows;

/// <summary>
/// <c>logprob_sum</c> is nullable from <see cref="CandidateRow"/> version 3: null is written as a Parquet null (what pyarrow,
/// DuckDB and pandas read as null), and version 2 files, where it was a required double and NaN meant "not returned",
/// still read.
/// </summary>
public sealed class CandidateRowVersionsTests
{
    // Written by ParquetArtifacts.WriteAsync<CandidateRow> at schema version 2 (before logprob_sum became nullable): the
    // first 8 rows of the demo's first ingest batch (local engine), then two rows shaped as the external generator wrote
    // them (response_input_ids null; the second without log-probs, NaN).
    private static readonly string Version2File = Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", "candidates_v2.parquet");

    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-candidate-versions-").FullName);

    [Fact]
    public async Task WriteAsync_NullLogprobSum_IsAParquetNullByTheDefinitionLevels()
    {
        CandidateRow[] rows =
        [
            new() { PromptId = "p", CandidateIndex = 0, LogprobSum = -1.5 },
            new() { PromptId = "p", CandidateIndex = 1, LogprobSum = null },
            new() { PromptId = "p", CandidateIndex = 2, LogprobSum = -2.25 },
        ];
        var info = await ParquetArtifacts.WriteAsync(_store, "c/candidates.parquet", rows);

        await using var stream = await _store.OpenReadAsync(info.Path);
        await using var reader = await ParquetReader.CreateAsync(stream);
        // The footer's schema element, which other readers go by: an OPTIONAL double.
        var element = reader.Metadata!.Schema.Single(e => e.Name == "logprob_sum");
        Assert.Equal(FieldRepetitionType.OPTIONAL, element.RepetitionType);
        Assert.Equal(Parquet.Meta.Type.DOUBLE, element.Type);
        var field = reader.Schema.DataFields.Single(f => f.Name == "logprob_sum");
        Assert.Equal(1, field.MaxDefinitionLevel);
        using var group = reader.OpenRowGroupReader(0);
        var values = new double[3];
        var levels = new int[3];
        await group.ReadRawAsync<double>(field, values, levels, null);
        // Definition level 0 below the maximum (1): the value is null; only the two present values are stored.
        Assert.Equal([1, 0, 1], levels);
        Assert.Equal([-1.5, -2.25], values.Take(2));
        Assert.Equal(1, group.RowGroup.Columns.Single(c => c.MetaData!.PathInSchema.SequenceEqual(["logprob_sum"])).MetaData!.Statistics!.NullCount);

        var back = await ParquetArtifacts.ReadAllAsync<CandidateRow>(_store, info.Path);
        Assert.Equal([-1.5, null, -2.25], back.Select(r => r.LogprobSum));
    }

    [Fact]
    public async Task ReadAsync_Version2File_ReadsEveryRowWithNaNAsNull()
    {
        var store = new LocalArtifactStore(Path.GetDirectoryName(Version2File)!);
        double[] stored;
        await using (var stream = File.OpenRead(Version2File))
        await using (var reader = await ParquetReader.CreateAsync(stream))
        {
            // The file really is version 2: a required logprob_sum, which Parquet.Net cannot read into double?.
            var field = reader.Schema.DataFields.Single(f => f.Name == "logprob_sum");
            Assert.False(field.IsNullable);
            stored = new double[10];
            using (var group = reader.OpenRowGroupReader(0))
                await group.ReadRawAsync<double>(field, stored, null, null);
            stream.Position = 0;
            await Assert.ThrowsAsync<InvalidDataException>(() => ParquetSerializer.DeserializeAsync<CandidateRow>(stream));
        }

        var rows = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "candidates_v2.parquet");

        Assert.Equal(10, rows.Count);
        Assert.True(stored.Take(9).All(double.IsFinite) && double.IsNaN(stored[9]));
        Assert.Equal(stored.Take(9).Select(v => (double?)v).Append(null), rows.Select(r => r.LogprobSum));
        Assert.Equal(-5.5, rows[8].LogprobSum);
        // The other columns come through as written: the local rows with both id lists, the external ones without response ids.
        Assert.All(rows.Take(8), r => Assert.True(r.PromptInputIds is { Count: > 0 } && r.ResponseInputIds is { Count: > 0 } && r.TokenCount == r.ResponseInputIds.Count));
        Assert.Equal([0, 1, 2, 3, 0, 1, 2, 3, 0, 1], rows.Select(r => r.CandidateIndex));
        Assert.Equivalent(new CandidateRow
        {
            PromptId = "ext-1", Prompt = "Review of Alien:", CandidateIndex = 1, Response = " boring and dull.", TokenCount = 4, FinishReason = "length",
            Seed = 1_234_567, LogprobSum = null, PromptInputIds = [12, 40, 7], ResponseInputIds = null,
        }, rows[9], strict: true);
    }
}
