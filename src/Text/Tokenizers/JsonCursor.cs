using System.Globalization;
using System.Text.Json;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// A JSON element with the file it came from and its path inside the file, so every complaint about a
/// tokenizer.json names the file, the key and what was expected.
/// </summary>
internal readonly struct JsonCursor
{
    // The path is built only when a message needs it: a 150k-entry vocabulary would otherwise build 150k strings.
    private readonly string _parentPath;
    private readonly string? _key;
    private readonly int _index;

    public JsonCursor(JsonElement element, string file, string path)
        : this(element, file, path, null, -1)
    {
    }

    private JsonCursor(JsonElement element, string file, string parentPath, string? key, int index)
    {
        Element = element;
        File = file;
        _parentPath = parentPath;
        _key = key;
        _index = index;
    }

    public JsonElement Element { get; }

    public string File { get; }

    /// <summary>Where this element is, e.g. <c>$.model.merges[12]</c>.</summary>
    public string Path => _key is not null ? $"{_parentPath}.{_key}"
        : _index >= 0 ? $"{_parentPath}[{_index.ToString(CultureInfo.InvariantCulture)}]"
        : _parentPath;

    public JsonValueKind Kind => Element.ValueKind;

    public bool IsNull => Element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    public InvalidDataException Error(string expected) =>
        new($"{File}: '{Path}' {expected} (found {Describe(Element)}).");

    /// <summary>The member, or null when it is absent or JSON null.</summary>
    public JsonCursor? Optional(string key)
    {
        if (Element.ValueKind != JsonValueKind.Object) throw Error($"must be an object with '{key}'");
        return Element.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null
            ? new JsonCursor(value, File, Path, key, -1)
            : null;
    }

    public bool Has(string key) => Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(key, out _);

    public JsonCursor Required(string key) =>
        Optional(key) ?? throw new InvalidDataException($"{File}: '{Path}.{key}' is required but missing or null.");

    public string String() => Element.ValueKind == JsonValueKind.String ? Element.GetString()! : throw Error("must be a string");

    public int Int()
    {
        if (Element.ValueKind == JsonValueKind.Number && Element.TryGetInt32(out int value)) return value;
        throw Error("must be a 32-bit integer");
    }

    public bool Bool() => Element.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Error("must be true or false"),
    };

    public string? OptionalString(string key) => Optional(key)?.String();

    public bool OptionalBool(string key, bool fallback) => Optional(key)?.Bool() ?? fallback;

    public int OptionalInt(string key, int fallback) => Optional(key)?.Int() ?? fallback;

    public IEnumerable<JsonCursor> Items()
    {
        if (Element.ValueKind != JsonValueKind.Array) throw Error("must be an array");
        string path = Path;
        int i = 0;
        foreach (var item in Element.EnumerateArray())
            yield return new JsonCursor(item, File, path, null, i++);
    }

    public IEnumerable<(string Key, JsonCursor Value)> Properties()
    {
        if (Element.ValueKind != JsonValueKind.Object) throw Error("must be an object");
        string path = Path;
        foreach (var p in Element.EnumerateObject())
            yield return (p.Name, new JsonCursor(p.Value, File, path, p.Name, -1));
    }

    /// <summary>The "type" of a component (normalizer, pre_tokenizer, ...).</summary>
    public string TypeName() => Required("type").String();

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"\"{Truncate(e.GetString()!)}\"",
        JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "nothing",
    };

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..60] + "…";
}
