using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Templates.Jinja;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

internal readonly record struct Token(TokenKind Kind, string Text, object? Value, int Offset)
{
    public override string ToString() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.Data => "template data",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.String => "string literal",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits a template into data and tag tokens the way Jinja2 does with <c>trim_blocks=True</c>,
/// <c>lstrip_blocks=True</c> and <c>keep_trailing_newline=False</c> (what transformers uses).
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{",
        "}", ",", ".", ":", "|", ";",
    ];

    private readonly string _s;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private JinjaLexer(string source) => _s = source;

    /// <summary>The source after Jinja's newline normalisation; token offsets refer to it.</summary>
    public static string Normalize(string source)
    {
        var s = source.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    public static List<Token> Tokenize(string normalizedSource)
    {
        var lexer = new JinjaLexer(normalizedSource);
        lexer.Run();
        return lexer._tokens;
    }

    private TemplateException Error(string message, int offset) => TemplateException.At(message, _s, offset);

    private void Run()
    {
        while (_pos < _s.Length)
        {
            int tag = FindTagStart(_pos);
            int dataStart = _pos;
            if (tag < 0)
            {
                Emit(TokenKind.Data, _s[_pos..], dataStart);
                _pos = _s.Length;
                break;
            }

            char kind = _s[tag + 1];
            char modifier = tag + 2 < _s.Length ? _s[tag + 2] : '\0';
            if (kind == '{' && modifier == '+')
            {
                modifier = '\0';
            }

            string data = _s[_pos..tag];
            if (modifier == '-')
            {
                data = PyText.RStrip(data, null);
            }
            else if (kind != '{' && modifier != '+')
            {
                // lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag.
                int lineStart = data.LastIndexOf('\n') + 1;
                bool lineStarting = dataStart == 0 || _s[dataStart - 1] == '\n';
                if ((lineStart > 0 || lineStarting) && IsSpacesAndTabs(data, lineStart))
                {
                    data = data[..lineStart];
                }
            }

            if (data.Length > 0)
            {
                Emit(TokenKind.Data, data, dataStart);
            }

            int inner = tag + 2 + (modifier is '-' or '+' ? 1 : 0);
            switch (kind)
            {
                case '#':
                    SkipComment(tag, inner);
                    break;
                case '{':
                    Emit(TokenKind.VariableBegin, "{{", tag);
                    _pos = inner;
                    LexTag(isBlock: false, tag);
                    break;
                default:
                    if (TryLexRaw(tag, inner))
                    {
                        break;
                    }

                    Emit(TokenKind.BlockBegin, "{%", tag);
                    _pos = inner;
                    LexTag(isBlock: true, tag);
                    break;
            }
        }

        _tokens.Add(new Token(TokenKind.Eof, "", null, _s.Length));
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i < _s.Length - 1; i++)
        {
            if (_s[i] == '{' && _s[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }

        return -1;
    }

    private static bool IsSpacesAndTabs(string s, int from)
    {
        for (int i = from; i < s.Length; i++)
        {
            if (s[i] is not (' ' or '\t'))
            {
                return false;
            }
        }

        return true;
    }

    private void Emit(TokenKind kind, string text, int offset, object? value = null) =>
        _tokens.Add(new Token(kind, text, value, offset));

    private void SkipComment(int tagStart, int inner)
    {
        int end = _s.IndexOf("#}", inner, StringComparison.Ordinal);
        if (end < 0)
        {
            throw Error("unterminated comment: '{#' has no matching '#}'", tagStart);
        }

        char before = end > inner ? _s[end - 1] : '\0';
        _pos = end + 2;
        ApplyTagEnd(before);
    }

    /// <summary>After a block/comment end: '-' strips all whitespace, '+' keeps it, otherwise trim_blocks drops one newline.</summary>
    private void ApplyTagEnd(char modifier, bool trimBlocks = true)
    {
        if (modifier == '-')
        {
            while (_pos < _s.Length && PyText.IsSpace(_s[_pos]))
            {
                _pos++;
            }
        }
        else if (modifier != '+' && trimBlocks && _pos < _s.Length && _s[_pos] == '\n')
        {
            _pos++;
        }
    }

    private bool TryLexRaw(int tagStart, int inner)
    {
        int p = inner;
        while (p < _s.Length && PyText.IsSpace(_s[p]))
        {
            p++;
        }

        if (string.CompareOrdinal(_s, p, "raw", 0, 3) != 0 || (p + 3 < _s.Length && PyText.IsNameChar(_s[p + 3])))
        {
            return false;
        }

        int close = MatchTagClose(p + 3, tagStart, "raw");
        int bodyStart = _pos;
        int search = bodyStart;
        while (true)
        {
            int next = _s.IndexOf("{%", search, StringComparison.Ordinal);
            if (next < 0)
            {
                throw Error("unterminated '{% raw %}' block: no '{% endraw %}'", tagStart);
            }

            int q = next + 2;
            char mod = q < _s.Length ? _s[q] : '\0';
            if (mod is '-' or '+')
            {
                q++;
            }

            while (q < _s.Length && PyText.IsSpace(_s[q]))
            {
                q++;
            }

            if (string.CompareOrdinal(_s, q, "endraw", 0, 6) == 0)
            {
                string body = _s[bodyStart..next];
                if (mod == '-')
                {
                    body = PyText.RStrip(body, null);
                }
                else if (mod != '+')
                {
                    int lineStart = body.LastIndexOf('\n') + 1;
                    if ((lineStart > 0 || bodyStart == 0 || _s[bodyStart - 1] == '\n') && IsSpacesAndTabs(body, lineStart))
                    {
                        body = body[..lineStart];
                    }
                }

                if (body.Length > 0)
                {
                    Emit(TokenKind.Data, body, bodyStart);
                }

                MatchTagClose(q + 6, next, "endraw");
                return true;
            }

            search = next + 2;
        }

        // Consumes whitespace and the closing '%}' of a raw/endraw tag, applying its whitespace modifier.
        int MatchTagClose(int from, int start, string name)
        {
            int r = from;
            while (r < _s.Length && PyText.IsSpace(_s[r]))
            {
                r++;
            }

            char m = '\0';
            if (r < _s.Length && _s[r] is '-' or '+')
            {
                m = _s[r];
                r++;
            }

            if (string.CompareOrdinal(_s, r, "%}", 0, 2) != 0)
            {
                throw Error($"expected '%}}' to close '{{% {name} %}}'", start);
            }

            _pos = r + 2;
            ApplyTagEnd(m);
            return _pos;
        }
    }

    private void LexTag(bool isBlock, int tagStart)
    {
        int depth = 0;
        while (true)
        {
            while (_pos < _s.Length && PyText.IsSpace(_s[_pos]))
            {
                _pos++;
            }

            if (_pos >= _s.Length)
            {
                throw Error(isBlock ? "unexpected end of template: '{%' has no matching '%}'"
                                    : "unexpected end of template: '{{' has no matching '}}'", tagStart);
            }

            if (depth == 0 && TryTagEnd(isBlock))
            {
                return;
            }

            char c = _s[_pos];
            int start = _pos;
            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (_pos < _s.Length && PyText.IsNameChar(_s[_pos]))
                {
                    _pos++;
                }

                Emit(TokenKind.Name, _s[start.._pos], start);
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber(start);
            }
            else if (c is '\'' or '"')
            {
                LexString(start, c);
            }
            else
            {
                string? op = null;
                foreach (var candidate in Operators)
                {
                    if (string.CompareOrdinal(_s, _pos, candidate, 0, candidate.Length) == 0)
                    {
                        op = candidate;
                        break;
                    }
                }

                if (op is null)
                {
                    throw Error($"unexpected character '{c}' in a template tag", start);
                }

                depth += op is "(" or "[" or "{" ? 1 : op is ")" or "]" or "}" ? -1 : 0;
                if (depth < 0)
                {
                    throw Error($"unexpected '{op}'", start);
                }

                _pos += op.Length;
                Emit(TokenKind.Operator, op, start);
            }
        }
    }

    private bool TryTagEnd(bool isBlock)
    {
        string close = isBlock ? "%}" : "}}";
        char m = _s[_pos];
        if (m is '-' or '+' && string.CompareOrdinal(_s, _pos + 1, close, 0, 2) == 0 && (isBlock || m == '-'))
        {
            Emit(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, close, _pos);
            _pos += 3;
            ApplyTagEnd(m, trimBlocks: isBlock);
            return true;
        }

        if (string.CompareOrdinal(_s, _pos, close, 0, 2) == 0)
        {
            Emit(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, close, _pos);
            _pos += 2;
            ApplyTagEnd('\0', trimBlocks: isBlock);
            return true;
        }

        return false;
    }

    private void LexNumber(int start)
    {
        bool isFloat = false;
        while (_pos < _s.Length && (char.IsAsciiDigit(_s[_pos]) || _s[_pos] == '_'))
        {
            _pos++;
        }

        if (_pos + 1 < _s.Length && _s[_pos] == '.' && char.IsAsciiDigit(_s[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            while (_pos < _s.Length && (char.IsAsciiDigit(_s[_pos]) || _s[_pos] == '_'))
            {
                _pos++;
            }
        }

        if (_pos < _s.Length && _s[_pos] is 'e' or 'E')
        {
            int save = _pos;
            _pos++;
            if (_pos < _s.Length && _s[_pos] is '+' or '-')
            {
                _pos++;
            }

            if (_pos < _s.Length && char.IsAsciiDigit(_s[_pos]))
            {
                isFloat = true;
                while (_pos < _s.Length && char.IsAsciiDigit(_s[_pos]))
                {
                    _pos++;
                }
            }
            else
            {
                _pos = save;
            }
        }

        string text = _s[start.._pos];
        string clean = text.Replace("_", "", StringComparison.Ordinal);
        if (isFloat)
        {
            Emit(TokenKind.Float, text, start, double.Parse(clean, NumberStyles.Float, CultureInfo.InvariantCulture));
        }
        else if (long.TryParse(clean, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
        {
            Emit(TokenKind.Integer, text, start, value);
        }
        else
        {
            throw Error($"integer literal {text} does not fit in 64 bits", start);
        }
    }

    private void LexString(int start, char quote)
    {
        var sb = new StringBuilder();
        _pos++;
        while (true)
        {
            if (_pos >= _s.Length)
            {
                throw Error("unterminated string literal", start);
            }

            char c = _s[_pos];
            if (c == quote)
            {
                _pos++;
                break;
            }

            if (c != '\\')
            {
                sb.Append(c);
                _pos++;
                continue;
            }

            if (_pos + 1 >= _s.Length)
            {
                throw Error("unterminated string literal", start);
            }

            char e = _s[_pos + 1];
            _pos += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': break;
                case 'x': sb.Append(ReadHex(2, start)); break;
                case 'u': sb.Append(ReadHex(4, start)); break;
                case 'U': sb.Append(ReadHex(8, start)); break;
                case >= '0' and <= '7':
                    {
                        int value = e - '0';
                        for (int k = 0; k < 2 && _pos < _s.Length && _s[_pos] is >= '0' and <= '7'; k++)
                        {
                            value = (value * 8) + (_s[_pos++] - '0');
                        }

                        sb.Append(char.ConvertFromUtf32(value));
                        break;
                    }

                case 'N':
                    throw Error("\\N{...} escapes in string literals are not supported", start);
                default:
                    // Python keeps unknown escapes as they are.
                    sb.Append('\\').Append(e);
                    break;
            }
        }

        Emit(TokenKind.String, _s[start.._pos], start, sb.ToString());
    }

    private string ReadHex(int digits, int start)
    {
        if (_pos + digits > _s.Length ||
            !int.TryParse(_s.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int cp))
        {
            throw Error($"truncated \\x/\\u escape in string literal (expected {digits} hex digits)", start);
        }

        _pos += digits;
        return char.ConvertFromUtf32(cp);
    }
}
