using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

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
            "BertNormalizer" => BertNormalizer.FromJson(n),
            "Precompiled" => PrecompiledNormalizer.FromJson(n),
            _ => throw new NotSupportedException(
                $"{n.File}: '{n.Path}.type' is \"{type}\"; supported normalizers: Sequence, NFC, NFD, NFKC, NFKD, " +
                "Lowercase, Prepend, Replace, Strip, StripAccents, BertNormalizer, Precompiled."),
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

/// <summary>
/// HF <c>BertNormalizer</c> (normalizers/bert.rs), in its order: <c>clean_text</c> drops U+0000, U+FFFD and control
/// characters (Cc, Cf, Co except tab, newline and carriage return) and turns every whitespace into a space;
/// <c>handle_chinese_chars</c> puts spaces around CJK ideographs; <c>strip_accents</c> (null: as <c>lowercase</c>) is NFD
/// then dropping nonspacing marks (Mn only, unlike StripAccents); <c>lowercase</c> as <see cref="LowercaseNormalizer"/>.
/// </summary>
/// <remarks>
/// Categories come from .NET's Unicode tables, HF's from the <c>unicode_categories</c> crate, which can be older: a
/// character assigned or recategorized since then may be treated differently (none in the tests or the files checked).
/// </remarks>
internal sealed class BertNormalizer(bool cleanText, bool handleChineseChars, bool stripAccents, bool lowercase) : Normalizer
{
    private static readonly LowercaseNormalizer Lower = new();

    public static BertNormalizer FromJson(JsonCursor n)
    {
        bool lowercase = n.OptionalBool("lowercase", true);
        return new BertNormalizer(n.OptionalBool("clean_text", true), n.OptionalBool("handle_chinese_chars", true),
            n.Optional("strip_accents")?.Bool() ?? lowercase, lowercase);
    }

    public override string Normalize(string text)
    {
        if (cleanText || handleChineseChars)
        {
            var sb = new StringBuilder(text.Length + 8);
            foreach (var rune in text.EnumerateRunes())
            {
                var r = rune;
                if (cleanText)
                {
                    if (r.Value is 0 or 0xFFFD || IsControl(r)) continue;
                    if (IsWhitespace(r)) r = new Rune(' ');
                }
                if (handleChineseChars && IsChinese(r.Value)) sb.Append(' ').Append(r.ToString()).Append(' ');
                else sb.Append(r.ToString());
            }
            text = sb.ToString();
        }
        if (stripAccents)
        {
            string nfd = UnicodeNormalization.Normalize(text, NormalizationForm.FormD);
            var sb = new StringBuilder(nfd.Length);
            foreach (var rune in nfd.EnumerateRunes())
                if (Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark) sb.Append(rune.ToString());
            text = sb.ToString();
        }
        return lowercase ? Lower.Normalize(text) : text;
    }

    /// <summary>Rust <c>char::is_whitespace</c> (White_Space), which includes tab, newline and carriage return.</summary>
    private static bool IsWhitespace(Rune r) => Rune.IsWhiteSpace(r);

    /// <summary><c>unicode_categories</c>' <c>is_other</c>: Cc, Cf or Co; tab, newline and carriage return excepted.</summary>
    private static bool IsControl(Rune r) => r.Value is not ('\t' or '\n' or '\r')
        && Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.PrivateUse;

    /// <summary>The CJK blocks of <c>is_chinese_char</c> (not Hangul, Hiragana or Katakana).</summary>
    internal static bool IsChinese(int c) => c is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
        or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF
        or >= 0x2F800 and <= 0x2FA1F;
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
