using System.Text;

namespace PrefPipe.Text.Templates.Jinja;

/// <summary>The Python methods templates call on strings, dicts and lists (read-only, as in Jinja's immutable sandbox).</summary>
internal static class JinjaMethods
{
    private static readonly HashSet<string> MutatingMethods =
    [
        "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update", "setdefault", "popitem",
        "__setitem__", "__delitem__",
    ];

    public static JinjaCallable? Bind(object? obj, string name)
    {
        if (obj is List<object?> or JinjaDict && MutatingMethods.Contains(name))
        {
            throw new JinjaError($"access to attribute '{name}' of '{JinjaRuntime.TypeName(obj)}' object is unsafe");
        }

        return obj switch
        {
            string s => BindString(s, name),
            JinjaDict d => BindDict(d, name),
            List<object?> l => BindList(l, name),
            _ => null,
        };
    }

    private static JinjaCallable Method(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> f) =>
        new(name, (args, kwargs, _) => f(args, kwargs));

    private static object? Arg(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs, int i, string name, object? dflt = null) =>
        i < args.Count ? args[i] : kwargs.TryGetValue(name, out var v) ? v : dflt;

    private static string? OptString(object? v, string method) => v switch
    {
        null => null,
        string s => s,
        _ => throw new JinjaError($"{method} arg must be None or str, not {JinjaRuntime.TypeName(v)}"),
    };

    private static JinjaCallable? BindString(string s, string name) => name switch
    {
        "strip" => Method("str.strip", (a, k) => PyText.Strip(s, OptString(Arg(a, k, 0, "chars"), "strip"))),
        "lstrip" => Method("str.lstrip", (a, k) => PyText.LStrip(s, OptString(Arg(a, k, 0, "chars"), "lstrip"))),
        "rstrip" => Method("str.rstrip", (a, k) => PyText.RStrip(s, OptString(Arg(a, k, 0, "chars"), "rstrip"))),
        "upper" => Method("str.upper", (_, _) => s.ToUpperInvariant()),
        "lower" => Method("str.lower", (_, _) => s.ToLowerInvariant()),
        "title" => Method("str.title", (_, _) => PyTitle(s)),
        "capitalize" => Method("str.capitalize", (_, _) => Capitalize(s)),
        "startswith" => Method("str.startswith", (a, k) => Affix(s, Arg(a, k, 0, "prefix"), prefix: true)),
        "endswith" => Method("str.endswith", (a, k) => Affix(s, Arg(a, k, 0, "suffix"), prefix: false)),
        "split" => Method("str.split", (a, k) => Split(s, OptString(Arg(a, k, 0, "sep"), "split"), Arg(a, k, 1, "maxsplit", -1L))),
        "splitlines" => Method("str.splitlines", (_, _) => SplitLines(s)),
        "replace" => Method("str.replace", (a, k) => Replace(s, Arg(a, k, 0, "old"), Arg(a, k, 1, "new"), Arg(a, k, 2, "count", -1L))),
        "find" => Method("str.find", (a, k) => Arg(a, k, 0, "sub") is string sub
            ? (s.IndexOf(sub, StringComparison.Ordinal) is var idx && idx >= 0 ? (long)PyText.Length(s[..idx]) : -1L)
            : throw new JinjaError("find() argument must be str")),
        "count" => Method("str.count", (a, k) => Arg(a, k, 0, "sub") is string sub ? (long)CountOf(s, sub) : throw new JinjaError("count() argument must be str")),
        "join" => Method("str.join", (a, k) => string.Join(s, JinjaRuntime.Iterate(Arg(a, k, 0, "iterable")).Select(x =>
            x as string ?? throw new JinjaError($"sequence item: expected str instance, {JinjaRuntime.TypeName(x)} found")))),
        "isdigit" => Method("str.isdigit", (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => Method("str.isalpha", (_, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isspace" => Method("str.isspace", (_, _) => s.Length > 0 && s.All(PyText.IsSpace)),
        "format" => throw new JinjaError("unsupported construct: str.format()"),
        _ => null,
    };

    private static JinjaCallable? BindDict(JinjaDict d, string name) => name switch
    {
        "items" => Method("dict.items", (_, _) => d.Select(kv => (object?)new JinjaTuple([kv.Key, kv.Value])).ToList()),
        "keys" => Method("dict.keys", (_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => Method("dict.values", (_, _) => d.Values.ToList()),
        "get" => Method("dict.get", (a, k) =>
            d.TryGetValue(JinjaDict.Key(Arg(a, k, 0, "key")), out var v) ? v : Arg(a, k, 1, "default")),
        "copy" => Method("dict.copy", (_, _) =>
        {
            var copy = new JinjaDict();
            foreach (var kv in d)
            {
                copy[kv.Key] = kv.Value;
            }

            return copy;
        }),
        _ => null,
    };

    private static JinjaCallable? BindList(List<object?> l, string name) => name switch
    {
        "index" => Method("list.index", (a, k) =>
        {
            var x = Arg(a, k, 0, "value");
            int i = l.FindIndex(y => JinjaRuntime.Equals(x, y));
            return i >= 0 ? (long)i : throw new JinjaError($"{PyText.Repr(x)} is not in list");
        }),
        "count" => Method("list.count", (a, k) => (long)l.Count(y => JinjaRuntime.Equals(Arg(a, k, 0, "value"), y))),
        "copy" => Method("list.copy", (_, _) => new List<object?>(l)),
        _ => null,
    };

    private static bool Affix(string s, object? arg, bool prefix)
    {
        IEnumerable<object?> candidates = arg switch
        {
            string one => [one],
            JinjaTuple t => t.Items,
            _ => throw new JinjaError($"{(prefix ? "startswith" : "endswith")} first arg must be str or a tuple of str, not {JinjaRuntime.TypeName(arg)}"),
        };
        return candidates.Any(c => c is string x && (prefix ? s.StartsWith(x, StringComparison.Ordinal) : s.EndsWith(x, StringComparison.Ordinal)));
    }

    private static List<object?> Split(string s, string? sep, object? maxsplitArg)
    {
        long maxsplit = maxsplitArg is long m ? m : throw new JinjaError("split() maxsplit must be an integer");
        var result = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && PyText.IsSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    break;
                }

                if (maxsplit >= 0 && result.Count == maxsplit)
                {
                    result.Add(PyText.RStrip(s[i..], null));
                    break;
                }

                int j = i;
                while (j < s.Length && !PyText.IsSpace(s[j]))
                {
                    j++;
                }

                result.Add(s[i..j]);
                i = j;
            }

            return result;
        }

        if (sep.Length == 0)
        {
            throw new JinjaError("empty separator");
        }

        int start = 0;
        while (maxsplit < 0 || result.Count < maxsplit)
        {
            int idx = s.IndexOf(sep, start, StringComparison.Ordinal);
            if (idx < 0)
            {
                break;
            }

            result.Add(s[start..idx]);
            start = idx + sep.Length;
        }

        result.Add(s[start..]);
        return result;
    }

    private static List<object?> SplitLines(string s)
    {
        var result = new List<object?>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                result.Add(s[start..i]);
                if (s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n')
                {
                    i++;
                }

                start = i + 1;
            }
        }

        if (start < s.Length)
        {
            result.Add(s[start..]);
        }

        return result;
    }

    public static string Replace(string s, object? oldArg, object? newArg, object? countArg)
    {
        if (oldArg is not string old || newArg is not string repl)
        {
            throw new JinjaError("replace() arguments must be str");
        }

        long count = countArg switch
        {
            null => -1,
            long c => c,
            _ => throw new JinjaError("replace() count must be an integer"),
        };
        if (count < 0)
        {
            return old.Length == 0 ? InsertEverywhere(s, repl) : s.Replace(old, repl, StringComparison.Ordinal);
        }

        var sb = new StringBuilder();
        int start = 0;
        for (long n = 0; n < count; n++)
        {
            int idx = s.IndexOf(old, start, StringComparison.Ordinal);
            if (idx < 0 || old.Length == 0)
            {
                break;
            }

            sb.Append(s, start, idx - start).Append(repl);
            start = idx + old.Length;
        }

        return sb.Append(s, start, s.Length - start).ToString();
    }

    private static string InsertEverywhere(string s, string repl)
    {
        var sb = new StringBuilder(repl);
        foreach (var cp in PyText.CodePoints(s))
        {
            sb.Append(cp).Append(repl);
        }

        return sb.ToString();
    }

    private static int CountOf(string s, string sub)
    {
        if (sub.Length == 0)
        {
            return PyText.Length(s) + 1;
        }

        int n = 0, i = 0;
        while ((i = s.IndexOf(sub, i, StringComparison.Ordinal)) >= 0)
        {
            n++;
            i += sub.Length;
        }

        return n;
    }

    public static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's <c>str.title()</c>: upper-case a letter after any non-letter (so "they're" becomes "They'Re").</summary>
    public static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            sb.Append(prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevCased = char.IsLetter(c);
        }

        return sb.ToString();
    }

    /// <summary>Jinja's <c>|title</c> filter: capitalises words split at whitespace, '-', and opening brackets.</summary>
    public static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool wordStart = true;
        foreach (char c in s)
        {
            bool separator = PyText.IsSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            sb.Append(separator ? c : wordStart ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            wordStart = separator;
        }

        return sb.ToString();
    }
}
