using System.Collections;
using System.Globalization;
using System.Text.Json;

namespace PrefPipe.Text.Templates.Jinja;

/// <summary>An error inside an operation; the interpreter adds the template position and rethrows it as <see cref="TemplateException"/>.</summary>
internal sealed class JinjaError : Exception
{
    public JinjaError()
    {
    }

    public JinjaError(string message)
        : base(message)
    {
    }

    public JinjaError(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>Python semantics of the value kinds: truth, equality, ordering, arithmetic, lookup, iteration.</summary>
internal static class JinjaRuntime
{
    /// <summary>The plain string inside a Markup value; any other value unchanged.</summary>
    public static object? Plain(object? v) => v is JinjaMarkup m ? m.Value : v;

    public static string TypeName(object? v) => v switch
    {
        JinjaMarkup => "Markup",
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        JinjaTuple => "tuple",
        JinjaDict => "dict",
        Undefined => "Undefined",
        JinjaNamespace => "Namespace",
        JinjaCallable => "function",
        LoopInfo => "LoopContext",
        _ => v.GetType().Name,
    };

    public static JinjaError UndefinedError(Undefined u) => new(u.Hint);

    public static bool Truthy(object? v) => Plain(v) switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        JinjaTuple t => t.Items.Count > 0,
        JinjaDict d => d.Count > 0,
        Undefined => false,
        _ => true,
    };

    private static bool IsNumber(object? v) => v is long or double or bool;

    private static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError($"expected a number, got {TypeName(v)}"),
    };

    private static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new JinjaError($"expected an integer, got {TypeName(v)}"),
    };

    public static new bool Equals(object? a, object? b)
    {
        a = Plain(a);
        b = Plain(b);
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        }

        switch (a)
        {
            case null:
                return b is null;
            case string s:
                return b is string s2 && string.Equals(s, s2, StringComparison.Ordinal);
            case List<object?> l:
                return b is List<object?> m && SequenceEquals(l, m);
            case JinjaTuple t:
                return b is JinjaTuple u && SequenceEquals(t.Items, u.Items);
            case JinjaDict d:
                if (b is not JinjaDict e || d.Count != e.Count)
                {
                    return false;
                }

                foreach (var kv in d)
                {
                    if (!e.TryGetValue(kv.Key, out var other) || !Equals(kv.Value, other))
                    {
                        return false;
                    }
                }

                return true;
            case Undefined:
                return b is Undefined;
            default:
                return ReferenceEquals(a, b);
        }
    }

    private static bool SequenceEquals(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        for (int i = 0; i < a.Count; i++)
        {
            if (!Equals(a[i], b[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Python ordering; throws for types Python cannot order.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        a = Plain(a);
        b = Plain(b);
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        }

        if (a is string s && b is string t)
        {
            return string.CompareOrdinal(s, t);
        }

        IReadOnlyList<object?>? x = a is List<object?> la ? la : (a as JinjaTuple)?.Items;
        IReadOnlyList<object?>? y = b is List<object?> lb ? lb : (b as JinjaTuple)?.Items;
        if (x is not null && y is not null && a?.GetType() == b?.GetType())
        {
            for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
            {
                if (!Equals(x[i], y[i]))
                {
                    return Compare(x[i], y[i], op);
                }
            }

            return x.Count.CompareTo(y.Count);
        }

        if (a is Undefined ua)
        {
            throw UndefinedError(ua);
        }

        if (b is Undefined ub)
        {
            throw UndefinedError(ub);
        }

        throw new JinjaError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    /// <summary>
    /// Python's <c>sorted(items, key=key, reverse=reverse)</c>: stable both ways, and ordering errors (mixed types)
    /// surface as Python's TypeError text.
    /// </summary>
    public static List<object?> SortStable(IReadOnlyList<object?> items, Func<object?, object?> key, bool reverse)
    {
        var keyed = items.Select((item, index) => (Item: item, Key: key(item), Index: index)).ToList();
        try
        {
            keyed.Sort((a, b) =>
            {
                int c = Compare(a.Key, b.Key, "<");
                return c != 0 ? (reverse ? -c : c) : a.Index.CompareTo(b.Index);
            });
        }
        catch (InvalidOperationException e) when (e.InnerException is JinjaError inner)
        {
            // List.Sort wraps what the comparison throws; the template's error is the inner one.
            throw new JinjaError(inner.Message, inner);
        }

        return keyed.Select(x => x.Item).ToList();
    }

    public static bool Contains(object? container, object? item)
    {
        container = Plain(container);
        item = Plain(item);
        switch (container)
        {
            case string s:
                return item is string sub
                    ? s.Contains(sub, StringComparison.Ordinal)
                    : throw new JinjaError($"'in <string>' requires string as left operand, not {TypeName(item)}");
            case List<object?> l:
                return l.Any(x => Equals(x, item));
            case JinjaTuple t:
                return t.Items.Any(x => Equals(x, item));
            case JinjaDict d:
                return d.ContainsKey(JinjaDict.Key(item));
            case Undefined:
                return false;
            default:
                throw new JinjaError($"argument of type '{TypeName(container)}' is not iterable");
        }
    }

    public static object? Binary(string op, object? a, object? b)
    {
        if (op == "+" && (a is JinjaMarkup || b is JinjaMarkup) && Plain(a) is string && Plain(b) is string)
        {
            // markupsafe: Markup + str escapes the plain side (str + Markup too, through Markup.__radd__).
            return new JinjaMarkup(JinjaMarkup.Escape(a) + JinjaMarkup.Escape(b));
        }

        a = Plain(a);
        b = Plain(b);
        if (a is Undefined ua)
        {
            throw UndefinedError(ua);
        }

        if (b is Undefined ub)
        {
            throw UndefinedError(ub);
        }

        switch (op)
        {
            case "+":
                if (a is string s1 && b is string s2)
                {
                    return s1 + s2;
                }

                if (a is List<object?> l1 && b is List<object?> l2)
                {
                    return new List<object?>(l1.Concat(l2));
                }

                if (a is JinjaTuple t1 && b is JinjaTuple t2)
                {
                    return new JinjaTuple([.. t1.Items, .. t2.Items]);
                }

                break;
            case "*":
                if (a is string rs && b is long or bool)
                {
                    return string.Concat(Enumerable.Repeat(rs, (int)Math.Max(0, ToLong(b))));
                }

                if (b is string rs2 && a is long or bool)
                {
                    return string.Concat(Enumerable.Repeat(rs2, (int)Math.Max(0, ToLong(a))));
                }

                if (a is List<object?> rl && b is long or bool)
                {
                    var result = new List<object?>();
                    for (long i = 0; i < ToLong(b); i++)
                    {
                        result.AddRange(rl);
                    }

                    return result;
                }

                break;
            case "%":
                if (a is string)
                {
                    throw new JinjaError("unsupported construct: printf-style string formatting with '%'");
                }

                break;
        }

        if (!IsNumber(a) || !IsNumber(b))
        {
            throw new JinjaError($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
        }

        bool ints = a is not double && b is not double;
        switch (op)
        {
            case "+":
                return ints ? (object)checked(ToLong(a) + ToLong(b)) : ToDouble(a) + ToDouble(b);
            case "-":
                return ints ? (object)checked(ToLong(a) - ToLong(b)) : ToDouble(a) - ToDouble(b);
            case "*":
                return ints ? (object)checked(ToLong(a) * ToLong(b)) : ToDouble(a) * ToDouble(b);
            case "/":
                if (ToDouble(b) == 0)
                {
                    throw new JinjaError("division by zero");
                }

                return ToDouble(a) / ToDouble(b);
            case "//":
                if (ToDouble(b) == 0)
                {
                    throw new JinjaError("integer division or modulo by zero");
                }

                if (ints)
                {
                    long x = ToLong(a), y = ToLong(b);
                    long q = x / y;
                    return (object)((x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q);
                }

                return Math.Floor(ToDouble(a) / ToDouble(b));
            case "%":
                if (ToDouble(b) == 0)
                {
                    throw new JinjaError("integer division or modulo by zero");
                }

                if (ints)
                {
                    long x = ToLong(a), y = ToLong(b);
                    long r = x % y;
                    return (object)(r != 0 && ((r < 0) != (y < 0)) ? r + y : r);
                }
                else
                {
                    double x = ToDouble(a), y = ToDouble(b);
                    double r = x % y;
                    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
                }

            case "**":
                if (ints && ToLong(b) >= 0)
                {
                    long result = 1, bas = ToLong(a);
                    for (long i = 0; i < ToLong(b); i++)
                    {
                        result = checked(result * bas);
                    }

                    return result;
                }

                return Math.Pow(ToDouble(a), ToDouble(b));
            default:
                throw new JinjaError($"unknown operator '{op}'");
        }
    }

    public static object? Negate(object? v) => Plain(v) switch
    {
        long l => (object)(-l),
        double d => -d,
        bool b => b ? -1L : 0L,
        Undefined u => throw UndefinedError(u),
        _ => throw new JinjaError($"bad operand type for unary -: '{TypeName(v)}'"),
    };

    /// <summary>Items of an iterable as Python iterates them (dict: keys; str: code points; Undefined: nothing).</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => Plain(v) switch
    {
        List<object?> l => l,
        JinjaTuple t => t.Items,
        JinjaDict d => d.Keys.Cast<object?>().ToList(),
        string s => PyText.CodePoints(s).Cast<object?>().ToList(),
        Undefined => [],
        _ => throw new JinjaError($"'{TypeName(v)}' object is not iterable"),
    };

    public static long Length(object? v) => Plain(v) switch
    {
        string s => PyText.Length(s),
        List<object?> l => l.Count,
        JinjaTuple t => t.Items.Count,
        JinjaDict d => d.Count,
        JinjaNamespace ns => ns.Attributes.Count,
        Undefined => 0,
        _ => throw new JinjaError($"object of type '{TypeName(v)}' has no len()"),
    };

    /// <summary><c>obj[key]</c> (Jinja's getitem: item first, then attribute); missing gives Undefined.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        obj = Plain(obj);
        key = Plain(key);
        switch (obj)
        {
            case Undefined u:
                throw UndefinedError(u);
            case JinjaDict d when JinjaDict.IsHashable(key):
                return d.TryGetValue(key!, out var value) ? value
                    : key is string attr ? AttrOrUndefined(obj, attr)
                    : new Undefined($"'dict object' has no attribute {PyText.Repr(key)}");
            case List<object?> or JinjaTuple or string when key is long or bool:
                {
                    var items = obj is string s ? PyText.CodePoints(s).Cast<object?>().ToList() : Iterate(obj);
                    long i = key is bool b ? (b ? 1 : 0) : (long)key;
                    if (i < 0)
                    {
                        i += items.Count;
                    }

                    return i >= 0 && i < items.Count
                        ? items[(int)i]
                        : new Undefined($"{TypeName(obj)} object has no element {key}");
                }

            case JinjaNamespace ns when key is string k:
                return ns.Attributes.TryGetValue(k, out var nv) ? nv : new Undefined($"'Namespace object' has no attribute '{k}'");
            case LoopInfo loop when key is string k:
                return loop.Get(k);
            default:
                return key is string name ? AttrOrUndefined(obj, name) : new Undefined($"{TypeName(obj)} object has no element {PyText.Repr(key)}");
        }
    }

    /// <summary><c>obj.name</c> (Jinja's getattr: attribute, i.e. method, first, then item); missing gives Undefined.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        obj = Plain(obj);
        switch (obj)
        {
            case Undefined u:
                throw UndefinedError(u);
            case JinjaNamespace ns:
                return ns.Attributes.TryGetValue(name, out var nv) ? nv : new Undefined($"'Namespace object' has no attribute '{name}'");
            case LoopInfo loop:
                return loop.Get(name);
        }

        var method = JinjaMethods.Bind(obj, name);
        if (method is not null)
        {
            return method;
        }

        if (obj is JinjaDict d && d.TryGetValue(name, out var value))
        {
            return value;
        }

        return new Undefined($"'{TypeName(obj)} object' has no attribute '{name}'");
    }

    private static object? AttrOrUndefined(object? obj, string name) =>
        (object?)JinjaMethods.Bind(obj, name) ?? new Undefined($"'{TypeName(obj)} object' has no attribute '{name}'");

    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        obj = Plain(obj);
        if (obj is Undefined u)
        {
            throw UndefinedError(u);
        }

        long? S(object? v, string what) => v switch
        {
            null => null,
            long l => l,
            bool b => b ? 1 : 0,
            _ => throw new JinjaError($"slice {what} must be an integer or None, not {TypeName(v)}"),
        };

        long st = S(step, "step") ?? 1;
        if (st == 0)
        {
            throw new JinjaError("slice step cannot be zero");
        }

        IReadOnlyList<object?> items = obj switch
        {
            string s => PyText.CodePoints(s).Cast<object?>().ToList(),
            List<object?> l => l,
            JinjaTuple t => t.Items,
            _ => throw new JinjaError($"'{TypeName(obj)}' object is not subscriptable"),
        };

        long n = items.Count;
        long Clamp(long? v, long dflt, long lo, long hi)
        {
            if (v is null)
            {
                return dflt;
            }

            long x = v.Value < 0 ? v.Value + n : v.Value;
            return Math.Clamp(x, lo, hi);
        }

        var result = new List<object?>();
        if (st > 0)
        {
            long from = Clamp(S(start, "start"), 0, 0, n), to = Clamp(S(stop, "stop"), n, 0, n);
            for (long i = from; i < to; i += st)
            {
                result.Add(items[(int)i]);
            }
        }
        else
        {
            long from = Clamp(S(start, "start"), n - 1, -1, n - 1), to = Clamp(S(stop, "stop"), -1, -1, n - 1);
            for (long i = from; i > to; i += st)
            {
                result.Add(items[(int)i]);
            }
        }

        return obj switch
        {
            string => string.Concat(result.Cast<string>()),
            JinjaTuple => new JinjaTuple(result),
            _ => result,
        };
    }

    /// <summary>Converts a .NET value handed in by a caller into a template value; no reflection, known shapes only.</summary>
    public static object? FromDotNet(object? v, string path)
    {
        switch (v)
        {
            case null:
                return null;
            case string or bool or long or double:
                return v;
            case char c:
                return c.ToString();
            case int or short or sbyte or byte or ushort or uint:
                return Convert.ToInt64(v, CultureInfo.InvariantCulture);
            case ulong ul:
                return ul <= long.MaxValue ? (long)ul : throw new ArgumentException($"{path}: {ul} does not fit in a 64-bit integer");
            case float or decimal:
                return Convert.ToDouble(v, CultureInfo.InvariantCulture);
            case ChatMessage m:
                return new JinjaDict { ["role"] = m.Role, ["content"] = m.Content };
            case JsonElement e:
                return FromJson(e);
            case IEnumerable<KeyValuePair<string, object?>> pairs:
                {
                    var d = new JinjaDict();
                    foreach (var kv in pairs)
                    {
                        d[kv.Key] = FromDotNet(kv.Value, $"{path}.{kv.Key}");
                    }

                    return d;
                }

            case IDictionary dict:
                {
                    var d = new JinjaDict();
                    foreach (DictionaryEntry kv in dict)
                    {
                        if (kv.Key is not string key)
                        {
                            throw new ArgumentException($"{path}: dictionary keys must be strings, found {kv.Key?.GetType().Name ?? "null"}");
                        }

                        d[key] = FromDotNet(kv.Value, $"{path}.{key}");
                    }

                    return d;
                }

            case IEnumerable seq:
                {
                    var list = new List<object?>();
                    int i = 0;
                    foreach (var item in seq)
                    {
                        list.Add(FromDotNet(item, $"{path}[{i++}]"));
                    }

                    return list;
                }

            default:
                throw new ArgumentException(
                    $"{path}: a value of type {v.GetType().FullName} cannot be passed to a chat template " +
                    "(use null, bool, integers, floating point, string, lists, string-keyed dictionaries or JsonElement)");
        }
    }

    public static object? FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                {
                    var d = new JinjaDict();
                    foreach (var p in e.EnumerateObject())
                    {
                        d[p.Name] = FromJson(p.Value);
                    }

                    return d;
                }

            case JsonValueKind.Array:
                return e.EnumerateArray().Select(FromJson).ToList();
            case JsonValueKind.String:
                return e.GetString();
            case JsonValueKind.Number:
                {
                    // JSON "2.0" stays a float, as Python's json.loads keeps it.
                    var raw = e.GetRawText();
                    bool isFloat = raw.AsSpan().IndexOfAny(".eE") >= 0;
                    return !isFloat && e.TryGetInt64(out long l) ? (object)l : e.GetDouble();
                }
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            default:
                return null;
        }
    }
}
