using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Text.Tests.Tokenizers;

/// <summary>The cases of HF tokenizers' own added_vocabulary.rs tests, with their expected splits.</summary>
public sealed class AddedTokenMatcherTests
{
    private static AddedToken Token(int id, string content, bool singleWord = false, bool lstrip = false, bool rstrip = false) =>
        new(id, content, singleWord, lstrip, rstrip, Normalized: false, Special: false);

    private static List<(string Text, int? Id)> Split(AddedTokenMatcher matcher, string text) =>
        matcher.Split(text).Select(s => (text[s.Start..s.End], s.Token?.Id)).ToList();

    [Fact]
    public void Split_PlainTokens_CoversTheTextAndMarksTokens()
    {
        var matcher = new AddedTokenMatcher(new[] { Token(0, "my"), Token(1, "name"), Token(2, "[CLS]"), Token(3, "[SEP]") }
            .Select(t => (t.Content, t)));

        var split = Split(matcher, "[CLS] My name is Anthony [SEP]");

        Assert.Equal([("[CLS]", 2), (" My ", null), ("name", 1), (" is Anthony ", null), ("[SEP]", 3)], split);
    }

    [Fact]
    public void Split_LStripRStripAndSingleWord_FollowTheTokenOptions()
    {
        var matcher = new AddedTokenMatcher(new[]
        {
            Token(0, "my", lstrip: true, rstrip: true), Token(1, "name"), Token(2, "ony", singleWord: true),
            Token(3, "[CLS]"), Token(4, "[SEP]"),
        }.Select(t => (t.Content, t)));

        var split = Split(matcher, "[CLS] my name is anthony [SEP]");

        Assert.Equal([("[CLS]", 3), (" my ", 0), ("name", 1), (" is anthony ", null), ("[SEP]", 4)], split);
    }

    [Fact]
    public void Split_SingleWord_OnlyMatchesBetweenWordBoundaries()
    {
        var matcher = new AddedTokenMatcher([("<mask>", Token(0, "<mask>", singleWord: true))]);

        var split = Split(matcher, "<mask> my name <mask> a<mask> <mask>ony <mask>");

        Assert.Equal([("<mask>", 0), (" my name ", null), ("<mask>", 0), (" a<mask> <mask>ony ", null), ("<mask>", 0)], split);
    }

    [Fact]
    public void Split_SingleWordNextToMarks_TreatsCombiningMarksAsWordCharacters()
    {
        var matcher = new AddedTokenMatcher([("<mask>", Token(0, "<mask>", singleWord: true))]);

        var split = Split(matcher, "<mask>, <mask>- \u25cc\u0330<mask>");

        Assert.Equal([("<mask>", 0), (", ", null), ("<mask>", 0), ("- \u25cc\u0330<mask>", null)], split);
    }

    [Fact]
    public void Split_LStripOverUnicodeSpaces_NeverOverlapsThePreviousMatch()
    {
        var matcher = new AddedTokenMatcher([("<mask>", Token(0, "<mask>", singleWord: true, lstrip: true, rstrip: true))]);

        var split = Split(matcher, "hi <mask> there\t<mask>\t<mask>\u2000");

        Assert.Equal([("hi", null), (" <mask> ", 0), ("there", null), ("\t<mask>\t", 0), ("<mask>\u2000", 0)], split);
    }

    [Fact]
    public void Split_OverlappingCandidates_TakesLeftmostThenLongest()
    {
        var matcher = new AddedTokenMatcher(new[] { Token(0, "<|im"), Token(1, "<|im_start|>"), Token(2, "start") }
            .Select(t => (t.Content, t)));

        var split = Split(matcher, "x<|im_start|>start<|im");

        Assert.Equal([("x", null), ("<|im_start|>", 1), ("start", 2), ("<|im", 0)], split);
    }
}
