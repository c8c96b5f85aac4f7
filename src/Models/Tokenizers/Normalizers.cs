using System.Globalization;
using System.Text;

namespace PrefPipe.Models.Tokenizers;

/// <summary>A tokenizer.json normalizer: rewrites the text of a piece before pre-tokenization.</summary>
internal abstract class Normalizer
{
    public abstract string Normalize(string text);

    public static Normalizer? FromJson(JsonCursor? node)
    {
        if (node is null) return null;
        var n = node.Value;
        string type = n.TypeName();
        return type switch
        {
            "Sequence" => new SequenceNormalizer(n.Required("normalizers").Items().Select(x => FromJson(x)!).ToArray()),
            "NFC" => new UnicodeFormNormalizer(NormalizationForm.FormC),
            "NFD" => new UnicodeFormNormalizer(NormalizationForm.FormD),
            "NFKC" => new UnicodeFormNormalizer(NormalizationForm.FormKC),
            "NFKD" => new UnicodeFormNormalizer(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseNormalizer(),
            "Prepend" => new PrependNormalizer(n.Required("prepend").String()),
            "Replace" => new ReplaceNormalizer(Pattern.FromJson(n.Required("pattern")), n.Required("content").String()),
            "Strip" => new StripNormalizer(n.OptionalBool("strip_left", true), n.OptionalBool("strip_right", true)),
            "StripAccents" => new StripAccentsNormalizer(),
            _ => throw new NotSupportedException(
                $"{n.File}: '{n.Path}.type' is \"{type}\"; supported normalizers: Sequence, NFC, NFD, NFKC, NFKD, " +
                "Lowercase, Prepend, Replace, Strip, StripAccents."),
        };
    }
}

internal sealed class SequenceNormalizer(Normalizer[] normalizers) : Normalizer
{
    public override string Normalize(string text)
    {
        foreach (var n in normalizers) text = n.Normalize(text);
        return text;
    }
}

internal sealed class UnicodeFormNormalizer(NormalizationForm form) : Normalizer
{
    public override string Normalize(string text) => UnicodeNormalization.Normalize(text, form);
}

/// <summary>
/// Lower-cases each character on its own, as HF's <c>NormalizedString::lowercase</c> (Rust's <c>char::to_lowercase</c>):
/// the Unicode lowercase mapping including its one unconditional one-to-many entry, U+0130 İ → "i\u0307", and without the
/// context-dependent final-sigma rule (Σ is always σ).
/// </summary>
internal sealed class LowercaseNormalizer : Normalizer
{
    public override string Normalize(string text)
    {
        if (text.AsSpan().IndexOfAnyInRange('A', 'Z') < 0 && Ascii.IsValid(text)) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            if (rune.Value == 0x130) sb.Append("i\u0307");
            else sb.Append(Rune.ToLowerInvariant(rune).ToString());
        }
        return sb.ToString();
    }
}

/// <summary>Prepends a string to non-empty pieces (SentencePiece's "▁").</summary>
internal sealed class PrependNormalizer(string prefix) : Normalizer
{
    public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class ReplaceNormalizer(Pattern pattern, string content) : Normalizer
{
    public override string Normalize(string text) => pattern.Replace(text, content);
}

internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override string Normalize(string text)
    {
        if (left) text = text.TrimStart();
        if (right) text = text.TrimEnd();
        return text;
    }
}

/// <summary>
/// Removes combining marks (meant to follow NFD/NFKD, as in HF): every character of General_Category Mark — Mn, Mc and Me,
/// as <c>unicode_normalization::char::is_combining_mark</c> that HF uses, so Devanagari vowel signs (Mc) go too.
/// </summary>
internal sealed class StripAccentsNormalizer : Normalizer
{
    public override string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
            if (Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                or UnicodeCategory.EnclosingMark))
                sb.Append(rune.ToString());
        return sb.ToString();
    }
}

/// <summary>A tokenizer.json pattern: <c>{"String": "…"}</c> (literal) or <c>{"Regex": "…"}</c> (Oniguruma).</summary>
internal sealed class Pattern
{
    private readonly CodePointRegex? _regex;
    private readonly string? _literal;
    [ThreadStatic] private static List<(int Start, int End)>? t_matches;

    private Pattern(string? literal, CodePointRegex? regex)
    {
        _literal = literal;
        _regex = regex;
    }

    public static Pattern FromRegex(string onigurumaPattern) => new(null, new CodePointRegex(onigurumaPattern));

    public static Pattern FromJson(JsonCursor node)
    {
        if (node.Optional("String") is { } s) return new Pattern(s.String(), null);
        if (node.Optional("Regex") is { } r)
        {
            try
            {
                return new Pattern(null, new CodePointRegex(r.String()));
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{r.File}: '{r.Path}': {e.Message}", e);
            }
        }
        throw node.Error("must be {\"String\": …} or {\"Regex\": …}");
    }

    /// <summary>Appends (start, end) of every non-overlapping match.</summary>
    public void Matches(string text, List<(int Start, int End)> output)
    {
        if (_regex is not null)
        {
            _regex.Matches(text, output);
            return;
        }
        if (_literal!.Length == 0) return;
        int at = 0;
        while ((at = text.IndexOf(_literal, at, StringComparison.Ordinal)) >= 0)
        {
            output.Add((at, at + _literal.Length));
            at += _literal.Length;
        }
    }

    public string Replace(string text, string content)
    {
        if (_regex is null) return _literal!.Length == 0 ? text : text.Replace(_literal, content, StringComparison.Ordinal);
        var matches = t_matches ??= [];
        matches.Clear();
        _regex.Matches(text, matches);
        if (matches.Count == 0) return text;
        var sb = new StringBuilder(text.Length);
        int last = 0;
        foreach (var (start, end) in matches)
        {
            sb.Append(text, last, start - last).Append(content);
            last = end;
        }
        return sb.Append(text, last, text.Length - last).ToString();
    }
}
