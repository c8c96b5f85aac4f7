using System.Text.Json;
using System.Text.Json.Nodes;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

public sealed class PreTokenizerTests
{
    // The pre-tokenizer of Meta-Llama-3's tokenizer.json, verbatim.
    private const string Llama3PreTokenizer = """
        {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
           "behavior": "Isolated", "invert": false},
          {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}
        """;

    // Expected splits derived by hand from the regex (leftmost alternative that matches, backtracking as Oniguruma does).
    public static TheoryData<string, string[]> Llama3Cases() => new()
    {
        // Contractions match case-insensitively and split off the word; a digit run splits in threes.
        { "I'M don't 1234567", ["I", "'M", " don", "'t", " ", "123", "456", "7"] },
        // A space before a digit is its own piece; "\s*[\r\n]+" takes the spaces and newlines up to the last newline;
        // "\s+(?!\S)" leaves the last space of a run for the next word; a tab joins the letter after it.
        { " x  \n\n  y\tz   ", [" x", "  \n\n", " ", " y", "\tz", "   "] },
        // Punctuation keeps trailing newlines; WE'RE splits like we're.
        { "Hello, world!\nWE'RE they've", ["Hello", ",", " world", "!\n", "WE", "'RE", " they", "'ve"] },
        // Supplementary-plane letters are letters (𝐀 is U+1D400), emoji are symbols; CJK is letters, digits still by three.
        { "a𝐀b 😀 2024年", ["a𝐀b", " 😀", " ", "202", "4", "年"] },
        { "\r\n\r\n", ["\r\n\r\n"] },
    };

    [Theory]
    [MemberData(nameof(Llama3Cases))]
    public void PreTokenize_Llama3Regex_SplitsAsTheRegexSays(string text, string[] expected)
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor(Llama3PreTokenizer))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece(text, AtStart: true), pieces);

        Assert.Equal(expected.Select(ByteLevel), pieces.Select(p => p.Text));
    }

    [Theory]
    [MemberData(nameof(Llama3Cases))]
    public void Encode_Llama3StyleTokenizer_GivesOneIdPerExpectedPiece(string text, string[] expected)
    {
        // ignore_merges + every expected piece in the vocabulary: a word found whole maps to its own id, so the ids
        // show exactly where the pre-tokenizer cut.
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteChar((byte)b)] = b;
        var pieceIds = new Dictionary<string, int>();
        foreach (string piece in Llama3Cases().SelectMany(c => (string[])c[1]).Distinct())
        {
            pieceIds[piece] = 256 + pieceIds.Count;
            vocab[ByteLevel(piece)] = pieceIds[piece];
        }
        var model = new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = true,
            ["vocab"] = vocab, ["merges"] = new JsonArray(),
        };
        var json = Skeleton(model, preTokenizer: Parse(Llama3PreTokenizer),
            decoder: Parse("""{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"""));
        var tokenizer = HfTokenizer.Load(WriteFolder(json));

        var ids = tokenizer.Encode(text);

        Assert.Equal(expected.Select(p => pieceIds[p]), ids);
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    // GPT-4o (o200k) style: case-aware word pieces with optional contractions, as in its tokenizer.json.
    private const string O200kPattern =
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
        @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
        @"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    [Theory]
    // "Hello" ends where an upper-case letter starts; the contraction stays on its word.
    [InlineData("HelloWorld's", new[] { "Hello", "World's" })]
    // All caps: the first alternative needs a lower-case letter, the second takes the run.
    [InlineData("CAPS word", new[] { "CAPS", " word" })]
    // One non-letter may lead a word (".b"); punctuation keeps a trailing newline or slash; digits go by three.
    [InlineData("a.b/\n12345", new[] { "a", ".b", "/\n", "123", "45" })]
    public void PreTokenize_O200kRegex_SplitsAsTheRegexSays(string text, string[] expected)
    {
        var split = new JsonObject
        {
            ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = O200kPattern }, ["behavior"] = "Isolated", ["invert"] = false,
        };
        var preTokenizer = PreTokenizer.FromJson(Cursor(split.ToJsonString()))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece(text, AtStart: true), pieces);

        Assert.Equal(expected, pieces.Select(p => p.Text));
    }

    [Fact]
    public void PreTokenize_Gpt2ByteLevelWithPrefixSpace_AddsOneSpaceAndSplitsLikeGpt2()
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor("""{"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}"""))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("Hello  world's 42", AtStart: true), pieces);

        Assert.Equal(new[] { " Hello", " ", " world", "'s", " 42" }.Select(ByteLevel), pieces.Select(p => p.Text));
    }

    [Theory]
    [InlineData("Removed", new[] { "a", "b", "c" })]
    [InlineData("Isolated", new[] { "a", "-", "b", "--", "c" })]
    [InlineData("MergedWithPrevious", new[] { "a-", "b--", "c" })]
    [InlineData("MergedWithNext", new[] { "a", "-b", "--c" })]
    [InlineData("Contiguous", new[] { "a", "-", "b", "--", "c" })]
    public void PreTokenize_SplitBehaviors_MatchHuggingFaceSemantics(string behavior, string[] expected)
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor($$"""{"type": "Split", "pattern": {"Regex": "-+"}, "behavior": "{{behavior}}", "invert": false}"""))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("a-b--c", AtStart: true), pieces);

        Assert.Equal(expected, pieces.Select(p => p.Text));
    }

    [Fact]
    public void PreTokenize_ContiguousWithSingleCharMatches_MergesNeighbouringMatches()
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor("""{"type": "Split", "pattern": {"String": "-"}, "behavior": "Contiguous", "invert": false}"""))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("a--b-", AtStart: true), pieces);

        Assert.Equal(["a", "--", "b", "-"], pieces.Select(p => p.Text));
    }

    [Fact]
    public void PreTokenize_DigitsIndividually_IsolatesEachDigit()
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor("""{"type": "Digits", "individual_digits": true}"""))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("ab123c", AtStart: true), pieces);

        Assert.Equal(["ab", "1", "2", "3", "c"], pieces.Select(p => p.Text));
    }

    [Fact]
    public void PreTokenize_Whitespace_KeepsWordRunsAndPunctuationRuns()
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor("""{"type": "Whitespace"}"""))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("Hello, world!?  näive", AtStart: true), pieces);

        Assert.Equal(["Hello", ",", "world", "!?", "näive"], pieces.Select(p => p.Text));
    }

    [Fact]
    public void PreTokenize_MetaspaceFirst_PrependsOnlyAtTheStartOfTheInput()
    {
        var preTokenizer = PreTokenizer.FromJson(Cursor("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"""))!;
        var first = new List<Piece>();
        var later = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("Hey friend", AtStart: true), first);
        preTokenizer.PreTokenize(new Piece("Hey friend", AtStart: false), later);

        Assert.Equal(["▁Hey", "▁friend"], first.Select(p => p.Text));
        Assert.Equal(["Hey", "▁friend"], later.Select(p => p.Text));
    }

    [Fact]
    public void PreTokenize_MetaspaceMultipleSpaces_KeepsOneReplacementPerSpace()
    {
        // HF metaspace.rs test "multiple_spaces" (older files spell the scheme as add_prefix_space: true).
        var preTokenizer = PreTokenizer.FromJson(Cursor("""{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true}"""))!;
        var pieces = new List<Piece>();

        preTokenizer.PreTokenize(new Piece("Hey   friend!", AtStart: false), pieces);

        Assert.Equal(["▁Hey", "▁", "▁", "▁friend!"], pieces.Select(p => p.Text));
    }

    [Fact]
    public void FromJson_UnknownType_FailsNamingTheType()
    {
        var e = Assert.Throws<NotSupportedException>(() => PreTokenizer.FromJson(Cursor("""{"type": "UnicodeScripts"}""")));

        Assert.Contains("UnicodeScripts", e.Message, StringComparison.Ordinal);
        Assert.Contains("test.json", e.Message, StringComparison.Ordinal);
    }

    private static JsonCursor Cursor(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return new JsonCursor(doc.RootElement.Clone(), "test.json", "$.pre_tokenizer");
    }
}
