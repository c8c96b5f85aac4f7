using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>
/// Unigram (SentencePiece: DeBERTa-v3, XLM-R, T5, ALBERT) on a hand-made 43-piece tokenizer.json in the HF layout
/// (fixtures/unigram/unigram-tokenizer.json: WhitespaceSplit + Metaspace, "$A &lt;/s&gt;" as T5, unk_id 2). Ids in
/// <see cref="Encode_UnigramPipeline_MatchesReference"/> come from the JavaScript port <c>@huggingface/tokenizers</c> 0.2.0
/// on the same file; the others are derived from the Rust source (models/unigram/model.rs, normalizers/precompiled.rs and
/// the <c>spm_precompiled</c> crate) where the JS port does not implement the behaviour, as each test says.
/// </summary>
public sealed class UnigramTests
{
    private const int Eos = 1, Unk = 2, Space = 3;

    private static string Fixture => Path("unigram", "unigram-tokenizer.json");

    private static JsonNode FixtureJson() => JsonNode.Parse(File.ReadAllText(Fixture))!;

    [Theory]
    [InlineData("the hello world", new[] { 4, 10, 13 })]
    // Best total score, not longest first: ▁un + believ + able (−5 −9 −6 = −20) beats ▁unbeliev + able (−14.5 −6).
    [InlineData("unbelievable", new[] { 20, 21, 22 })]
    [InlineData("The café is ab", new[] { Space, Unk, 6, 35, 42, 30 })] // "T" unknown: its own piece after "▁"
    [InlineData("hello, world!", new[] { 10, 34, 13, 32 })]
    [InlineData("xyz", new[] { Space, Unk })] // consecutive unknowns fuse into one
    [InlineData("helloxyzqq world", new[] { 10, Unk, 13 })]
    [InlineData("a  b   c", new[] { 28, Space, 25, Space, 31 })]
    [InlineData("abc", new[] { 30, 31 })]
    [InlineData("thee", new[] { 4, 8 })]
    [InlineData("is</s>", new[] { 42, Eos })]
    [InlineData("", new int[0])]
    public void Encode_UnigramPipeline_MatchesReference(string text, int[] expected)
    {
        var tokenizer = HfTokenizer.Load(Fixture);

        Assert.Equal(expected, tokenizer.Encode(text, addSpecialTokens: false));
        Assert.Equal([.. expected, Eos], tokenizer.Encode(text));
    }

    [Theory]
    [InlineData("the hello world", "the hello world")]
    [InlineData("hello, world!", "hello, world!")]
    [InlineData("helloxyzqq world", "hello world")]
    public void Decode_MetaspaceDecoder_RestoresSpacesAndSkipsSpecials(string text, string expected)
    {
        var tokenizer = HfTokenizer.Load(Fixture);

        Assert.Equal(expected, tokenizer.Decode(tokenizer.Encode(text), skipSpecialTokens: true));
    }

    /// <summary>
    /// model.rs <c>tokenize</c>: with byte_fallback an unknown (fused) span becomes its UTF-8 byte pieces when every one
    /// exists, else stays unknown. The JS port ignores byte_fallback for Unigram; expected ids follow the Rust source.
    /// </summary>
    [Fact]
    public void Encode_ByteFallback_UnknownSpanBecomesBytesWhenAllExist()
    {
        var json = FixtureJson();
        var vocab = json["model"]!["vocab"]!.AsArray();
        foreach (string b in new[] { "<0x78>", "<0x79>", "<0x7A>", "<0xC3>", "<0xBF>" }) vocab.Add(new JsonArray(b, -10.0));
        json["model"]!["byte_fallback"] = true;
        var tokenizer = HfTokenizer.Load(WriteFolder(json));

        Assert.Equal([Space, 43, 44, 45], tokenizer.Encode("xyz", addSpecialTokens: false));
        Assert.Equal([Space, Unk], tokenizer.Encode("xyq", addSpecialTokens: false)); // no <0x71>: all or nothing
        Assert.Equal([10, 46, 47], tokenizer.Encode("helloÿ", addSpecialTokens: false));
    }

    [Fact]
    public void Encode_NoUnkIdAndUncoveredCharacter_FailsNamingFileAndKey()
    {
        var json = FixtureJson();
        json["model"]!["unk_id"] = null;
        string folder = WriteFolder(json);
        var tokenizer = HfTokenizer.Load(folder);

        Assert.Equal([4], tokenizer.Encode("the", addSpecialTokens: false));
        var e = Assert.Throws<InvalidDataException>(() => tokenizer.Encode("xyz"));
        Assert.Contains(System.IO.Path.Combine(folder, "tokenizer.json"), e.Message, StringComparison.Ordinal);
        Assert.Contains("model.unk_id", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_UnkIdBeyondVocab_FailsNamingTheKey()
    {
        var json = FixtureJson();
        json["model"]!["unk_id"] = 43;

        var e = Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(WriteFolder(json)));

        Assert.Contains("$.model.unk_id", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A Precompiled normalizer from a charsmap built here in the darts-clone layout <c>spm_precompiled</c> reads (the
    /// same reader matched the T5 charsmap of a real tokenizer.json on 485 of 493 strings against the JS port, the rest
    /// being the JS port's NFKC approximation; see the commit). Rules: fullwidth Ａ → A, ﬁ → fi, ideographic space → " ".
    /// </summary>
    private static ITextTokenizer WithPrecompiled()
    {
        var json = FixtureJson();
        json["normalizer"] = new JsonObject
        {
            ["type"] = "Precompiled",
            ["precompiled_charsmap"] = Charsmap(("\uFF21", "A"), ("\uFB01", "fi"), ("\u3000", " ")),
        };
        var vocab = json["model"]!["vocab"]!.AsArray();
        vocab.Add(new JsonArray("A", -5.0)); // 43
        vocab.Add(new JsonArray("f", -5.0)); // 44
        vocab.Add(new JsonArray("\u0301", -5.0)); // 45
        return HfTokenizer.Load(WriteFolder(json));
    }

    [Fact]
    public void Encode_Precompiled_AppliesTheCharsmapRules()
    {
        var tokenizer = WithPrecompiled();

        Assert.Equal([Space, 43, 31], tokenizer.Encode("\uFF21c", addSpecialTokens: false)); // Ａc → Ac
        Assert.Equal([Space, 44, 40], tokenizer.Encode("\uFB01", addSpecialTokens: false)); // ﬁ → fi
        Assert.Equal([4, 10], tokenizer.Encode("the\u3000hello", addSpecialTokens: false)); // then split as a space
        Assert.Equal([Space, Unk], tokenizer.Encode("\uFF22", addSpecialTokens: false)); // no rule: Ｂ kept, unknown
    }

    /// <summary>
    /// precompiled.rs looks a grapheme cluster under 6 bytes up whole, and <c>transform</c> takes the first (shortest) key
    /// prefixing it: "Ａ" + U+0301 (5 bytes) becomes "A", the accent dropped. A cluster of 6 bytes or more goes character
    /// by character: "ﬁ" + U+0301 (3 + 2 bytes, one cluster) also hits the shortest-prefix rule, but "Ａ" + U+0301 + U+0301
    /// (7 bytes) keeps both accents. The JS port (NFKC) keeps them all; expected ids follow the Rust source.
    /// </summary>
    [Fact]
    public void Encode_Precompiled_ShortGraphemeTakesTheShortestPrefixRuleWhole()
    {
        var tokenizer = WithPrecompiled();

        Assert.Equal([Space, 43], tokenizer.Encode("\uFF21\u0301", addSpecialTokens: false));
        Assert.Equal([Space, 44, 40], tokenizer.Encode("\uFB01\u0301", addSpecialTokens: false));
        Assert.Equal([Space, 43, 45, 45], tokenizer.Encode("\uFF21\u0301\u0301", addSpecialTokens: false));
    }

    [Theory]
    [InlineData("not base64!")]
    [InlineData("AQAAAA==")] // declares a 1-byte trie: no unit
    public void Load_BadPrecompiledCharsmap_FailsNamingTheKey(string charsmap)
    {
        var json = FixtureJson();
        json["normalizer"] = new JsonObject { ["type"] = "Precompiled", ["precompiled_charsmap"] = charsmap };

        var e = Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(WriteFolder(json)));

        Assert.Contains("precompiled_charsmap", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A <c>precompiled_charsmap</c> in the layout <c>spm_precompiled</c> reads: u32 trie size in bytes, the darts-clone
    /// units, then the NUL-terminated replacements. Each trie node gets its own 256-aligned block, so a child with byte
    /// c sits at block ^ c and the node's value (a leaf unit, bit 31 set) at block ^ 0.
    /// </summary>
    private static string Charsmap(params (string Key, string Value)[] rules)
    {
        var pool = new List<byte>();
        var children = new List<Dictionary<byte, int>> { new() };
        var values = new List<int> { -1 };
        foreach (var (key, value) in rules)
        {
            int node = 0;
            foreach (byte b in Encoding.UTF8.GetBytes(key))
            {
                if (!children[node].TryGetValue(b, out int child))
                {
                    child = children.Count;
                    children.Add([]);
                    values.Add(-1);
                    children[node][b] = child;
                }
                node = child;
            }
            values[node] = pool.Count;
            pool.AddRange(Encoding.UTF8.GetBytes(value));
            pool.Add(0);
        }
        int Block(int node) => 256 * (node + 1);
        var units = new uint[256 * (children.Count + 1)];
        units[0] = (uint)Block(0) << 10; // the root: offset to its block
        for (int node = 0; node < children.Count; node++)
        {
            int block = Block(node);
            if (values[node] >= 0) units[block] = (1u << 31) | (uint)values[node];
            foreach (var (label, child) in children[node])
            {
                int position = block ^ label;
                uint offset = (uint)(position ^ Block(child));
                units[position] = label | (values[child] >= 0 ? 1u << 8 : 0) | (offset << 10);
            }
        }
        var blob = new byte[4 + units.Length * 4 + pool.Count];
        BinaryPrimitives.WriteUInt32LittleEndian(blob, (uint)units.Length * 4);
        for (int i = 0; i < units.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(4 + i * 4), units[i]);
        pool.CopyTo(blob, 4 + units.Length * 4);
        return Convert.ToBase64String(blob);
    }
}
