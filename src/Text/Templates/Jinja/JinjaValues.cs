using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Templates.Jinja;

// Template values are plain data: null (None), bool, long, double, string, List<object?> (list), JinjaTuple,
// JinjaDict (string keys, insertion order), plus the runtime-only kinds below. Nothing reflects into .NET objects.

/// <summary>Jinja's default <c>Undefined</c>: prints as "", is falsy, iterates as empty; using it further fails.</summary>
internal sealed class Undefined(string hint)
{
    /// <summary>What was looked up, as Jinja words it: <c>'x' is undefined</c> or <c>'dict object' has no attribute 'y'</c>.</summary>
    public string Hint { get; } = hint;
}

/// <summary>markupsafe's <c>Markup</c>, made by <c>|safe</c> and <c>|escape</c>: a string that escapes what is added to it.</summary>
internal sealed class JinjaMarkup(string value)
{
    public string Value { get; } = value;

    /// <summary>markupsafe's <c>escape</c>: Markup stays as is, anything else is HTML-escaped.</summary>
    public static string Escape(object? v)
    {
        if (v is JinjaMarkup m)
        {
            return m.Value;
        }

        var s = PyText.Str(v);
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            sb.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&#34;",
                '\'' => "&#39;",
                _ => c.ToString(),
            });
        }

        return sb.ToString();
    }
}

/// <summary>
/// A Python dict: insertion-ordered, keyed by any hashable value (str, int, float, bool, tuple) with Python's key
/// equality, so <c>{1: 'a'}[1.0]</c> and <c>{True: 'a'}[1]</c> find the entry as they do in jinja2.
/// </summary>
internal sealed class JinjaDict : OrderedDictionary<object, object?>
{
    public JinjaDict()
        : base(PyKeyComparer.Instance)
    {
    }

    /// <summary>The value as a dict key (Markup keys become their string); throws Python's error for unhashable values.</summary>
    public static object Key(object? key)
    {
        key = JinjaRuntime.Plain(key);
        if (!IsHashable(key))
        {
            throw new JinjaError($"unhashable type: '{JinjaRuntime.TypeName(key)}'");
        }

        return key!;
    }

    /// <summary>Whether a value can be a key here (None cannot: no chat template uses it and the store has no null key).</summary>
    public static bool IsHashable(object? key) => JinjaRuntime.Plain(key) switch
    {
        string or long or double or bool => true,
        JinjaTuple t => t.Items.All(IsHashable),
        _ => false,
    };
}

/// <summary>Python's dict-key equality and hashing: 1, 1.0 and True are one key; "1" is another.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => JinjaRuntime.Equals(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        string s => string.GetHashCode(s, StringComparison.Ordinal),
        long l => l.GetHashCode(),
        bool b => (b ? 1L : 0L).GetHashCode(),
        double d => Math.Floor(d) == d && Math.Abs(d) < 9.2e18 ? ((long)d).GetHashCode() : d.GetHashCode(),
        JinjaTuple t => t.Items.Aggregate(17, (h, item) => HashCode.Combine(h, item is null ? 0 : GetHashCode(item))),
        _ => throw new JinjaError($"unhashable type: '{JinjaRuntime.TypeName(obj)}'"),
    };
}

internal sealed class JinjaTuple(IReadOnlyList<object?> items)
{
    public IReadOnlyList<object?> Items { get; } = items;
}

/// <summary>The object <c>namespace(...)</c> returns: the one value a template may assign attributes to.</summary>
internal sealed class JinjaNamespace
{
    public JinjaDict Attributes { get; } = new();
}

/// <summary>A callable value: a builtin global, a bound method, or a macro.</summary>
internal sealed class JinjaCallable(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, int, object?> invoke,
    string? repr = null)
{
    public string Name { get; } = name;

    /// <summary>How Python prints it (<c>&lt;Macro 'name'&gt;</c> for macros).</summary>
    public string Repr { get; } = repr ?? $"<function {name}>";

    /// <summary>Calls it with positional args, keyword args and the call's source offset (for errors).</summary>
    public Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, int, object?> Invoke { get; } = invoke;
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopInfo(IReadOnlyList<object?> items)
{
    public IReadOnlyList<object?> Items { get; } = items;

    public int Index0 { get; set; }

    public object? Get(string name) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)Index0 + 1,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 < Items.Count - 1 ? Items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new JinjaCallable("loop.cycle", (args, _, _) =>
            args.Count == 0 ? throw new JinjaError("no items for cycling given") : args[Index0 % args.Count]),
        _ => new Undefined($"'LoopContext object' has no attribute '{name}'"),
    };
}

/// <summary>Python's text semantics where .NET's differ: whitespace, strip, repr, str, float formatting.</summary>
internal static class PyText
{
    public static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>Python's <c>str.isspace</c> for one UTF-16 unit.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    public static string Strip(string s, string? chars) => RStrip(LStrip(s, chars), chars);

    public static string LStrip(string s, string? chars)
    {
        int i = 0;
        while (i < s.Length && (chars is null ? IsSpace(s[i]) : chars.Contains(s[i], StringComparison.Ordinal)))
        {
            i++;
        }

        return s[i..];
    }

    public static string RStrip(string s, string? chars)
    {
        int j = s.Length;
        while (j > 0 && (chars is null ? IsSpace(s[j - 1]) : chars.Contains(s[j - 1], StringComparison.Ordinal)))
        {
            j--;
        }

        return s[..j];
    }

    /// <summary>Python's <c>str(x)</c>, as <c>{{ x }}</c> prints it.</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        string s => s,
        JinjaMarkup m => m.Value,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python's <c>repr(x)</c> (used inside printed lists and dicts).</summary>
    public static string Repr(object? v)
    {
        switch (v)
        {
            case string s:
                return StringRepr(s);
            case JinjaMarkup m:
                return "Markup(" + StringRepr(m.Value) + ")";
            case List<object?> list:
                return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case JinjaTuple t:
                return t.Items.Count == 1 ? "(" + Repr(t.Items[0]) + ",)" : "(" + string.Join(", ", t.Items.Select(Repr)) + ")";
            case JinjaDict d:
                return "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case JinjaNamespace ns:
                return "<Namespace " + Repr(ns.Attributes) + ">";
            case JinjaCallable c:
                return c.Repr;
            case LoopInfo:
                return "<LoopContext>";
            case Undefined:
                return "Undefined";
            default:
                return Str(v);
        }
    }

    private static string StringRepr(string s)
    {
        char quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2);
        sb.Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote)
                    {
                        sb.Append('\\').Append(c);
                    }
                    else if (c < 0x20 || c == 0x7f)
                    {
                        sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.Append(quote).ToString();
    }

    /// <summary>Python's <c>repr(float)</c>: shortest round-trip digits, exponent form below 1e-4 and from 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }

        string r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        int exp = 0;
        int e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exp = int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..e];
        }

        int point = r.IndexOf('.', StringComparison.Ordinal);
        string digits = point >= 0 ? r.Remove(point, 1) : r;
        int pointPos = (point >= 0 ? point : r.Length) + exp;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0')
        {
            lead++;
        }

        digits = digits[lead..];
        pointPos -= lead;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        int sciExp = pointPos - 1;
        var sb = new StringBuilder();
        if (d < 0)
        {
            sb.Append('-');
        }

        if (sciExp is >= -4 and < 16)
        {
            if (pointPos <= 0)
            {
                sb.Append("0.").Append('0', -pointPos).Append(digits);
            }
            else if (pointPos >= digits.Length)
            {
                sb.Append(digits).Append('0', pointPos - digits.Length).Append(".0");
            }
            else
            {
                sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
            }
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
            {
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            }

            sb.Append('e').Append(sciExp < 0 ? '-' : '+')
              .Append(Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    /// <summary>Code points of a string (Python indexes strings by code point, .NET by UTF-16 unit).</summary>
    public static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                result.Add(s[i].ToString());
            }
        }

        return result;
    }

    public static int Length(string s)
    {
        int n = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }

            n++;
        }

        return n;
    }
}
