using System.Collections;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;

namespace PrefPipe.Artifacts.Inputs;

/// <summary>
/// Reads any Parquet file row group by row group as untyped rows (column name → value), including list and struct
/// columns, and writes such values as JSON. Used for inputs with unknown extra columns and by <c>prefpipe inspect</c>.
/// </summary>
internal static class UntypedParquet
{
    internal static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly byte[] Magic = "PAR1"u8.ToArray();

    /// <summary>Whether the stream starts and ends with the Parquet magic bytes (leaves the position at 0).</summary>
    public static bool LooksLikeParquet(Stream stream)
    {
        if (stream.Length < 12) return false;
        Span<byte> head = stackalloc byte[4], tail = stackalloc byte[4];
        stream.Position = 0;
        stream.ReadExactly(head);
        stream.Position = stream.Length - 4;
        stream.ReadExactly(tail);
        stream.Position = 0;
        return head.SequenceEqual(Magic) && tail.SequenceEqual(Magic);
    }

    // Parquet.Net reports corrupt files with many exception types (Thrift protocol errors, index and cast errors):
    // any failure other than cancellation while decoding a file we already know is Parquet means "corrupt".

    /// <summary>Opens a reader, turning format errors into <see cref="InvalidDataException"/> naming <paramref name="source"/>.</summary>
    public static async Task<ParquetReader> OpenAsync(Stream stream, string source, CancellationToken cancellationToken)
    {
        if (!LooksLikeParquet(stream))
            throw new InvalidDataException($"{source} is not a Parquet file (no PAR1 magic at its start and end); expected Parquet or JSON lines.");
        try
        {
            return await ParquetReader.CreateAsync(stream, leaveStreamOpen: true, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
        {
            throw new InvalidDataException($"{source} is a corrupt Parquet file: {ex.Message}", ex);
        }
    }

    /// <summary>The rows of one row group as dictionaries.</summary>
    public static async Task<IList<Dictionary<string, object?>>> ReadRowGroupAsync(Stream stream, int rowGroup, string source, CancellationToken cancellationToken)
    {
        stream.Position = 0;
        try
        {
            var result = await ParquetSerializer.DeserializeUntypedAsync(stream, null, rowGroup, cancellationToken).ConfigureAwait(false);
            // The untyped reader leaves null values out; put every top-level column back, in schema order.
            var names = result.Schema.Fields.Select(f => f.Name).ToArray();
            return result.Data.Select(d => names.ToDictionary(n => n, n => d.TryGetValue(n, out object? v) ? v : null, StringComparer.Ordinal)).ToList();
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
        {
            throw new InvalidDataException($"{source} (row group {rowGroup}): corrupt or unreadable data: {ex.Message}", ex);
        }
    }

    /// <summary>All rows, a row group at a time.</summary>
    public static async IAsyncEnumerable<Dictionary<string, object?>> ReadRowsAsync(Stream stream, ParquetReader reader, string source,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var row in await ReadRowGroupAsync(stream, g, source, cancellationToken).ConfigureAwait(false)) yield return row;
        }
    }

    /// <summary>A field's type in Arrow-like words: string, double, list&lt;struct&lt;role: string, content: string&gt;&gt;.</summary>
    public static string TypeName(Field field) => field switch
    {
        DataField d => ClrName(d.ClrType) + (d.IsNullable ? "" : " not null"),
        ListField l => $"list<{TypeName(l.Item)}>",
        MapField m => $"map<{TypeName(m.Key)}, {TypeName(m.Value)}>",
        StructField s => $"struct<{string.Join(", ", s.Fields.Select(f => $"{f.Name}: {TypeName(f)}"))}>",
        _ => field.SchemaType.ToString(),
    };

    private static string ClrName(Type t) => t switch
    {
        _ when t == typeof(string) || t == typeof(ReadOnlyMemory<char>) => "string",
        _ when t == typeof(double) => "double",
        _ when t == typeof(float) => "float",
        _ when t == typeof(long) => "int64",
        _ when t == typeof(int) => "int32",
        _ when t == typeof(short) => "int16",
        _ when t == typeof(sbyte) => "int8",
        _ when t == typeof(bool) => "bool",
        _ when t == typeof(byte[]) || t == typeof(ReadOnlyMemory<byte>) => "binary",
        _ when t == typeof(DateTime) => "timestamp",
        _ when t == typeof(decimal) => "decimal",
        _ => t.Name,
    };

    /// <summary>Whether a data field holds strings.</summary>
    public static bool IsString(Field field) => field is DataField d && (d.ClrType == typeof(string) || d.ClrType == typeof(ReadOnlyMemory<char>));

    /// <summary>Whether a field is list&lt;struct&lt;role: string, content: string&gt;&gt; (TRL conversational).</summary>
    public static bool IsMessages(Field field) =>
        field is ListField { Item: StructField s } &&
        s.Fields.Any(f => f.Name == "role" && IsString(f)) && s.Fields.Any(f => f.Name == "content" && IsString(f));

    /// <summary>A value as text when it is a string.</summary>
    public static string? AsString(object? value) => value switch
    {
        string s => s,
        ReadOnlyMemory<char> m => m.ToString(),
        _ => null,
    };

    /// <summary>Writes a value read by the untyped reader (or parsed from JSON) as JSON.</summary>
    public static void WriteJson(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null: writer.WriteNullValue(); break;
            case string s: writer.WriteStringValue(s); break;
            case ReadOnlyMemory<char> m: writer.WriteStringValue(m.Span); break;
            case bool b: writer.WriteBooleanValue(b); break;
            case double d when double.IsFinite(d): writer.WriteNumberValue(d); break;
            case float f when float.IsFinite(f): writer.WriteNumberValue(f); break;
            case double or float: writer.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture)); break;
            case long l: writer.WriteNumberValue(l); break;
            case int i: writer.WriteNumberValue(i); break;
            case short sh: writer.WriteNumberValue(sh); break;
            case sbyte sb: writer.WriteNumberValue(sb); break;
            case byte by: writer.WriteNumberValue(by); break;
            case ulong ul: writer.WriteNumberValue(ul); break;
            case uint ui: writer.WriteNumberValue(ui); break;
            case decimal m: writer.WriteNumberValue(m); break;
            case DateTime dt: writer.WriteStringValue(dt.ToString("O", CultureInfo.InvariantCulture)); break;
            case DateTimeOffset dto: writer.WriteStringValue(dto.ToString("O", CultureInfo.InvariantCulture)); break;
            case byte[] bytes: writer.WriteBase64StringValue(bytes); break;
            case JsonElement element: element.WriteTo(writer); break;
            case IDictionary dict:
                writer.WriteStartObject();
                foreach (DictionaryEntry e in dict)
                {
                    writer.WritePropertyName(Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? "");
                    WriteJson(writer, e.Value);
                }
                writer.WriteEndObject();
                break;
            case IEnumerable list:
                writer.WriteStartArray();
                foreach (object? item in list) WriteJson(writer, item);
                writer.WriteEndArray();
                break;
            default: writer.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture)); break;
        }
    }

    /// <summary>A row (or any value) as a compact JSON string.</summary>
    public static string ToJson(object? value)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions)) WriteJson(writer, value);
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>An object with the row's columns except <paramref name="skip"/>, as JSON.</summary>
    public static string ToJsonObject(IEnumerable<KeyValuePair<string, object?>> row, params string[] skip)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in row)
            {
                if (skip.Contains(key, StringComparer.Ordinal)) continue;
                writer.WritePropertyName(key);
                WriteJson(writer, value);
            }
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
