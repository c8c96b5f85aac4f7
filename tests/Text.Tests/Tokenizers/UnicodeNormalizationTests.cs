using System.Text;
using PrefPipe.Text.Tokenizers;
using static PrefPipe.Text.Tests.Tokenizers.TokenizerFixtures;

namespace PrefPipe.Text.Tests.Tokenizers;

public sealed class UnicodeNormalizationTests
{
    [Fact]
    public void Normalize_PythonUnicodedataCases_MatchAllFourForms()
    {
        // cases.json: 2,000+ strings (decomposable and combining characters, Hangul, random mark sequences) normalized by
        // Python's unicodedata (tests/fixtures/unicode-normalization/make_cases.py).
        using var doc = ReadJson(Path("unicode-normalization", "cases.json"));
        var cases = doc.RootElement.GetProperty("cases");
        int checkedCount = 0;

        foreach (var c in cases.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.Equal(c.GetProperty("nfc").GetString(), UnicodeNormalization.Normalize(text, NormalizationForm.FormC));
            Assert.Equal(c.GetProperty("nfd").GetString(), UnicodeNormalization.Normalize(text, NormalizationForm.FormD));
            Assert.Equal(c.GetProperty("nfkc").GetString(), UnicodeNormalization.Normalize(text, NormalizationForm.FormKC));
            Assert.Equal(c.GetProperty("nfkd").GetString(), UnicodeNormalization.Normalize(text, NormalizationForm.FormKD));
            checkedCount++;
        }

        Assert.True(checkedCount > 2000);
    }

    [Theory]
    [InlineData("cafe\u0301", "caf\u00e9")]
    [InlineData("\u1e0b\u0323", "\u1e0d\u0307")]
    [InlineData("\u1100\u1161\u11a8", "\uac01")]
    [InlineData("\u212b", "\u00c5")]
    public void Normalize_Nfc_ComposesAndReorders(string input, string expected)
    {
        Assert.Equal(expected, UnicodeNormalization.Normalize(input, NormalizationForm.FormC));
    }

    [Fact]
    public void Normalize_Nfkc_FoldsCompatibilityCharacters()
    {
        Assert.Equal("fi1 1\u20442", UnicodeNormalization.Normalize("\ufb01\u2460 \u00bd", NormalizationForm.FormKC));
    }
}
