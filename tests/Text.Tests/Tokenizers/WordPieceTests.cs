using System.Text.Json.Nodes;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>
/// WordPiece (BERT, DistilBERT) on a hand-made 65-token tokenizer.json in the exact HF layout
/// (fixtures/wordpiece/wordpiece-tokenizer.json: BertNormalizer with strip_accents null, BertPreTokenizer,
/// TemplateProcessing [CLS] $A [SEP], WordPiece decoder, max_input_chars_per_word 12). Every expected id list and decoded
/// string was produced by the JavaScript port <c>@huggingface/tokenizers</c> 0.2.0 on the same file (decoded with
/// <c>clean_up_tokenization_spaces: false</c>, as the Rust library decodes) and agrees with the
/// Rust source of tokenizers (models/wordpiece/mod.rs, normalizers/bert.rs, pre_tokenizers/bert.rs, decoders/wordpiece.rs).
/// </summary>
public sealed class WordPieceTests
{
    private const int Pad = 0, Unk = 1, Cls = 2, Sep = 3, Mask = 4;

    private static string Fixture => Path("wordpiece", "wordpiece-tokenizer.json");

    private static HfTokenizer Load() => HfTokenizer.LoadHf(Fixture);

    [Theory]
    [InlineData("The Café is OPEN!", new[] { 5, 6, 7, 8, 18 })] // lowercase + accent stripped (strip_accents null follows lowercase)
    [InlineData("naïve résumé über", new[] { 46, 47, 49 })]
    [InlineData("Über", new[] { 49 })]
    [InlineData("Héllo, wörld?", new[] { 16, 19, 17, 21 })] // punctuation isolated
    [InlineData("unaffable playing", new[] { 9, 10, 11, 13, 14 })] // ## continuation, longest match first
    [InlineData("中国人好", new[] { 34, 35, 36, 37 })] // CJK ideographs split one by one
    [InlineData("ab中c", new[] { 63, 34, 40 })]
    [InlineData("$(a-b)", new[] { 30, 32, 38, 31, 39, 33 })] // ASCII symbols count as punctuation
    [InlineData("don't do not", new[] { 27, 22, 24, 28, 29 })]
    [InlineData("I think\r\nthe cafe's open.", new[] { 60, 53, 5, 6, 22, 23, 8, 20 })]
    [InlineData("abc ab", new[] { 63, 43, 63 })]
    [InlineData("\u3000a\u2028b", new[] { 38, 39 })] // ideographic space and line separator are whitespace
    [InlineData("", new int[0])]
    [InlineData("   ", new int[0])]
    public void Encode_BertPipeline_MatchesReference(string text, int[] expected)
    {
        var tokenizer = Load();

        Assert.Equal(expected, tokenizer.Encode(text, addSpecialTokens: false));
        Assert.Equal([Cls, .. expected, Sep], tokenizer.Encode(text));
    }

    [Theory]
    [InlineData("supercalifragilistic", new[] { Unk })] // no piece covers "super…": the whole word is unknown
    [InlineData("eu€ 😀😀", new[] { Unk, 58, 59 })] // "eu" then no "##€": unknown; 😀 + ##😀
    [InlineData("ΣΑΣ iς", new[] { Unk, Unk })]
    public void Encode_WordWithUncoveredPart_IsOneUnknownToken(string text, int[] expected) =>
        Assert.Equal(expected, Load().Encode(text, addSpecialTokens: false));

    /// <summary>
    /// Rust bert.rs <c>is_chinese_char</c> includes the supplementary CJK blocks (U+20000…): "ab𠀀c" is three words. The
    /// JS port tests UTF-16 units and never sees them (it gives one unknown word); the Rust source is followed here.
    /// </summary>
    [Fact]
    public void Encode_SupplementaryCjkIdeograph_IsSplitLikeBmpOnes() =>
        Assert.Equal([63, Unk, 40], Load().Encode("ab𠀀c", addSpecialTokens: false));

    /// <summary>
    /// Rust pre_tokenizers/bert.rs splits on <c>char::is_whitespace</c> (White_Space): U+0085 is whitespace, U+FEFF is
    /// not. Without a normalizer (which would drop both as control/format characters) the pre-tokenizer decides. The JS
    /// port uses JavaScript's \s, which has it the other way round; the Rust source is followed here.
    /// </summary>
    [Fact]
    public void Encode_BertPreTokenizer_SplitsOnUnicodeWhiteSpaceProperty()
    {
        var json = JsonNode.Parse(File.ReadAllText(Fixture))!;
        json["normalizer"] = null;
        var tokenizer = HfTokenizer.Load(WriteFolder(json));

        Assert.Equal([16, 17], tokenizer.Encode("hello\u0085world", addSpecialTokens: false));
        Assert.Equal([Unk], tokenizer.Encode("hello\uFEFFworld", addSpecialTokens: false));
    }

    [Fact]
    public void Encode_WordLongerThanMaxInputChars_IsUnknownAndAtTheLimitIsSplit()
    {
        var tokenizer = Load();

        Assert.Equal([Unk], tokenizer.Encode(new string('x', 13), addSpecialTokens: false));
        Assert.Equal([50, .. Enumerable.Repeat(51, 11)], tokenizer.Encode(new string('x', 12), addSpecialTokens: false));
    }

    [Fact]
    public void Encode_CleanText_DropsNulReplacementAndFormatCharactersAndSpacesOtherWhitespace()
    {
        // "a\0b\uFFFDc\u200Bd" becomes the one word "abcd" (ab ##c, then no ##d: unknown); tab and NBSP become spaces.
        Assert.Equal([Unk, 44, 50], Load().Encode("a\u0000b\uFFFDc\u200Bd\te\u00A0x", addSpecialTokens: false));
    }

    [Fact]
    public void Encode_SpecialTokensInText_AreMatchedBeforeNormalization()
    {
        var tokenizer = Load();

        Assert.Equal([Cls, Cls, 16, Sep, Sep], tokenizer.Encode("[CLS] hello [SEP]"));
        Assert.Equal([16, Mask, 17], tokenizer.Encode("hello[MASK]world", addSpecialTokens: false));
    }

    [Theory]
    [InlineData("The Café is OPEN!", "[CLS] the cafe is open! [SEP]", "the cafe is open!")]
    [InlineData("unaffable playing", "[CLS] unaffable playing [SEP]", "unaffable playing")]
    [InlineData("Héllo, wörld?", "[CLS] hello, world? [SEP]", "hello, world?")]
    // The decoder cleans each token on its own (Rust decoders/wordpiece.rs), so " '" + " t" keeps its spaces; the JS port
    // agrees with clean_up_tokenization_spaces: false (its default, like transformers', cleans the joined text).
    [InlineData("don't do not", "[CLS] don ' t do not [SEP]", "don ' t do not")]
    [InlineData("I think\r\nthe cafe's open.", "[CLS] i think the cafe ' s open. [SEP]", "i think the cafe ' s open.")]
    [InlineData("中国人好", "[CLS] 中 国 人 好 [SEP]", "中 国 人 好")]
    public void Decode_WordPieceDecoder_JoinsPiecesAndCleansUp(string text, string expected, string expectedSkipSpecial)
    {
        var tokenizer = Load();
        var ids = tokenizer.Encode(text);

        Assert.Equal(expected, tokenizer.Decode(ids));
        Assert.Equal(expectedSkipSpecial, tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Encode_BertProcessing_WrapsInClsAndSep()
    {
        var json = JsonNode.Parse(File.ReadAllText(Fixture))!;
        json["post_processor"] = Parse("""{"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}""");
        var tokenizer = HfTokenizer.Load(WriteFolder(json));

        Assert.Equal([Cls, 16, 17, Sep], tokenizer.Encode("hello world"));
    }

    [Fact]
    public void Encode_StripAccentsFalseAndNoLowercase_KeepsCaseAndAccents()
    {
        // Rust bert.rs: strip_accents false wins over lowercase; without lowercase "Hello" is not in the vocabulary.
        var json = JsonNode.Parse(File.ReadAllText(Fixture))!;
        json["normalizer"] = Parse("""
            {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": false, "lowercase": true}
            """);
        var keepAccents = HfTokenizer.Load(WriteFolder(json));
        json["normalizer"] = Parse("""
            {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": false, "strip_accents": null, "lowercase": false}
            """);
        var cased = HfTokenizer.Load(WriteFolder(json));

        Assert.Equal([48], keepAccents.Encode("ÜBER", addSpecialTokens: false)); // "über"
        Assert.Equal([Unk, 16], cased.Encode("Hello hello", addSpecialTokens: false));
        Assert.Equal([Unk], cased.Encode("ab中c", addSpecialTokens: false)); // no split around 中: one unknown word
    }

    [Fact]
    public void Encode_UnknownTokenMissingFromVocab_FailsNamingFileAndKeyWhenNeeded()
    {
        var json = JsonNode.Parse(File.ReadAllText(Fixture))!;
        json["model"]!["unk_token"] = "<unk>";
        string folder = WriteFolder(json);
        var tokenizer = HfTokenizer.Load(folder);

        Assert.Equal([16], tokenizer.Encode("hello", addSpecialTokens: false));
        var e = Assert.Throws<InvalidDataException>(() => tokenizer.Encode("zzz"));
        Assert.Contains(System.IO.Path.Combine(folder, "tokenizer.json"), e.Message, StringComparison.Ordinal);
        Assert.Contains("model.unk_token", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TokenizerConfigPadToken_ResolvesToPadId()
    {
        string folder = WriteFolder(JsonNode.Parse(File.ReadAllText(Fixture))!,
            ("tokenizer_config.json", """{"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"}"""));

        var tokenizer = HfTokenizer.LoadHf(folder);

        Assert.Equal(Pad, tokenizer.PadTokenId);
        Assert.Equal(65, tokenizer.VocabSize);
    }
}
