using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

public sealed class TokenizeCommandTests
{
    private static string TinyLlama => Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");

    private static (string[] Texts, int[][] Ids) Reference()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TinyLlama, "reference.json")));
        var texts = doc.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToArray();
        var ids = doc.RootElement.GetProperty("input_ids").EnumerateArray()
            .Select(r => r.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();
        return (texts, ids);
    }

    private static List<(string Text, int[] Ids)> ParseLines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .Select(e => (e.GetProperty("text").GetString()!, e.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray()))
            .ToList();

    [Fact]
    public async Task Tokenize_ModelFolderJson_PrintsReferenceIdsOneLinePerText()
    {
        var (texts, ids) = Reference();
        var console = new TestConsole().Width(40);
        string[] args = ["tokenize", "--tokenizer", TinyLlama, "--json", .. texts.SelectMany(t => new[] { "--text", t })];

        int exit = await Cli.InvokeAsync(args, console);

        Assert.Equal(0, exit);
        var lines = ParseLines(console.Output);
        Assert.Equal(texts, lines.Select(l => l.Text));
        Assert.Equal(ids, lines.Select(l => l.Ids));
    }

    [Fact]
    public async Task Tokenize_TokenizerJsonWithTemplate_AddsBosUnlessNoSpecialTokens()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(TinyLlama, "tokenizer.json")))!;
        json["post_processor"] = JsonNode.Parse("""
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}}
            """);
        string file = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-tokenize-").FullName, "tokenizer.json");
        await File.WriteAllTextAsync(file, json.ToJsonString());
        var (texts, ids) = Reference();
        var withSpecial = new TestConsole();
        var without = new TestConsole();

        int exit1 = await Cli.InvokeAsync(["tokenize", "--tokenizer", file, "--text", texts[0], "--json"], withSpecial);
        int exit2 = await Cli.InvokeAsync(["tokenize", "--tokenizer", file, "--text", texts[0], "--json", "--no-special-tokens"], without);

        Assert.Equal(0, exit1);
        Assert.Equal(0, exit2);
        Assert.Equal([0, .. ids[0]], ParseLines(withSpecial.Output).Single().Ids);
        Assert.Equal(ids[0], ParseLines(without.Output).Single().Ids);
    }

    [Fact]
    public async Task Tokenize_WithoutJson_PrintsATableWithTheIds()
    {
        var console = new TestConsole().Width(200);

        int exit = await Cli.InvokeAsync(["tokenize", "--tokenizer", TinyLlama, "--text", "Numbers 12345 and 3.14159"], console);

        Assert.Equal(0, exit);
        Assert.Contains("49 337 86 224 20 21 22 23 24 327 224 22 17 20 23 20 24 28", console.Output, StringComparison.Ordinal);
        Assert.Contains("18", console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tokenize_MissingTokenizer_ExitsWithUsageCode()
    {
        string missing = Path.Combine(Path.GetTempPath(), "prefpipe-no-such-tokenizer", "tokenizer.json");

        int exit = await Cli.InvokeAsync(["tokenize", "--tokenizer", missing, "--text", "hi"], new TestConsole());

        Assert.Equal(2, exit);
    }

    [Fact]
    public async Task Tokenize_NoText_ExitsWithUsageCode()
    {
        int exit = await Cli.InvokeAsync(["tokenize", "--tokenizer", TinyLlama], new TestConsole());

        Assert.Equal(2, exit);
    }
}
