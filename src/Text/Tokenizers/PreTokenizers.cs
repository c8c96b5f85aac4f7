using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>A piece of text on its way to the model; <paramref name="AtStart"/> when it begins at offset 0 of the input.</summary>
internal readonly record struct Piece(string Text, bool AtStart);

/// <summary>How a split keeps its delimiters (HF <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>A tokenizer.json pre-tokenizer: splits (and may rewrite) pieces into the words the model sees.</summary>
internal abstract class PreTokenizer
{
    /// <summary>Splits one piece, appending the non-empty results.</summary>
    public abstract void PreTokenize(Piece piece, List<Piece> output);

    public static PreTokenizer? FromJson(JsonCursor? node)
    {
        if (node is null) return null;
        var n = node.Value;
        string type = n.TypeName();
        return type switch
        {
            "Sequence" => new SequencePreTokenizer(n.Required("pretokenizers").Items().Select(x => FromJson(x)!).ToArray()),
            "Split" => new SplitPreTokenizer(Pattern.FromJson(n.Required("pattern")), ParseBehavior(n.Required("behavior")),
                n.OptionalBool("invert", false)),
            "ByteLevel" => new ByteLevelPreTokenizer(n.OptionalBool("add_prefix_space", true), n.OptionalBool("use_regex", true)),
            "Metaspace" => MetaspacePreTokenizer.FromJson(n),
            "Digits" => new CharSplitPreTokenizer(
                c => Rune.GetUnicodeCategory(c) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber,
                n.OptionalBool("individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous),
            "Punctuation" => new CharSplitPreTokenizer(IsPunctuation,
                n.Optional("behavior") is { } b ? ParseBehavior(b) : SplitBehavior.Isolated),
            "Whitespace" => new SplitPreTokenizer(Pattern.FromRegex(@"\w+|[^\w\s]+"), SplitBehavior.Removed, invert: true),
            "WhitespaceSplit" => new CharSplitPreTokenizer(Rune.IsWhiteSpace, SplitBehavior.Removed),
            "BertPreTokenizer" => new SequencePreTokenizer([
                new CharSplitPreTokenizer(Rune.IsWhiteSpace, SplitBehavior.Removed),
                new CharSplitPreTokenizer(IsBertPunctuation, SplitBehavior.Isolated)]),
            _ => throw new NotSupportedException(
                $"{n.File}: '{n.Path}.type' is \"{type}\"; supported pre-tokenizers: Sequence, Split, ByteLevel, Metaspace, " +
                "Digits, Punctuation, Whitespace, WhitespaceSplit, BertPreTokenizer."),
        };
    }

    internal static SplitBehavior ParseBehavior(JsonCursor node) => node.String() switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        _ => throw node.Error("must be one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous"),
    };

    /// <summary>
    /// HF <c>BertPreTokenizer</c>'s <c>is_bert_punc</c>: ASCII punctuation (symbols such as $ + &lt; = &gt; ^ ` | ~ included)
    /// or General_Category P*; the <c>Punctuation</c> pre-tokenizer uses the same test.
    /// </summary>
    private static bool IsBertPunctuation(Rune r) => IsPunctuation(r);

    private static bool IsPunctuation(Rune r) =>
        (r.IsAscii && char.IsAsciiLetterOrDigit((char)r.Value) is false && r.Value is > 0x20 and < 0x7F) ||
        Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    /// <summary>
    /// Cuts <paramref name="piece"/> at the given matches as HF's <c>NormalizedString::split</c> does, appending the
    /// non-empty parts.
    /// </summary>
    internal static void SplitByMatches(Piece piece, List<(int Start, int End)> matches, SplitBehavior behavior, bool invert, List<Piece> output)
    {
        string text = piece.Text;
        // Every span of the text, flagged as match or not.
        var spans = new List<(int Start, int End, bool IsMatch)>(matches.Count * 2 + 1);
        int prev = 0;
        foreach (var (start, end) in matches)
        {
            if (prev != start) spans.Add((prev, start, invert));
            spans.Add((start, end, !invert));
            prev = end;
        }
        if (prev != text.Length) spans.Add((prev, text.Length, invert));

        var parts = new List<(int Start, int End)>(spans.Count);
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var s in spans) if (!s.IsMatch) parts.Add((s.Start, s.End));
                break;
            case SplitBehavior.Isolated:
                foreach (var s in spans) parts.Add((s.Start, s.End));
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var s in spans)
                {
                    if (s.IsMatch && !previousMatch && parts.Count > 0) parts[^1] = (parts[^1].Start, s.End);
                    else parts.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.IsMatch && !previousMatch && parts.Count > 0) parts[^1] = (s.Start, parts[^1].End);
                    else parts.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                parts.Reverse();
                break;
            case SplitBehavior.Contiguous:
                foreach (var s in spans)
                {
                    if (s.IsMatch == previousMatch && parts.Count > 0) parts[^1] = (parts[^1].Start, s.End);
                    else parts.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
        }
        foreach (var (start, end) in parts)
            if (end > start) output.Add(new Piece(text[start..end], piece.AtStart && start == 0));
    }
}

internal sealed class SequencePreTokenizer(PreTokenizer[] steps) : PreTokenizer
{
    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var current = new List<Piece> { piece };
        var next = new List<Piece>();
        foreach (var step in steps)
        {
            next.Clear();
            foreach (var p in current) step.PreTokenize(p, next);
            (current, next) = (next, current);
        }
        output.AddRange(current);
    }
}

/// <summary>HF <c>Split</c>: a literal or regex pattern with a delimiter behavior.</summary>
internal sealed class SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    [ThreadStatic] private static List<(int Start, int End)>? t_matches;

    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var matches = t_matches ??= [];
        matches.Clear();
        pattern.Matches(piece.Text, matches);
        SplitByMatches(piece, matches, behavior, invert, output);
    }
}

/// <summary>Splits at characters a predicate selects (HF <c>Digits</c>, <c>Punctuation</c>, <c>WhitespaceSplit</c>).</summary>
internal sealed class CharSplitPreTokenizer(Func<Rune, bool> isDelimiter, SplitBehavior behavior) : PreTokenizer
{
    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        var matches = new List<(int Start, int End)>();
        int i = 0;
        foreach (var rune in piece.Text.EnumerateRunes())
        {
            if (isDelimiter(rune)) matches.Add((i, i + rune.Utf16SequenceLength));
            i += rune.Utf16SequenceLength;
        }
        SplitByMatches(piece, matches, behavior, invert: false, output);
    }
}

/// <summary>
/// HF <c>ByteLevel</c>: optional prefix space, the GPT-2 split regex, then every UTF-8 byte mapped to its printable
/// stand-in character.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private static readonly CodePointRegex Gpt2Regex = new(Gpt2Pattern);
    [ThreadStatic] private static List<(int Start, int End)>? t_matches;
    [ThreadStatic] private static List<Piece>? t_split;

    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        if (addPrefixSpace && !piece.Text.StartsWith(' ')) piece = piece with { Text = " " + piece.Text };
        if (!useRegex)
        {
            output.Add(piece with { Text = ByteLevelAlphabet.Encode(piece.Text) });
            return;
        }
        var matches = t_matches ??= [];
        matches.Clear();
        Gpt2Regex.Matches(piece.Text, matches);
        var split = t_split ??= [];
        split.Clear();
        SplitByMatches(piece, matches, SplitBehavior.Isolated, invert: false, split);
        foreach (var p in split) output.Add(p with { Text = ByteLevelAlphabet.Encode(p.Text) });
    }
}

/// <summary>HF <c>Metaspace</c>: spaces become the replacement character ("▁"), a prefix is added per the prepend scheme.</summary>
internal sealed class MetaspacePreTokenizer : PreTokenizer
{
    private readonly char _replacement;
    private readonly string _prependScheme;
    private readonly bool _split;

    private MetaspacePreTokenizer(char replacement, string prependScheme, bool split)
    {
        _replacement = replacement;
        _prependScheme = prependScheme;
        _split = split;
    }

    internal static MetaspacePreTokenizer FromJson(JsonCursor n)
    {
        var (replacement, scheme) = ReadReplacementAndScheme(n);
        return new MetaspacePreTokenizer(replacement, scheme, n.OptionalBool("split", true));
    }

    /// <summary>Reads <c>replacement</c> and <c>prepend_scheme</c> (or the older <c>add_prefix_space</c>).</summary>
    internal static (char Replacement, string Scheme) ReadReplacementAndScheme(JsonCursor n)
    {
        var replacementNode = n.Required("replacement");
        string replacement = replacementNode.String();
        if (replacement.Length != 1) throw replacementNode.Error("must be a single BMP character");
        string scheme;
        if (n.Optional("prepend_scheme") is { } s)
        {
            scheme = s.String();
            if (scheme is not ("always" or "first" or "never")) throw s.Error("must be \"always\", \"first\" or \"never\"");
        }
        else
        {
            scheme = n.OptionalBool("add_prefix_space", true) ? "always" : "never";
        }
        return (replacement[0], scheme);
    }

    public override void PreTokenize(Piece piece, List<Piece> output)
    {
        string text = piece.Text.Replace(' ', _replacement);
        bool prepend = _prependScheme switch
        {
            "always" => true,
            "first" => piece.AtStart,
            _ => false,
        };
        if (prepend && !text.StartsWith(_replacement)) text = _replacement + text;
        piece = piece with { Text = text };
        if (!_split)
        {
            if (text.Length > 0) output.Add(piece);
            return;
        }
        var matches = new List<(int Start, int End)>();
        for (int i = 0; i < text.Length; i++)
            if (text[i] == _replacement) matches.Add((i, i + 1));
        SplitByMatches(piece, matches, SplitBehavior.MergedWithNext, invert: false, output);
    }
}

/// <summary>GPT-2's reversible byte ↔ printable-character table.</summary>
internal static class ByteLevelAlphabet
{
    /// <summary>The character standing for each byte.</summary>
    public static readonly char[] ByteToChar = Build();

    /// <summary>The byte for each stand-in character (index = char), or -1.</summary>
    public static readonly short[] CharToByte = BuildReverse();

    public static string Encode(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (chars, b) =>
        {
            for (int i = 0; i < b.Length; i++) chars[i] = ByteToChar[b[i]];
        });
    }

    private static char[] Build()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + next++);
        }
        return map;
    }

    private static short[] BuildReverse()
    {
        var reverse = new short[324];
        Array.Fill(reverse, (short)-1);
        for (int b = 0; b < 256; b++) reverse[ByteToChar[b]] = (short)b;
        return reverse;
    }
}
