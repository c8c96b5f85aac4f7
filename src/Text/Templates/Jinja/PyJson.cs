using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Templates.Jinja;

/// <summary>
/// transformers' <c>tojson</c> filter: Python's <c>json.dumps(x, ensure_ascii=False, indent=indent)</c>.
/// Separators are ", " and ": " without indent, "," and ": " with it; non-ASCII text is kept as is.
/// </summary>
internal static class PyJson
{
    /// <param name="value">The value.</param>
    /// <param name="indent">Indent per level, or null for one line.</param>
    /// <param name="sortKeys">Sort object keys.</param>
    /// <param name="separators">Item and key separators; default (", ", ": ") without indent, (",", ": ") with it.</param>
    public static string Dumps(object? value, string? indent, bool sortKeys = false, (string Item, string Key)? separators = null)
    {
        var sb = new StringBuilder();
        Write(sb, value, indent, 0, sortKeys, separators ?? (indent is null ? ", " : ",", ": "));
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? v, string? indent, int level, bool sortKeys, (string Item, string Key) seps)
    {
        switch (v)
        {
            case null:
                sb.Append("null");
                break;
            case bool b:
                sb.Append(b ? "true" : "false");
                break;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity"
                    : double.IsNegativeInfinity(d) ? "-Infinity" : PyText.FloatRepr(d));
                break;
            case string s:
                WriteString(sb, s);
                break;
            case JinjaMarkup m:
                WriteString(sb, m.Value);
                break;
            case List<object?> list:
                WriteArray(sb, list, indent, level, sortKeys, seps);
                break;
            case JinjaTuple t:
                WriteArray(sb, t.Items, indent, level, sortKeys, seps);
                break;
            case JinjaDict dict:
                {
                    if (dict.Count == 0)
                    {
                        sb.Append("{}");
                        break;
                    }

                    // Python's json.dumps: sort_keys orders the keys themselves (mixed str/int keys fail as in Python);
                    // int, float and bool keys are written as their JSON text in quotes.
                    IEnumerable<KeyValuePair<object, object?>> entries = sortKeys
                        ? JinjaRuntime.SortStable(dict.Keys.ToList(), k => k, reverse: false).Select(k => new KeyValuePair<object, object?>(k!, dict[k!]))
                        : dict;
                    sb.Append('{');
                    bool first = true;
                    foreach (var kv in entries)
                    {
                        if (!first)
                        {
                            sb.Append(seps.Item);
                        }

                        first = false;
                        NewLine(sb, indent, level + 1);
                        WriteString(sb, KeyText(kv.Key));
                        sb.Append(seps.Key);
                        Write(sb, kv.Value, indent, level + 1, sortKeys, seps);
                    }

                    NewLine(sb, indent, level);
                    sb.Append('}');
                    break;
                }

            default:
                throw new JinjaError($"Object of type {JinjaRuntime.TypeName(v)} is not JSON serializable");
        }
    }

    private static void WriteArray(StringBuilder sb, IReadOnlyList<object?> items, string? indent, int level, bool sortKeys, (string Item, string Key) seps)
    {
        if (items.Count == 0)
        {
            sb.Append("[]");
            return;
        }

        sb.Append('[');
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(seps.Item);
            }

            NewLine(sb, indent, level + 1);
            Write(sb, items[i], indent, level + 1, sortKeys, seps);
        }

        NewLine(sb, indent, level);
        sb.Append(']');
    }

    private static void NewLine(StringBuilder sb, string? indent, int level)
    {
        if (indent is null)
        {
            return;
        }

        sb.Append('\n');
        for (int i = 0; i < level; i++)
        {
            sb.Append(indent);
        }
    }

    private static string KeyText(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity"
            : double.IsNegativeInfinity(d) ? "-Infinity" : PyText.FloatRepr(d),
        _ => throw new JinjaError($"keys must be str, int, float, bool or None, not {JinjaRuntime.TypeName(key)}"),
    };

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20)
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}

/// <summary>Python's <c>datetime.strftime</c> for the directives chat templates use (C locale, glibc's %-d style).</summary>
internal static class PyStrftime
{
    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

    private static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    public static string Format(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%' || i + 1 >= format.Length)
            {
                sb.Append(c);
                continue;
            }

            char d = format[++i];
            bool noPad = false;
            if (d == '-' && i + 1 < format.Length)
            {
                noPad = true;
                d = format[++i];
            }

            string Two(int n) => noPad ? n.ToString(CultureInfo.InvariantCulture) : n.ToString("00", CultureInfo.InvariantCulture);
            sb.Append(d switch
            {
                'a' => Days[(int)t.DayOfWeek][..3],
                'A' => Days[(int)t.DayOfWeek],
                'b' or 'h' => Months[t.Month - 1][..3],
                'B' => Months[t.Month - 1],
                'd' => Two(t.Day),
                'e' => t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'm' => Two(t.Month),
                'y' => Two(t.Year % 100),
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'H' => Two(t.Hour),
                'I' => Two(t.Hour % 12 == 0 ? 12 : t.Hour % 12),
                'M' => Two(t.Minute),
                'S' => Two(t.Second),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => noPad ? t.DayOfYear.ToString(CultureInfo.InvariantCulture) : t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture),
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'F' => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'T' => t.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new JinjaError($"strftime directive '%{d}' is not supported"),
            });
        }

        return sb.ToString();
    }
}
