using System.Text.Json;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts;

/// <summary>A column of an inspected artifact.</summary>
/// <param name="Name">Column name.</param>
/// <param name="Type">Type in Arrow-like words (string, double, list&lt;struct&lt;role: string, content: string&gt;&gt;).</param>
public sealed record ColumnSummary(string Name, string Type);

/// <summary>What <c>prefpipe inspect</c> shows about an artifact.</summary>
/// <param name="Uri">Where it is (never with a SAS).</param>
/// <param name="Format">parquet or jsonl.</param>
/// <param name="Columns">Schema (JSONL: the keys of the first object, typed "json").</param>
/// <param name="Rows">Row count.</param>
/// <param name="RowGroups">Rows per row group (Parquet; empty for JSONL).</param>
/// <param name="Metadata">Key-value metadata of the file (Parquet).</param>
/// <param name="FirstRows">The first rows, each as a JSON object.</param>
public sealed record ArtifactSummary(string Uri, string Format, IReadOnlyList<ColumnSummary> Columns, long Rows, IReadOnlyList<long> RowGroups,
    IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<string> FirstRows);

/// <summary>Schema, counts and the first rows of a Parquet or JSONL artifact, read without knowing its row type.</summary>
public static class ArtifactInspector
{
    /// <summary>Inspects <paramref name="path"/> in <paramref name="store"/>, reading only as many row groups as the first <paramref name="rows"/> rows need.</summary>
    /// <exception cref="InvalidDataException">Not Parquet or JSON lines, or corrupt (names the file).</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public static async Task<ArtifactSummary> InspectAsync(IArtifactStore store, string path, int rows = 10, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        string uri = store.UriOf(path);
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        if (!UntypedParquet.LooksLikeParquet(stream) && !path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase))
            return await InspectJsonLinesAsync(stream, uri, rows, cancellationToken).ConfigureAwait(false);
        await using var reader = await UntypedParquet.OpenAsync(stream, uri, cancellationToken).ConfigureAwait(false);
        var columns = reader.Schema.Fields.Select(f => new ColumnSummary(f.Name, UntypedParquet.TypeName(f))).ToList();
        var groups = reader.RowGroups.Select(g => g.RowCount).ToList();
        var first = new List<string>();
        for (int g = 0; g < reader.RowGroupCount && first.Count < rows; g++)
            foreach (var row in await UntypedParquet.ReadRowGroupAsync(stream, g, uri, cancellationToken).ConfigureAwait(false))
            {
                if (first.Count == rows) break;
                first.Add(UntypedParquet.ToJsonObject(row));
            }
        var metadata = reader.CustomMetadata.Where(kv => kv.Key != "ARROW:schema").ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return new ArtifactSummary(uri, "parquet", columns, groups.Sum(), groups, metadata, first);
    }

    private static async Task<ArtifactSummary> InspectJsonLinesAsync(Stream stream, string uri, int rows, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream);
        var columns = new List<ColumnSummary>();
        var first = new List<string>();
        long count = 0;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (count == 0)
            {
                try
                {
                    using var document = JsonDocument.Parse(line);
                    if (document.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException("the first line is not a JSON object");
                    columns.AddRange(document.RootElement.EnumerateObject().Select(p => new ColumnSummary(p.Name, p.Value.ValueKind.ToString().ToLowerInvariant())));
                }
                catch (JsonException ex)
                {
                    throw new InvalidDataException($"{uri} is neither Parquet nor JSON lines: line 1 is not a JSON object ({ex.Message})", ex);
                }
            }
            if (first.Count < rows) first.Add(line.Trim());
            count++;
        }
        return new ArtifactSummary(uri, "jsonl", columns, count, [], new Dictionary<string, string>(), first);
    }
}
