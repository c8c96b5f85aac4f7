using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Text.Tests.Tokenizers;

public sealed class OnigurumaRegexTests
{
    [Theory]
    [InlineData(@"\p{L}++", @"(?>\p{L}+)")]
    [InlineData(@"a?+b*+", @"(?>a?)(?>b*)")]
    [InlineData(@"\p{N}{1,3}+", @"(?:\p{N}{1,3})+")]
    [InlineData(@"\w+", @"[\p{L}\p{M}\p{Nd}\p{Pc}\p{Nl}\u24B6-\u24E9]+")]
    [InlineData(@"[^\w\s]", @"[^\p{L}\p{M}\p{Nd}\p{Pc}\p{Nl}\u24B6-\u24E9\s]")]
    [InlineData(@"\x{2581}", @"\u2581")]
    [InlineData(@"\p{^L}|\p{Letter}", @"\P{L}|\p{L}")]
    [InlineData(@"(?i:'s|'t)|\s+(?!\S)", @"(?i:'s|'t)|\s+(?!\S)")]
    public void ToDotNet_OnigurumaConstructs_TranslateToEquivalentPatterns(string oniguruma, string expected)
    {
        Assert.Equal(expected, OnigurumaRegex.ToDotNet(oniguruma));
    }

    [Theory]
    [InlineData(@"\p{Han}+")]
    [InlineData(@"[a-z&&[^aeiou]]")]
    [InlineData(@"a\Kb")]
    public void ToDotNet_UnsupportedConstruct_FailsNamingIt(string oniguruma)
    {
        var e = Assert.Throws<ArgumentException>(() => OnigurumaRegex.ToDotNet(oniguruma));

        Assert.Contains("cannot translate", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Matches_PossessiveQuantifier_DoesNotBacktrack()
    {
        // "a++a" can never match (the possessive run keeps every a); "a+a" matches.
        var possessive = new CodePointRegex("a++a");
        var greedy = new CodePointRegex("a+a");
        var matches = new List<(int Start, int End)>();

        possessive.Matches("aaaa", matches);
        Assert.Empty(matches);
        greedy.Matches("aaaa", matches);
        Assert.Equal([(0, 4)], matches);
    }

    [Fact]
    public void Matches_SupplementaryCharacters_CountAsOneCodePoint()
    {
        // U+1D7CE..U+1D7D0 are mathematical bold digits (Nd): three code points, six UTF-16 units, one {1,3} match.
        var regex = new CodePointRegex(@"\p{N}{1,3}");
        var matches = new List<(int Start, int End)>();

        regex.Matches("\U0001D7CE\U0001D7CF\U0001D7D0\U0001D7CE", matches);

        Assert.Equal([(0, 6), (6, 8)], matches);
    }
}
