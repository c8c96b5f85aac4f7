using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>Paths of the copied reference fixtures, and small tokenizer.json files written by tests.</summary>
internal static class TokenizerFixtures
{
    public static string Path(params string[] parts) =>
        System.IO.Path.Combine([AppContext.BaseDirectory, "fixtures", .. parts]);

    public static string ByteLevelTokenizer => Path("bytelevel-bpe", "bytelevel-bpe-tokenizer.json");

    public static string ByteLevelReference => Path("bytelevel-bpe", "bytelevel-bpe-tokenizer.reference.json");

    public static string TinyLlama => Path("tiny-llama");

    public static string DemoPolicy => Path("demo", "policy");

    /// <summary>Writes <paramref name="tokenizerJson"/> (and any side files) into a fresh folder; returns the folder.</summary>
    public static string WriteFolder(JsonNode tokenizerJson, params (string Name, string Content)[] sideFiles)
    {
        string folder = Directory.CreateTempSubdirectory("prefpipe-tokenizer-").FullName;
        File.WriteAllText(System.IO.Path.Combine(folder, "tokenizer.json"), tokenizerJson.ToJsonString(), Encoding.UTF8);
        foreach (var (name, content) in sideFiles) File.WriteAllText(System.IO.Path.Combine(folder, name), content, Encoding.UTF8);
        return folder;
    }

    /// <summary>GPT-2's byte ↦ character table, written out independently of the implementation under test.</summary>
    public static string ByteChar(byte b)
    {
        int n = 0;
        for (int i = 0; i < 256; i++)
        {
            bool printable = i is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            if (i == b) return ((char)(printable ? i : 256 + n)).ToString();
            if (!printable) n++;
        }
        throw new ArgumentOutOfRangeException(nameof(b));
    }

    public static string ByteLevel(string text) => string.Concat(Encoding.UTF8.GetBytes(text).Select(ByteChar));

    /// <summary>A tokenizer.json skeleton in the exact HF layout.</summary>
    public static JsonObject Skeleton(JsonObject model, JsonNode? normalizer = null, JsonNode? preTokenizer = null,
        JsonNode? postProcessor = null, JsonNode? decoder = null, JsonArray? addedTokens = null) => new()
    {
        ["version"] = "1.0",
        ["truncation"] = null,
        ["padding"] = null,
        ["added_tokens"] = addedTokens ?? [],
        ["normalizer"] = normalizer,
        ["pre_tokenizer"] = preTokenizer,
        ["post_processor"] = postProcessor,
        ["decoder"] = decoder,
        ["model"] = model,
    };

    public static JsonObject Added(int id, string content, bool special = true, bool normalized = false,
        bool lstrip = false, bool rstrip = false, bool singleWord = false) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = singleWord,
        ["lstrip"] = lstrip,
        ["rstrip"] = rstrip,
        ["normalized"] = normalized,
        ["special"] = special,
    };

    public static JsonNode Parse(string json) => JsonNode.Parse(json)!;

    public static JsonDocument ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path));
}
