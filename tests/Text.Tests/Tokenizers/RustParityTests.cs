using System.Text.Json.Nodes;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>
/// Places where this implementation once gave other ids than the Rust <c>tokenizers</c> library. Each tokenizer.json is
/// hand-made (a handful of characters, no third-party data). The expected ids follow the cited Rust source (tokenizers
/// v0.23.1); where the JavaScript port <c>@huggingface/tokenizers</c> 0.2.0 implements the same component, it gives
/// the same ids (noted per test).
/// </summary>
public sealed class RustParityTests
{
    /// <summary>A BPE model over the given tokens (ids in order) and merges, with an optional unknown token.</summary>
    private static JsonObject Model(string[] tokens, string[] merges, string? unk = null, bool byteFallback = false)
    {
        var vocab = new JsonObject();
        for (int i = 0; i < tokens.Length; i++) vocab[tokens[i]] = i;
        return new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = unk, ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = byteFallback, ["ignore_merges"] = false,
            ["vocab"] = vocab, ["merges"] = new JsonArray([.. merges.Select(m => (JsonNode)m)]),
        };
    }

    private static ITextTokenizer Load(JsonObject model, JsonNode? normalizer = null, JsonNode? preTokenizer = null,
        JsonArray? addedTokens = null) =>
        HfTokenizer.Load(WriteFolder(Skeleton(model, normalizer, preTokenizer, addedTokens: addedTokens)));

    /// <summary>
    /// normalizers/strip.rs: StripAccents filters <c>is_combining_mark</c>, General_Category Mark — Mc (Devanagari vowel
    /// sign I, U+093F) and Me (combining enclosing circle, U+20DD) as well as Mn. We removed only Mn. The JS port agrees.
    /// </summary>
    [Fact]
    public void Encode_StripAccents_RemovesSpacingAndEnclosingMarksToo()
    {
        var tokenizer = Load(Model(["<unk>", "a", "b"], [], unk: "<unk>"),
            normalizer: Parse("""{"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}"""));

        Assert.Equal([1, 2], tokenizer.Encode("a\u093Fb\u20DD\u0301", addSpecialTokens: false));
    }

    /// <summary>
    /// normalizer.rs <c>lowercase</c>: each char's <c>char::to_lowercase</c>, so U+0130 İ becomes "i" + U+0307 (its one
    /// unconditional one-to-many mapping) and a final Σ is σ, never ς (no context rule). We gave "i" alone.
    /// </summary>
    [Fact]
    public void Encode_Lowercase_DottedCapitalIBecomesTwoCharactersAndSigmaStaysMedial()
    {
        var tokenizer = Load(Model(["<unk>", "i", "\u0307", "σ", "ς"], [], unk: "<unk>"),
            normalizer: Parse("""{"type": "Lowercase"}"""));

        Assert.Equal([1, 2, 3], tokenizer.Encode("İΣ", addSpecialTokens: false));
    }

    /// <summary>
    /// models/bpe/model.rs builds the merge map with <c>collect</c> into a HashMap: a pair listed twice keeps its last
    /// rank. With "b c" at ranks 0 and 2 and "a b" at rank 1, "abc" merges "a b" first. We kept the first rank (a, bc).
    /// </summary>
    [Fact]
    public void Encode_PairListedTwiceInMerges_UsesItsLastRank()
    {
        var tokenizer = Load(Model(["a", "b", "c", "ab", "bc"], ["b c", "a b", "b c"]));

        Assert.Equal([3, 2], tokenizer.Encode("abc", addSpecialTokens: false));
    }

    /// <summary>
    /// models/bpe/mod.rs <c>convert_merges_to_hashmap</c> (used for string merges) skips a "#version" line, which does
    /// not take a rank. We rejected the file.
    /// </summary>
    [Fact]
    public void Load_MergesWithVersionHeaderLine_SkipsIt()
    {
        var tokenizer = Load(Model(["a", "b", "ab"], ["#version: 0.2", "a b"]));

        Assert.Equal([2], tokenizer.Encode("ab", addSpecialTokens: false));
    }

    /// <summary>
    /// models/bpe/model.rs <c>merge_word</c>: a pending unknown is pushed before the next character found in the vocab (or
    /// at the end); a character spelled with byte-fallback tokens does not push it. "é" (C3 A9, no &lt;0xA9&gt;) is unknown,
    /// "b" falls back to &lt;0x62&gt;, "a" is in the vocab: bytes of b, then unk, then a. We pushed the unk before the bytes.
    /// </summary>
    [Fact]
    public void Encode_UnknownThenByteFallbackCharacter_EmitsTheBytesBeforeThePendingUnknown()
    {
        var tokenizer = Load(Model(["<unk>", "a", "<0x62>", "<0xC3>"], [], unk: "<unk>", byteFallback: true));

        Assert.Equal([2, 0, 1], tokenizer.Encode("éba", addSpecialTokens: false));
    }

    /// <summary>
    /// tokenizer/serialization.rs + added_vocabulary.rs <c>add_tokens</c>: the file's added-token id is only checked
    /// (a warning); the id is the model vocab's for a content it has, else the next one from the vocab size. Here "&lt;x&gt;"
    /// says 7 and gets 3 (vocab of 3), "b" says 9 and gets 1. The JS port keeps the file's ids.
    /// </summary>
    [Fact]
    public void Encode_AddedTokenIdsDisagreeingWithTheVocab_GetTheIdsRustAssigns()
    {
        var tokenizer = Load(Model(["a", "b", "c"], []),
            addedTokens: [Added(7, "<x>"), Added(9, "b", special: false)]);

        Assert.Equal([0, 3, 1, 3], tokenizer.Encode("a<x>b<x>", addSpecialTokens: false));
        Assert.Equal("<x>", tokenizer.IdToToken(3));
    }

    /// <summary>
    /// added_vocabulary.rs checks single_word with the regex crate's <c>\w</c> (UTS #18 word: Alphabetic, marks, Nd, Pc,
    /// Join_Control). ZWJ (U+200D) and Ⓐ (So, but Other_Alphabetic) are word characters, so "&lt;x&gt;" right after them is
    /// not a single word and the text goes to the model. We matched it.
    /// </summary>
    [Theory]
    [InlineData("\u200D")]
    [InlineData("Ⓐ")]
    public void Encode_SingleWordTokenAfterJoinControlOrCircledLetter_IsNotMatched(string before)
    {
        var tokenizer = Load(Model(["<unk>", "<", "x", ">", "\u200D", "Ⓐ"], [], unk: "<unk>"),
            addedTokens: [Added(6, "<x>", singleWord: true)]);

        Assert.Equal([before == "Ⓐ" ? 5 : 4, 1, 2, 3], tokenizer.Encode(before + "<x>", addSpecialTokens: false));
        Assert.Equal([6], tokenizer.Encode("<x>", addSpecialTokens: false));
    }

    /// <summary>
    /// pre_tokenizers/whitespace.rs splits with Oniguruma <c>\w+|[^\w\s]+</c>; Oniguruma's Unicode <c>\w</c> (CR_Word in
    /// its unicode_property_data.c: Alphabetic + Mark + Nd + Pc) takes Nl (Ⅻ) and the Other_Alphabetic symbols (ⓐ, 🅰)
    /// besides letters. So each of these texts is one word and merges whole. We split them off as punctuation.
    /// </summary>
    [Theory]
    [InlineData("aⓐ")]
    [InlineData("a🅰")]
    [InlineData("aⅫ")]
    public void Encode_WhitespacePreTokenizerWordWithOnigurumaWordCharacters_StaysOneWord(string word)
    {
        string second = word[1..];
        string[] tokens = ["<unk>", word[..1], second, word];
        var tokenizer = Load(Model(tokens, [$"{word[..1]} {second}"], unk: "<unk>"),
            preTokenizer: Parse("""{"type": "Whitespace"}"""));

        Assert.Equal([3], tokenizer.Encode(word, addSpecialTokens: false));
    }
}
