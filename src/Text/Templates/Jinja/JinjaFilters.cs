using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Templates.Jinja;

/// <summary>Jinja's builtin filters and tests that chat templates use; anything else fails naming the filter or test.</summary>
internal static class JinjaFilters
{
    private static object? Arg(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, int i, string name, object? dflt = null) =>
        i < args.Count ? args[i] : kwargs.TryGetValue(name, out var v) ? v : dflt;

    public static object? Apply(JinjaInterpreter? interp, string name, object? value, IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "safe":
                return value as JinjaMarkup ?? new JinjaMarkup(PyText.Str(value));
            case "escape" or "e":
                return new JinjaMarkup(JinjaMarkup.Escape(value));
        }

        value = JinjaRuntime.Plain(value);
        args = args.Select(JinjaRuntime.Plain).ToList();
        kwargs = kwargs.ToDictionary(kv => kv.Key, kv => JinjaRuntime.Plain(kv.Value), StringComparer.Ordinal);
        switch (name)
        {
            case "trim":
                return PyText.Strip(PyText.Str(value), Arg(args, kwargs, 0, "chars") as string);
            case "tojson":
                {
                    if (value is Undefined u)
                    {
                        throw JinjaRuntime.UndefinedError(u);
                    }

                    var indent = Arg(args, kwargs, 0, "indent") switch
                    {
                        null => null,
                        long n => new string(' ', (int)Math.Max(0, n)),
                        string text => text,
                        var other => throw new JinjaError($"tojson indent must be an integer or a string, not {JinjaRuntime.TypeName(other)}"),
                    };
                    (string Item, string Key)? separators = Arg(args, kwargs, 2, "separators") switch
                    {
                        null => null,
                        JinjaTuple { Items: [string item, string key] } => (item, key),
                        List<object?> and [string item, string key] => (item, key),
                        var other => throw new JinjaError($"tojson separators must be a pair of strings, not {JinjaRuntime.TypeName(other)}"),
                    };
                    return PyJson.Dumps(value, indent, JinjaRuntime.Truthy(Arg(args, kwargs, 3, "sort_keys", false)), separators);
                }

            case "length" or "count":
                return JinjaRuntime.Length(value);
            case "upper":
                return PyText.Str(value).ToUpperInvariant();
            case "lower":
                return PyText.Str(value).ToLowerInvariant();
            case "title":
                return JinjaMethods.JinjaTitle(PyText.Str(value));
            case "capitalize":
                return JinjaMethods.Capitalize(PyText.Str(value));
            case "replace":
                return JinjaMethods.Replace(PyText.Str(value), Arg(args, kwargs, 0, "old"), Arg(args, kwargs, 1, "new"), Arg(args, kwargs, 2, "count"));
            case "default" or "d":
                {
                    bool boolean = JinjaRuntime.Truthy(Arg(args, kwargs, 1, "boolean", false));
                    return value is Undefined || (boolean && !JinjaRuntime.Truthy(value)) ? Arg(args, kwargs, 0, "default_value", "") : value;
                }

            case "join":
                {
                    var sep = PyText.Str(Arg(args, kwargs, 0, "d", ""));
                    var attribute = Arg(args, kwargs, 1, "attribute");
                    var items = JinjaRuntime.Iterate(value);
                    return string.Join(sep, items.Select(i => PyText.Str(attribute is null ? i : Attribute(i, attribute))));
                }

            case "first":
                {
                    var items = JinjaRuntime.Iterate(value);
                    return items.Count > 0 ? items[0] : new Undefined("No first item, sequence was empty.");
                }

            case "last":
                {
                    var items = JinjaRuntime.Iterate(value);
                    return items.Count > 0 ? items[^1] : new Undefined("No last item, sequence was empty.");
                }

            case "string":
                return PyText.Str(value);
            case "int":
                return ToInt(value, Arg(args, kwargs, 0, "default", 0L));
            case "float":
                return ToFloat(value, Arg(args, kwargs, 0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    bool b => b ? 1L : 0L,
                    _ => throw new JinjaError($"bad operand type for abs(): '{JinjaRuntime.TypeName(value)}'"),
                };
            case "items":
                return value switch
                {
                    Undefined => new List<object?>(),
                    JinjaDict d => d.Select(kv => (object?)new JinjaTuple([kv.Key, kv.Value])).ToList(),
                    _ => throw new JinjaError($"Can only get item pairs from a mapping, not {JinjaRuntime.TypeName(value)}"),
                };
            case "list":
                return JinjaRuntime.Iterate(value).ToList();
            case "reverse":
                return value is string s ? string.Concat(Enumerable.Reverse(PyText.CodePoints(s))) : Enumerable.Reverse(JinjaRuntime.Iterate(value)).ToList();
            case "dictsort":
                {
                    // jinja2's do_dictsort(value, case_sensitive=False, by='key', reverse=False): the (key, value) pairs,
                    // ordered by key or value; strings compare lower-cased unless case_sensitive.
                    if (value is not JinjaDict d)
                    {
                        throw value is Undefined u ? JinjaRuntime.UndefinedError(u)
                            : new JinjaError($"'{JinjaRuntime.TypeName(value)}' object has no attribute 'items'");
                    }

                    bool caseSensitive = JinjaRuntime.Truthy(Arg(args, kwargs, 0, "case_sensitive", false));
                    int pos = Arg(args, kwargs, 1, "by", "key") switch
                    {
                        "key" => 0,
                        "value" => 1,
                        _ => throw new JinjaError("You can only sort by either \"key\" or \"value\""),
                    };
                    bool reverse = JinjaRuntime.Truthy(Arg(args, kwargs, 2, "reverse", false));
                    var pairs = d.Select(kv => (object?)new JinjaTuple([kv.Key, kv.Value])).ToList();
                    return JinjaRuntime.SortStable(pairs, p => CaseKey(((JinjaTuple)p!).Items[pos], caseSensitive), reverse);
                }

            case "sort":
                {
                    // jinja2's do_sort(value, reverse=False, case_sensitive=False, attribute=None): Python's stable sorted().
                    bool reverse = JinjaRuntime.Truthy(Arg(args, kwargs, 0, "reverse", false));
                    bool caseSensitive = JinjaRuntime.Truthy(Arg(args, kwargs, 1, "case_sensitive", false));
                    var attribute = Arg(args, kwargs, 2, "attribute");
                    var items = JinjaRuntime.Iterate(value).ToList();
                    if (attribute is null)
                    {
                        return JinjaRuntime.SortStable(items, x => CaseKey(x, caseSensitive), reverse);
                    }

                    var parts = attribute is string names ? names.Split(',').Select(n => (object?)n.Trim()).ToList() : [attribute];
                    return JinjaRuntime.SortStable(items, x => parts.Count == 1
                        ? CaseKey(Attribute(x, parts[0]), caseSensitive)
                        : parts.Select(a => CaseKey(Attribute(x, a), caseSensitive)).ToList(), reverse);
                }

            case "unique":
                {
                    var result = new List<object?>();
                    foreach (var item in JinjaRuntime.Iterate(value))
                    {
                        var key = item is string str ? str.ToLowerInvariant() : item;
                        if (!result.Any(r => JinjaRuntime.Equals(r is string rs ? rs.ToLowerInvariant() : r, key)))
                        {
                            result.Add(item);
                        }
                    }

                    return result;
                }

            case "sum":
                {
                    var attribute = Arg(args, kwargs, 0, "attribute");
                    object? total = Arg(args, kwargs, 1, "start", 0L);
                    foreach (var item in JinjaRuntime.Iterate(value))
                    {
                        total = JinjaRuntime.Binary("+", total, attribute is null ? item : Attribute(item, attribute));
                    }

                    return total;
                }

            case "selectattr" or "rejectattr":
                {
                    if (!JinjaRuntime.Truthy(value))
                    {
                        return new List<object?>();
                    }

                    bool keep = name == "selectattr";
                    var attribute = Arg(args, kwargs, 0, "attr") ?? throw new JinjaError($"{name} needs an attribute name");
                    var result = new List<object?>();
                    foreach (var item in JinjaRuntime.Iterate(value))
                    {
                        var attr = Attribute(item, attribute);
                        bool ok = args.Count > 1
                            ? Test(PyText.Str(args[1]), attr, args.Skip(2).ToList())
                            : JinjaRuntime.Truthy(attr);
                        if (ok == keep)
                        {
                            result.Add(item);
                        }
                    }

                    return result;
                }

            case "select" or "reject":
                {
                    if (!JinjaRuntime.Truthy(value))
                    {
                        return new List<object?>();
                    }

                    bool keep = name == "select";
                    var result = new List<object?>();
                    foreach (var item in JinjaRuntime.Iterate(value))
                    {
                        bool ok = args.Count > 0 ? Test(PyText.Str(args[0]), item, args.Skip(1).ToList()) : JinjaRuntime.Truthy(item);
                        if (ok == keep)
                        {
                            result.Add(item);
                        }
                    }

                    return result;
                }

            case "map":
                {
                    if (!JinjaRuntime.Truthy(value))
                    {
                        return new List<object?>();
                    }

                    var items = JinjaRuntime.Iterate(value);
                    if (kwargs.TryGetValue("attribute", out var attribute))
                    {
                        bool hasDefault = kwargs.TryGetValue("default", out var dflt);
                        return items.Select(i =>
                        {
                            var a = Attribute(i, attribute!);
                            return a is Undefined && hasDefault ? dflt : a;
                        }).ToList();
                    }

                    if (args.Count == 0)
                    {
                        throw new JinjaError("map() needs a filter name or attribute=");
                    }

                    var filter = PyText.Str(args[0]);
                    var rest = args.Skip(1).ToList();
                    return items.Select(i => Apply(interp, filter, i, rest, new Dictionary<string, object?>())).ToList();
                }

            case "indent":
                {
                    var width = Arg(args, kwargs, 0, "width", 4L);
                    var pad = width is string ws ? ws : new string(' ', (int)(width is long l ? l : 4));
                    bool first = JinjaRuntime.Truthy(Arg(args, kwargs, 1, "first", false));
                    bool blank = JinjaRuntime.Truthy(Arg(args, kwargs, 2, "blank", false));
                    var lines = PyText.Str(value).Split('\n');
                    var sb = new StringBuilder();
                    for (int i = 0; i < lines.Length; i++)
                    {
                        if (i > 0)
                        {
                            sb.Append('\n');
                        }

                        bool indentThis = (i > 0 || first) && (blank || lines[i].Length > 0);
                        sb.Append(indentThis ? pad : "").Append(lines[i]);
                    }

                    return sb.ToString();
                }

            case "wordcount":
                return (long)PyText.Str(value).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            default:
                throw new JinjaError($"unsupported construct: filter '{name}'");
        }
    }

    /// <summary>Jinja's attribute getter for filters: item lookup, dotted paths and integer indexes allowed.</summary>
    private static object? CaseKey(object? v, bool caseSensitive) =>
        !caseSensitive && JinjaRuntime.Plain(v) is string s ? s.ToLowerInvariant() : JinjaRuntime.Plain(v);

    private static object? Attribute(object? item, object? attribute)
    {
        if (attribute is long index)
        {
            return JinjaRuntime.GetItem(item, index);
        }

        var current = item;
        foreach (var part in PyText.Str(attribute).Split('.'))
        {
            current = int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int i)
                ? JinjaRuntime.GetItem(current, (long)i)
                : JinjaRuntime.GetItem(current, part);
            if (current is Undefined)
            {
                return current;
            }
        }

        return current;
    }

    private static object? ToInt(object? value, object? dflt)
    {
        switch (value)
        {
            case long l:
                return l;
            case bool b:
                return b ? 1L : 0L;
            case double d:
                return double.IsFinite(d) ? (long)Math.Truncate(d) : dflt;
            case string s:
                var t = PyText.Strip(s, null).Replace("_", "", StringComparison.Ordinal);
                if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long parsed))
                {
                    return parsed;
                }

                return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && double.IsFinite(f)
                    ? (long)Math.Truncate(f)
                    : dflt;
            default:
                return dflt;
        }
    }

    private static object? ToFloat(object? value, object? dflt) => value switch
    {
        long l => (double)l,
        double d => d,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(PyText.Strip(s, null), NumberStyles.Float, CultureInfo.InvariantCulture, out double f) => f,
        _ => dflt,
    };

    public static bool Test(string name, object? value, IReadOnlyList<object?> args)
    {
        if (name == "string" && value is JinjaMarkup)
        {
            return true;
        }

        value = JinjaRuntime.Plain(value);
        args = args.Select(JinjaRuntime.Plain).ToList();
        object? A0() => args.Count > 0 ? args[0] : throw new JinjaError($"test '{name}' needs an argument");
        switch (name)
        {
            case "defined":
                return value is not Undefined;
            case "undefined":
                return value is Undefined;
            case "none":
                return value is null;
            case "boolean":
                return value is bool;
            case "true":
                return value is true;
            case "false":
                return value is false;
            case "integer":
                return value is long;
            case "float":
                return value is double;
            case "number":
                return value is long or double or bool;
            case "string":
                return value is string;
            case "mapping":
                return value is JinjaDict;
            case "iterable":
                return value is string or List<object?> or JinjaTuple or JinjaDict or Undefined;
            case "sequence":
                return value is string or List<object?> or JinjaTuple or JinjaDict;
            case "callable":
                return value is JinjaCallable;
            case "sameas":
                return ReferenceEquals(value, A0()) || (value is null && A0() is null) || (value is bool b && A0() is bool c && b == c);
            case "equalto" or "eq" or "==":
                return JinjaRuntime.Equals(value, A0());
            case "ne" or "!=":
                return !JinjaRuntime.Equals(value, A0());
            case "lt" or "lessthan" or "<":
                return JinjaRuntime.Compare(value, A0(), "<") < 0;
            case "le" or "<=":
                return JinjaRuntime.Compare(value, A0(), "<=") <= 0;
            case "gt" or "greaterthan" or ">":
                return JinjaRuntime.Compare(value, A0(), ">") > 0;
            case "ge" or ">=":
                return JinjaRuntime.Compare(value, A0(), ">=") >= 0;
            case "in":
                return JinjaRuntime.Contains(A0(), value);
            case "divisibleby":
                return JinjaRuntime.Equals(JinjaRuntime.Binary("%", value, A0()), 0L);
            case "odd":
                return JinjaRuntime.Equals(JinjaRuntime.Binary("%", value, 2L), 1L);
            case "even":
                return JinjaRuntime.Equals(JinjaRuntime.Binary("%", value, 2L), 0L);
            case "lower":
                return value is string ls && string.Equals(ls, ls.ToLowerInvariant(), StringComparison.Ordinal); // ordinal on purpose: a case-insensitive compare would always be true
            case "upper":
                return value is string us && string.Equals(us, us.ToUpperInvariant(), StringComparison.Ordinal);
            default:
                throw new JinjaError($"unsupported construct: test '{name}'");
        }
    }
}
