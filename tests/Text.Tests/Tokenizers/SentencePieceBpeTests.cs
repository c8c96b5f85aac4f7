using System.Text.Json.Nodes;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>
/// SentencePiece-style BPE with byte fallback, in the tokenizer.json layout HF writes for Llama 2 / Mistral. No reference
/// fixture exists for it here: the expected ids are derived by hand from the BPE rules (lowest merge rank first,
/// leftmost on ties; characters outside the vocabulary become &lt;0xXX&gt; byte tokens).
/// </summary>
public sealed class SentencePieceBpeTests
{
    private const int Unk = 0, Bos = 1, Eos = 2;
    private const int Space = 259, H = 260, E = 261, L = 262, O = 263, W = 264, R = 265, D = 266;
    private const int SpaceH = 267, LL = 268, SpaceHe = 269, SpaceHell = 270, SpaceHello = 271, SpaceW = 272, Or = 273, SpaceWor = 274;

    private static int Byte(int b) => 3 + b;

    private static JsonObject Model()
    {
        var vocab = new JsonObject { ["<unk>"] = Unk, ["<s>"] = Bos, ["</s>"] = Eos };
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = Byte(b);
        string[] pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "ll", "▁he", "▁hell", "▁hello", "▁w", "or", "▁wor"];
        for (int i = 0; i < pieces.Length; i++) vocab[pieces[i]] = Space + i;
        return new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = "<unk>", ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null, ["fuse_unk"] = true, ["byte_fallback"] = true, ["ignore_merges"] = false,
            ["vocab"] = vocab,
            ["merges"] = new JsonArray("▁ h", "l l", "▁h e", "▁he ll", "▁hell o", "▁ w", "o r", "▁w or"),
        };
    }

    private static JsonArray AddedTokens() => [Added(Unk, "<unk>"), Added(Bos, "<s>"), Added(Eos, "</s>")];

    private const string BosTemplate = """
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
        """;

    /// <summary>Llama 2 (HF conversion): normalizer Prepend + Replace, no pre-tokenizer, the four-step decoder.</summary>
    private static ITextTokenizer Llama2Style() => HfTokenizer.Load(WriteFolder(Skeleton(Model(),
        normalizer: Parse("""
            {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
              {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
            """),
        postProcessor: Parse(BosTemplate),
        decoder: Parse("""
            {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
              {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
            """),
        addedTokens: AddedTokens()),
        [("tokenizer_config.json", """{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null}""")]));

    /// <summary>Newer Mistral conversions: Metaspace pre-tokenizer (prepend_scheme first) and Metaspace decoder.</summary>
    private static ITextTokenizer MetaspaceStyle() => HfTokenizer.Load(WriteFolder(Skeleton(Model(),
        preTokenizer: Parse("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}"""),
        postProcessor: Parse(BosTemplate),
        decoder: Parse("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}"""),
        addedTokens: AddedTokens())));

    [Fact]
    public void Encode_HelloWorld_MergesByRankAndAddsBos()
    {
        // "▁hello▁world": (▁,h) r0 → (l,l) r1 → (▁h,e) r2 → (▁he,ll) r3 → (▁hell,o) r4 → (▁,w) r5 → (o,r) r6 → (▁w,or) r7.
        var tokenizer = Llama2Style();

        var ids = tokenizer.Encode("hello world");

        Assert.Equal([Bos, SpaceHello, SpaceWor, L, D], ids);
        Assert.Equal("hello world", tokenizer.Decode(ids, skipSpecialTokens: true));
        Assert.Equal("<s> hello world", tokenizer.Decode(ids));
    }

    [Fact]
    public void Encode_CharactersOutsideVocab_FallBackToUtf8ByteTokens()
    {
        // "▁hi\n😀": ▁h merges; i, \n and the emoji's four UTF-8 bytes are not in the vocabulary.
        var tokenizer = Llama2Style();

        var ids = tokenizer.Encode("hi\n😀", addSpecialTokens: false);

        Assert.Equal([SpaceH, Byte(0x69), Byte(0x0A), Byte(0xF0), Byte(0x9F), Byte(0x98), Byte(0x80)], ids);
        Assert.Equal("hi\n😀", tokenizer.Decode(ids));
    }

    [Fact]
    public void Decode_IncompleteUtf8Bytes_GivesOneReplacementCharacterPerByte()
    {
        var tokenizer = Llama2Style();

        string text = tokenizer.Decode([SpaceH, Byte(0xF0), Byte(0x9F), E]);

        Assert.Equal("h\uFFFD\uFFFDe", text);
    }

    [Fact]
    public void Encode_SpecialTokenInText_IsMatchedAndTheRestGetsThePrefix()
    {
        // Prepend applies to every piece between added tokens: "hello" after "<s>" still becomes "▁hello".
        var tokenizer = Llama2Style();

        Assert.Equal([Bos, SpaceHello, Eos], tokenizer.Encode("<s>hello</s>", addSpecialTokens: false));
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal(Eos, tokenizer.EosTokenId);
        Assert.Null(tokenizer.PadTokenId);
    }

    [Fact]
    public void Encode_Empty_GivesOnlyTheTemplateTokens()
    {
        var tokenizer = Llama2Style();

        Assert.Equal([Bos], tokenizer.Encode(""));
        Assert.Empty(tokenizer.Encode("", addSpecialTokens: false));
    }

    [Fact]
    public void Encode_MetaspaceFirst_PrefixesOnlyTextAtTheStart()
    {
        var tokenizer = MetaspaceStyle();

        Assert.Equal([Bos, SpaceHello, SpaceWor, L, D], tokenizer.Encode("hello world"));
        // After "<s>" the piece does not start the input: no "▁", so only (l,l) applies.
        Assert.Equal([Bos, H, E, LL, O], tokenizer.Encode("<s>hello", addSpecialTokens: false));
        Assert.Equal("hello world", tokenizer.Decode([SpaceHello, SpaceWor, L, D]));
    }

    [Fact]
    public void Encode_UnknownCharacterWithoutByteToken_FusesIntoOneUnk()
    {
        var model = Model();
        model["byte_fallback"] = false;
        var tokenizer = HfTokenizer.Load(WriteFolder(Skeleton(model, addedTokens: AddedTokens())));

        // No normalizer, no pre-tokenizer: "héé" → h, then é é unknown and fused (fuse_unk) into one <unk>.
        Assert.Equal([H, Unk], tokenizer.Encode("héé"));
        Assert.Equal([R, Unk, O], tokenizer.Encode("r\u00e9\u00e9o"));
    }
}
