using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>One entry of tokenizer.json <c>added_tokens</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool LStrip, bool RStrip, bool Normalized, bool Special)
{
    public static AddedToken FromJson(JsonCursor n) => new(
        n.Required("id").Int(), n.Required("content").String(), n.OptionalBool("single_word", false),
        n.OptionalBool("lstrip", false), n.OptionalBool("rstrip", false), n.OptionalBool("normalized", !n.OptionalBool("special", false)),
        n.OptionalBool("special", false));
}

/// <summary>A span of the input: either text for the model or an added token already resolved to its id.</summary>
internal readonly record struct Segment(int Start, int End, AddedToken? Token);

/// <summary>
/// Finds added tokens in text before the model sees it, as HF's <c>AddedVocabulary</c> does: leftmost-longest
/// matching, then the token's single_word, lstrip and rstrip rules.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Pattern.Length > 0)
            .GroupBy(t => t.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Segments covering all of <paramref name="text"/>, with the matched added tokens.</summary>
    public List<Segment> Split(string text)
    {
        var segments = new List<Segment>();
        int startOffset = 0;
        int searchFrom = 0;
        while (FindLeftmostLongest(text, searchFrom, out int matchStart, out int matchEnd, out var token))
        {
            searchFrom = matchEnd;
            int start = matchStart, stop = matchEnd;
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !IsWordChar(text, start, before: true);
                bool stopSpace = stop == text.Length || !IsWordChar(text, stop, before: false);
                if (!startSpace || !stopSpace) continue;
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0 && TryRuneBefore(text, newStart, out var r) && Rune.IsWhiteSpace(r)) newStart -= r.Utf16SequenceLength;
                start = Math.Max(newStart, startOffset);
            }
            if (token.RStrip)
            {
                while (stop < text.Length && Rune.TryGetRuneAt(text, stop, out var r) && Rune.IsWhiteSpace(r)) stop += r.Utf16SequenceLength;
            }
            if (startOffset < start) segments.Add(new Segment(startOffset, start, null));
            segments.Add(new Segment(start, stop, token));
            startOffset = stop;
        }
        if (startOffset < text.Length) segments.Add(new Segment(startOffset, text.Length, null));
        return segments;
    }

    private bool FindLeftmostLongest(string text, int from, out int start, out int end, out AddedToken token)
    {
        for (int i = from; i < text.Length; i++)
        {
            if (!_byFirstChar.TryGetValue(text[i], out var candidates)) continue;
            foreach (var (pattern, t) in candidates)
            {
                if (text.AsSpan(i).StartsWith(pattern, StringComparison.Ordinal))
                {
                    start = i;
                    end = i + pattern.Length;
                    token = t;
                    return true;
                }
            }
        }
        start = end = 0;
        token = null!;
        return false;
    }

    /// <summary>
    /// Unicode <c>\w</c> (Rust regex): alphabetic (letters, Nl, Other_Alphabetic symbols such as Ⓐ), marks, decimal
    /// digits, connector punctuation and Join_Control (ZWNJ, ZWJ).
    /// </summary>
    private static bool IsWordChar(string text, int at, bool before)
    {
        Rune rune;
        if (before) { if (!TryRuneBefore(text, at, out rune)) return false; }
        else if (!Rune.TryGetRuneAt(text, at, out rune)) return false;
        if (rune.Value is 0x200C or 0x200D or >= 0x24B6 and <= 0x24E9 || CodePointRegex.IsSupplementaryAlphabeticSymbol(rune.Value))
            return true;
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
            or UnicodeCategory.LetterNumber or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;
    }

    private static bool TryRuneBefore(string text, int at, out Rune rune)
    {
        if (at >= 2 && char.IsLowSurrogate(text[at - 1]) && char.IsHighSurrogate(text[at - 2]))
            return Rune.TryGetRuneAt(text, at - 2, out rune);
        return Rune.TryGetRuneAt(text, at - 1, out rune);
    }
}
