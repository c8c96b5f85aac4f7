using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Storage;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe inspect</c>: schema, row count, row groups and the first rows of a Parquet or JSONL artifact (local or blob).</summary>
internal static class InspectCommand
{
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(IAnsiConsole? console)
    {
        var artifact = new Argument<string>("artifact")
        {
            Description = "A local file, az://CONTAINER/PATH/file.parquet, or a blob URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH[?SAS]).",
        };
        var rows = new Option<int>("--rows") { Description = "How many rows to show (default 5).", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (schema, counts, rows) instead of tables." };
        var command = new Command("inspect", "Show an artifact's schema, row count, row groups and first rows.") { artifact, rows, json };
        command.SetAction(async (parse, cancellationToken) =>
        {
            string location = parse.GetValue(artifact)!;
            int count = parse.GetValue(rows);
            if (count < 0)
            {
                Console.Error.WriteLine($"prefpipe inspect: --rows must be 0 or more, got {count}");
                return Cli.ExitCodes.Usage;
            }
            ArtifactSummary summary;
            try
            {
                var (store, path) = ArtifactStores.OpenFile(location);
                summary = await ArtifactInspector.InspectAsync(store, path, count, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (CliErrors.ExitCodeOf(e) == Cli.ExitCodes.Failed)
            {
                // Storage and network errors do not always name what was being read.
                return CliErrors.Report($"inspect: {ArtifactStores.Redact(location)}", e);
            }
            catch (Exception e) when (CliErrors.IsExpected(e))
            {
                return CliErrors.Report("inspect", e);
            }
            var output = console ?? AnsiConsole.Console;
            if (parse.GetValue(json))
            {
                var writer = output.Profile.Out.Writer;
                writer.WriteLine(ToJson(summary));
                writer.Flush();
            }
            else
            {
                Render(output, summary);
            }
            return Cli.ExitCodes.Ok;
        });
        return command;
    }

    internal static string ToJson(ArtifactSummary summary)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("uri", summary.Uri);
            writer.WriteString("format", summary.Format);
            writer.WriteNumber("rows", summary.Rows);
            writer.WriteStartArray("row_groups");
            foreach (long g in summary.RowGroups) writer.WriteNumberValue(g);
            writer.WriteEndArray();
            writer.WriteStartArray("columns");
            foreach (var c in summary.Columns)
            {
                writer.WriteStartObject();
                writer.WriteString("name", c.Name);
                writer.WriteString("type", c.Type);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteStartObject("metadata");
            foreach (var (key, value) in summary.Metadata) writer.WriteString(key, value);
            writer.WriteEndObject();
            writer.WriteStartArray("first_rows");
            foreach (string row in summary.FirstRows) writer.WriteRawValue(row);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static void Render(IAnsiConsole console, ArtifactSummary summary)
    {
        var inv = CultureInfo.InvariantCulture;
        console.MarkupLine($"[bold]{Markup.Escape(summary.Uri)}[/] ({summary.Format}): {summary.Rows.ToString("N0", inv)} rows" +
            (summary.RowGroups.Count > 0 ? $" in {summary.RowGroups.Count} row group(s): {string.Join(", ", summary.RowGroups.Select(g => g.ToString(inv)))}" : ""));
        var schema = new Table().Border(TableBorder.Rounded).Title("schema").AddColumn("column").AddColumn("type");
        foreach (var c in summary.Columns) schema.AddRow(Markup.Escape(c.Name), Markup.Escape(c.Type));
        console.Write(schema);
        if (summary.FirstRows.Count == 0) return;
        var table = new Table().Border(TableBorder.Rounded).Title($"first {summary.FirstRows.Count} row(s)");
        foreach (var c in summary.Columns) table.AddColumn(Markup.Escape(c.Name));
        foreach (string row in summary.FirstRows)
        {
            using var document = JsonDocument.Parse(row);
            table.AddRow(summary.Columns.Select(c => Markup.Escape(Cell(document.RootElement, c.Name))).ToArray());
        }
        console.Write(table);
    }

    private static string Cell(JsonElement row, string column)
    {
        if (!row.TryGetProperty(column, out var value) || value.ValueKind == JsonValueKind.Null) return "null";
        string text = value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();
        return text.Length > 60 ? text[..57] + "..." : text;
    }
}
