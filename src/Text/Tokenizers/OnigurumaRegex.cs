using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// Translates the Oniguruma (Ruby syntax) patterns that tokenizer.json files carry into .NET patterns with the same
/// matches: possessive quantifiers become atomic groups, <c>\w</c> gets Oniguruma's Unicode meaning (marks included),
/// <c>\x{…}</c> and <c>\h</c> are rewritten, and <c>{n,m}+</c> keeps Ruby's "repeat the interval" meaning.
/// </summary>
internal static class OnigurumaRegex
{
    /// <summary>
    /// Oniguruma's Unicode <c>\w</c> (CR_Word: Alphabetic + Mark + Nd + Pc, no Join_Control): letters, Nl, and the
    /// Other_Alphabetic symbols such as circled letters Ⓐ–ⓩ besides marks, Nd and Pc. The supplementary Other_Alphabetic
    /// symbols (🄰, 🅐, 🅰 …) reach the regex as U+24B6 (see <see cref="CodePointRegex"/>).
    /// </summary>
    private const string WordClassBody = @"\p{L}\p{M}\p{Nd}\p{Pc}\p{Nl}\u24B6-\u24E9";

    private static readonly Dictionary<string, string> LongPropertyNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Letter"] = "L", ["Lowercase_Letter"] = "Ll", ["Uppercase_Letter"] = "Lu", ["Titlecase_Letter"] = "Lt",
        ["Modifier_Letter"] = "Lm", ["Other_Letter"] = "Lo", ["Mark"] = "M", ["Nonspacing_Mark"] = "Mn",
        ["Spacing_Mark"] = "Mc", ["Enclosing_Mark"] = "Me", ["Number"] = "N", ["Decimal_Number"] = "Nd",
        ["Letter_Number"] = "Nl", ["Other_Number"] = "No", ["Punctuation"] = "P", ["Symbol"] = "S",
        ["Separator"] = "Z", ["Space_Separator"] = "Zs", ["Other"] = "C", ["Control"] = "Cc", ["Format"] = "Cf",
        ["Digit"] = "Nd",
    };

    private static readonly HashSet<string> Categories = new(StringComparer.Ordinal)
    {
        "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Ps", "Pe",
        "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So", "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Cs", "Co", "Cn",
    };

    /// <summary>The .NET pattern for an Oniguruma pattern; throws <see cref="ArgumentException"/> naming what it cannot translate.</summary>
    public static string ToDotNet(string pattern)
    {
        int i = 0;
        string result = ParseAlternation(pattern, ref i, nested: false);
        if (i != pattern.Length) throw Unsupported(pattern, i, "unbalanced ')'");
        return result;
    }

    private static string ParseAlternation(string p, ref int i, bool nested)
    {
        var sb = new StringBuilder();
        string? atom = null;
        while (i < p.Length)
        {
            char c = p[i];
            if (c == ')')
            {
                if (!nested) throw Unsupported(p, i, "unbalanced ')'");
                break;
            }
            if (c == '|')
            {
                sb.Append(atom).Append('|');
                atom = null;
                i++;
                continue;
            }
            if (c is '*' or '+' or '?' || (c == '{' && IsInterval(p, i)))
            {
                if (atom is null) throw Unsupported(p, i, "quantifier without anything to repeat");
                int start = i;
                if (c == '{') i = p.IndexOf('}', i) + 1;
                else i++;
                string quantifier = p[start..i];
                if (i < p.Length && p[i] == '?')
                {
                    atom += quantifier + "?";
                    i++;
                }
                else if (i < p.Length && p[i] == '+')
                {
                    // Ruby syntax: a possessive ?+ *+ ++, but {n,m}+ repeats the interval.
                    atom = c == '{' ? $"(?:{atom}{quantifier})+" : $"(?>{atom}{quantifier})";
                    i++;
                }
                else
                {
                    atom += quantifier;
                }
                continue;
            }
            sb.Append(atom);
            atom = ParseAtom(p, ref i);
        }
        sb.Append(atom);
        return sb.ToString();
    }

    private static bool IsInterval(string p, int i)
    {
        int j = i + 1;
        int digitsBefore = 0;
        while (j < p.Length && char.IsAsciiDigit(p[j])) { j++; digitsBefore++; }
        if (j < p.Length && p[j] == ',')
        {
            j++;
            while (j < p.Length && char.IsAsciiDigit(p[j])) j++;
        }
        else if (digitsBefore == 0)
        {
            return false;
        }
        return j < p.Length && p[j] == '}' && (digitsBefore > 0 || p[j - 1] != ',');
    }

    private static string ParseAtom(string p, ref int i)
    {
        char c = p[i];
        switch (c)
        {
            case '(':
                return ParseGroup(p, ref i);
            case '[':
                return ParseClass(p, ref i);
            case '\\':
                return ParseEscape(p, ref i, inClass: false);
            default:
                if (char.IsSurrogate(c)) throw Unsupported(p, i, "a literal character outside the Basic Multilingual Plane");
                if (c == '{') { i++; return @"\{"; }
                i++;
                return c.ToString();
        }
    }

    private static string ParseGroup(string p, ref int i)
    {
        int start = i;
        i++; // (
        string prefix = "(";
        if (i < p.Length && p[i] == '?')
        {
            int j = i + 1;
            if (j >= p.Length) throw Unsupported(p, start, "unterminated group");
            char k = p[j];
            if (k is ':' or '=' or '!' or '>')
            {
                prefix = "(?" + k;
                i = j + 1;
            }
            else if (k == '<' && j + 1 < p.Length && p[j + 1] is '=' or '!')
            {
                prefix = "(?<" + p[j + 1];
                i = j + 2;
            }
            else if (k is '<' or '\'')
            {
                char close = k == '<' ? '>' : '\'';
                int end = p.IndexOf(close, j + 1);
                if (end < 0) throw Unsupported(p, start, "unterminated group name");
                prefix = "(?<" + p[(j + 1)..end] + ">";
                i = end + 1;
            }
            else if (char.IsAsciiLetter(k) || k == '-')
            {
                // Option groups: (?imx-imx) or (?imx-imx:subexp).
                int end = j;
                while (end < p.Length && (char.IsAsciiLetter(p[end]) || p[end] == '-')) end++;
                if (end >= p.Length) throw Unsupported(p, start, "unterminated option group");
                string options = p[j..end];
                foreach (char o in options)
                    if (o is not ('i' or 'm' or 'x' or '-')) throw Unsupported(p, start, $"option '{o}'");
                // Ruby's m is .NET's s (dot matches newline).
                options = options.Replace('m', 's');
                if (p[end] == ')')
                {
                    i = end + 1;
                    return "(?" + options + ")";
                }
                if (p[end] != ':') throw Unsupported(p, start, "option group");
                prefix = "(?" + options + ":";
                i = end + 1;
            }
            else
            {
                throw Unsupported(p, start, $"group kind '(?{k}'");
            }
        }
        string body = ParseAlternation(p, ref i, nested: true);
        if (i >= p.Length || p[i] != ')') throw Unsupported(p, start, "unterminated group");
        i++;
        return prefix + body + ")";
    }

    private static string ParseClass(string p, ref int i)
    {
        int start = i;
        var sb = new StringBuilder("[");
        i++;
        if (i < p.Length && p[i] == '^') { sb.Append('^'); i++; }
        if (i < p.Length && p[i] == ']') { sb.Append(@"\]"); i++; }
        while (i < p.Length && p[i] != ']')
        {
            char c = p[i];
            if (c == '\\') sb.Append(ParseEscape(p, ref i, inClass: true));
            else if (c == '[') throw Unsupported(p, i, "nested character classes and POSIX brackets");
            else if (c == '&' && i + 1 < p.Length && p[i + 1] == '&') throw Unsupported(p, i, "class intersection '&&'");
            else if (char.IsSurrogate(c)) throw Unsupported(p, i, "a literal character outside the Basic Multilingual Plane");
            else { sb.Append(c); i++; }
        }
        if (i >= p.Length) throw Unsupported(p, start, "unterminated character class");
        i++;
        return sb.Append(']').ToString();
    }

    private static string ParseEscape(string p, ref int i, bool inClass)
    {
        int start = i;
        if (i + 1 >= p.Length) throw Unsupported(p, i, "a trailing backslash");
        char c = p[i + 1];
        i += 2;
        switch (c)
        {
            case 'w':
                return inClass ? WordClassBody : "[" + WordClassBody + "]";
            case 'W':
                if (inClass) throw Unsupported(p, start, @"\W inside a character class");
                return "[^" + WordClassBody + "]";
            case 'h':
                return inClass ? "0-9a-fA-F" : "[0-9a-fA-F]";
            case 'H':
                if (inClass) throw Unsupported(p, start, @"\H inside a character class");
                return "[^0-9a-fA-F]";
            case 'x' when i < p.Length && p[i] == '{':
            {
                int end = p.IndexOf('}', i);
                if (end < 0) throw Unsupported(p, start, @"unterminated \x{…}");
                int code = int.Parse(p.AsSpan(i + 1, end - i - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (code > 0xFFFF) throw Unsupported(p, start, "a literal character outside the Basic Multilingual Plane");
                i = end + 1;
                return @"\u" + code.ToString("X4", CultureInfo.InvariantCulture);
            }
            case 'p' or 'P':
            {
                if (i >= p.Length || p[i] != '{') throw Unsupported(p, start, @"\p without {…}");
                int end = p.IndexOf('}', i);
                if (end < 0) throw Unsupported(p, start, @"unterminated \p{…}");
                string name = p[(i + 1)..end];
                i = end + 1;
                bool negate = c == 'P';
                if (name.StartsWith('^')) { negate = !negate; name = name[1..]; }
                if (!Categories.Contains(name))
                {
                    if (!LongPropertyNames.TryGetValue(name, out var shortName))
                        throw Unsupported(p, start, $"Unicode property '{name}' (general categories only)");
                    name = shortName;
                }
                return (negate ? @"\P{" : @"\p{") + name + "}";
            }
            case 'K' or 'R' or 'X' or 'g' or 'y' or 'Y' or 'O':
                throw Unsupported(p, start, $@"\{c}");
            default:
                return "\\" + c;
        }
    }

    private static ArgumentException Unsupported(string pattern, int at, string what) =>
        new($"cannot translate the regex {Quote(pattern)} at position {at.ToString(CultureInfo.InvariantCulture)}: {what} is not supported.");

    private static string Quote(string s) => "\"" + s.Replace("\n", "\\n", StringComparison.Ordinal).Replace("\r", "\\r", StringComparison.Ordinal) + "\"";
}

/// <summary>
/// A regex whose character classes and quantifiers see Unicode code points, as Oniguruma and Rust do, rather than
/// UTF-16 units: before matching, each supplementary character is replaced by one BMP stand-in of the same general
/// category, and match positions are mapped back.
/// </summary>
internal sealed class CodePointRegex
{
    private static readonly char[] StandIns = BuildStandIns();
    private readonly Regex _regex;

    public CodePointRegex(string onigurumaPattern)
    {
        Pattern = onigurumaPattern;
        _regex = new Regex(OnigurumaRegex.ToDotNet(onigurumaPattern),
            RegexOptions.Multiline | RegexOptions.CultureInvariant | RegexOptions.Compiled);
    }

    /// <summary>A regex for a literal string.</summary>
    public static CodePointRegex Literal(string text) => new(EscapeLiteral(text));

    public string Pattern { get; }

    /// <summary>Appends (start, end) of every non-overlapping match, in UTF-16 indices of <paramref name="s"/>.</summary>
    public void Matches(string s, List<(int Start, int End)> output)
    {
        if (s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in _regex.EnumerateMatches(s)) output.Add((m.Index, m.Index + m.Length));
            return;
        }
        var mapped = new char[s.Length];
        var origin = new int[s.Length + 1];
        int n = 0;
        for (int i = 0; i < s.Length; n++)
        {
            origin[n] = i;
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                int codePoint = char.ConvertToUtf32(s[i], s[i + 1]);
                // Squared, negative circled and negative squared Latin letters are So but Alphabetic (\w): stand in
                // with Ⓐ, which is both too.
                mapped[n] = IsSupplementaryAlphabeticSymbol(codePoint)
                    ? '\u24B6'
                    : StandIns[(int)CharUnicodeInfo.GetUnicodeCategory(codePoint)];
                i += 2;
            }
            else
            {
                mapped[n] = s[i];
                i++;
            }
        }
        origin[n] = s.Length;
        foreach (var m in _regex.EnumerateMatches(mapped.AsSpan(0, n)))
            output.Add((origin[m.Index], origin[m.Index + m.Length]));
    }

    /// <summary>The supplementary characters that are Other_Alphabetic but not letters or marks (So).</summary>
    internal static bool IsSupplementaryAlphabeticSymbol(int codePoint) => codePoint is >= 0x1F130 and <= 0x1F149
        or >= 0x1F150 and <= 0x1F169 or >= 0x1F170 and <= 0x1F189;

    private static string EscapeLiteral(string text)
    {
        var sb = new StringBuilder();
        foreach (var rune in text.EnumerateRunes())
        {
            if (rune.IsBmp) sb.Append(@"\u").Append(rune.Value.ToString("X4", CultureInfo.InvariantCulture));
            else throw new ArgumentException($"cannot match the literal \"{text}\": characters outside the Basic Multilingual Plane are not supported.");
        }
        return sb.ToString();
    }

    /// <summary>For each general category, the highest BMP character of that category (never ASCII).</summary>
    private static char[] BuildStandIns()
    {
        var standIns = new char[32];
        for (int c = 0xFFFF; c >= 0x80; c--)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            int category = (int)CharUnicodeInfo.GetUnicodeCategory(c);
            if (standIns[category] == '\0') standIns[category] = (char)c;
        }
        return standIns;
    }
}
