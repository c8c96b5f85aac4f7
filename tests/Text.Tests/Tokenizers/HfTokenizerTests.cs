using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

public sealed class HfTokenizerTests
{
    public static TheoryData<int> ReferenceCases()
    {
        using var doc = ReadJson(ByteLevelReference);
        var data = new TheoryData<int>();
        for (int i = 0; i < doc.RootElement.GetArrayLength(); i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void Encode_ByteLevelReferenceCase_IdsAndDecodedTextMatchHuggingFace(int index)
    {
        using var doc = ReadJson(ByteLevelReference);
        var expected = doc.RootElement[index];
        string text = expected.GetProperty("text").GetString()!;
        int[] ids = expected.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var tokenizer = HfTokenizer.Load(ByteLevelTokenizer);

        var actual = tokenizer.Encode(text);

        Assert.Equal(ids, actual);
        Assert.Equal(expected.GetProperty("decoded").GetString(), tokenizer.Decode(actual));
    }

    [Fact]
    public void Encode_TinyLlamaReferenceTexts_MatchReferenceInputIds()
    {
        using var doc = ReadJson(Path("tiny-llama", "reference.json"));
        var texts = doc.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToArray();
        var inputIds = doc.RootElement.GetProperty("input_ids").EnumerateArray()
            .Select(row => row.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();
        var tokenizer = HfTokenizer.Load(TinyLlama);

        Assert.Equal(3, texts.Length);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(inputIds[i], tokenizer.Encode(texts[i]));
            Assert.Equal(texts[i], tokenizer.Decode(inputIds[i]));
        }
    }

    [Fact]
    public void Load_TinyLlamaFolder_ReadsSpecialTokensFromTokenizerConfig()
    {
        var tokenizer = HfTokenizer.Load(TinyLlama);

        Assert.Equal(768, tokenizer.VocabSize);
        Assert.Equal(0, tokenizer.EosTokenId);
        Assert.Equal(3, tokenizer.PadTokenId);
        // tokenizer_config.json says "bos_token": null: the tokenizer has none, whatever config.json says.
        Assert.Null(tokenizer.BosTokenId);
        Assert.Equal(new HashSet<int> { 0, 1, 2, 3 }, tokenizer.SpecialTokenIds.ToHashSet());
        Assert.Equal(1, tokenizer.TokenToId("<|im_start|>"));
        Assert.Equal("<|im_end|>", tokenizer.IdToToken(2));
        Assert.Null(tokenizer.IdToToken(768));
        Assert.Null(tokenizer.TokenToId("no such token"));
    }

    [Fact]
    public void Load_DemoPolicy_RoundTripsTextAndKnowsEosAndPad()
    {
        var tokenizer = HfTokenizer.Load(DemoPolicy);
        const string review = "Write a positive review of \"The Quiet Harbor\".\nI loved it: 10/10, would watch again!";

        var ids = tokenizer.Encode(review);

        Assert.Equal(0, tokenizer.EosTokenId);
        Assert.Equal(1, tokenizer.PadTokenId);
        Assert.Equal("<|endoftext|>", tokenizer.IdToToken(tokenizer.EosTokenId!.Value));
        Assert.Equal(512, tokenizer.VocabSize);
        Assert.True(ids.Count < review.Length, "merges should compress English text");
        Assert.All(ids, id => Assert.InRange(id, 2, 511));
        Assert.Equal(review, tokenizer.Decode(ids));
        var withEos = ids.Append(0).ToList();
        Assert.Equal(review + "<|endoftext|>", tokenizer.Decode(withEos));
        Assert.Equal(review, tokenizer.Decode(withEos, skipSpecialTokens: true));
    }

    [Fact]
    public void Encode_SpecialTokensInText_AreMatchedEvenWithoutAddingSpecialTokens()
    {
        var tokenizer = HfTokenizer.Load(ByteLevelTokenizer);

        var ids = tokenizer.Encode("<|im_start|>user<|im_end|><|endoftext|>", addSpecialTokens: false);

        Assert.Equal(1, ids[0]);
        Assert.Equal([2, 0], ids.TakeLast(2));
        Assert.Equal("user", tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Load_ConfigWithoutTokenStrings_FallsBackToGenerationConfigIds()
    {
        var json = JsonNode.Parse(File.ReadAllText(ByteLevelTokenizer))!;
        string folder = WriteFolder(json,
            ("tokenizer_config.json", """{"pad_token": {"content": "<pad>", "lstrip": false}}"""),
            ("generation_config.json", """{"bos_token_id": 1, "eos_token_id": [2, 0]}"""),
            ("config.json", """{"bos_token_id": 7, "eos_token_id": 9}"""));

        var tokenizer = (HfTokenizer)HfTokenizer.Load(folder);

        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.Equal([2, 0], tokenizer.EosTokenIds);
        Assert.Equal(3, tokenizer.PadTokenId);
    }

    [Fact]
    public void Load_TokenizerConfigNamingUnknownToken_FailsNamingFileAndKey()
    {
        var json = JsonNode.Parse(File.ReadAllText(ByteLevelTokenizer))!;
        string folder = WriteFolder(json, [("tokenizer_config.json", """{"eos_token": "</s>"}""")]);

        var e = Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(folder));

        Assert.Contains("tokenizer_config.json", e.Message, StringComparison.Ordinal);
        Assert.Contains("eos_token", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("WordLevel")]
    [InlineData("Nonexistent")]
    public void Load_UnsupportedModelType_FailsNamingFileAndType(string type)
    {
        var json = Skeleton(new JsonObject { ["type"] = type, ["vocab"] = new JsonObject { ["a"] = 0 } });
        string folder = WriteFolder(json);

        var e = Assert.Throws<NotSupportedException>(() => HfTokenizer.Load(folder));

        Assert.Contains(System.IO.Path.Combine(folder, "tokenizer.json"), e.Message, StringComparison.Ordinal);
        Assert.Contains($"model.type is \"{type}\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MergeOfUnknownToken_FailsNamingTheMerge()
    {
        var json = Skeleton(new JsonObject
        {
            ["type"] = "BPE",
            ["vocab"] = new JsonObject { ["a"] = 0, ["b"] = 1, ["ab"] = 2 },
            ["merges"] = new JsonArray("a b", "a c"),
        });
        string folder = WriteFolder(json);

        var e = Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(folder));

        Assert.Contains("$.model.merges[1]", e.Message, StringComparison.Ordinal);
        Assert.Contains("\"c\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingPath_FailsWithFileNotFound()
    {
        string folder = Directory.CreateTempSubdirectory("prefpipe-tokenizer-").FullName;

        var e = Assert.Throws<FileNotFoundException>(() => HfTokenizer.Load(folder));

        Assert.Contains("no tokenizer.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_MergesAsPairsOrStrings_GiveTheSameIds()
    {
        var json = JsonNode.Parse(File.ReadAllText(ByteLevelTokenizer))!;
        var merges = json["model"]!["merges"]!.AsArray();
        var asStrings = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create($"{m![0]} {m[1]}")!).ToArray());
        json["model"]!["merges"] = asStrings;
        var fromStrings = HfTokenizer.Load(WriteFolder(json));
        var fromPairs = HfTokenizer.Load(ByteLevelTokenizer);
        const string text = "The quick brown fox jumps over the lazy dog, twice; 42 times!";

        Assert.Equal(fromPairs.Encode(text), fromStrings.Encode(text));
    }

    [Fact]
    public void Encode_NfcNormalizer_ComposesDecomposedInputLikeQwen()
    {
        var json = JsonNode.Parse(File.ReadAllText(ByteLevelTokenizer))!;
        json["normalizer"] = new JsonObject { ["type"] = "NFC" };
        var tokenizer = HfTokenizer.Load(WriteFolder(json));

        var decomposed = tokenizer.Encode("cafe\u0301");
        var composed = tokenizer.Encode("caf\u00e9");

        Assert.Equal(composed, decomposed);
        Assert.Equal("caf\u00e9", tokenizer.Decode(decomposed));
    }

    [Fact]
    public void Encode_TemplateAndRobertaPostProcessors_AddSpecialTokensOnlyWhenAsked()
    {
        var json = JsonNode.Parse(File.ReadAllText(ByteLevelTokenizer))!;
        json["post_processor"] = Parse("""
            {"type": "Sequence", "processors": [
              {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
              {"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "pair": [], "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}}]}
            """);
        var template = HfTokenizer.Load(WriteFolder(json));
        json["post_processor"] = Parse("""{"type": "RobertaProcessing", "sep": ["<|im_end|>", 2], "cls": ["<|im_start|>", 1], "trim_offsets": true, "add_prefix_space": false}""");
        var roberta = HfTokenizer.Load(WriteFolder(json));
        var plain = HfTokenizer.Load(ByteLevelTokenizer).Encode("Hello world!");

        Assert.Equal([1, .. plain], template.Encode("Hello world!"));
        Assert.Equal(plain, template.Encode("Hello world!", addSpecialTokens: false));
        Assert.Equal([1, .. plain, 2], roberta.Encode("Hello world!"));
        Assert.Equal("Hello world!", template.Decode(template.Encode("Hello world!"), skipSpecialTokens: true));
    }
}
