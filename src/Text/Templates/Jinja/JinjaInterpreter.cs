using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Templates.Jinja;

/// <summary>A parsed template: renders with a set of variables, with Jinja2's semantics for the supported subset.</summary>
internal sealed class JinjaTemplate
{
    private readonly string _source;
    private readonly IReadOnlyList<Stmt> _body;

    private JinjaTemplate(string source, IReadOnlyList<Stmt> body)
    {
        _source = source;
        _body = body;
    }

    /// <summary>Parses a template; syntax errors and unsupported constructs fail here, with their position.</summary>
    public static JinjaTemplate Parse(string template)
    {
        var source = JinjaLexer.Normalize(template);
        return new JinjaTemplate(source, JinjaParser.Parse(source));
    }

    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime> now)
    {
        var interpreter = new JinjaInterpreter(_source, now);
        return interpreter.Render(_body, variables);
    }
}

internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
        {
            if (s._vars.TryGetValue(name, out value))
            {
                return true;
            }
        }

        value = null;
        return false;
    }

    public void Set(string name, object? value) => _vars[name] = value;
}

internal sealed class JinjaInterpreter
{
    private const int MaxRange = 100_000;
    private const int MaxMacroDepth = 200;

    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private readonly string _source;
    private readonly Func<DateTime> _now;
    private Scope _root = new(null);
    private int _macroDepth;

    public JinjaInterpreter(string source, Func<DateTime> now)
    {
        _source = source;
        _now = now;
    }

    public string Render(IReadOnlyList<Stmt> body, IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Scope(null);
        DefineGlobals(globals);
        foreach (var kv in variables)
        {
            globals.Set(kv.Key, kv.Value);
        }

        _root = new Scope(globals);
        var sb = new StringBuilder();
        var flow = Exec(body, _root, sb);
        return flow == Flow.Normal ? sb.ToString() : throw new TemplateException("'break' or 'continue' outside a loop");
    }

    private TemplateException Error(string message, int offset) => TemplateException.At(message, _source, offset);

    private void DefineGlobals(Scope g)
    {
        g.Set("raise_exception", new JinjaCallable("raise_exception", (args, _, offset) =>
            throw TemplateException.At(args.Count > 0 ? PyText.Str(args[0]) : "", _source, offset, raisedByTemplate: true)));
        g.Set("strftime_now", new JinjaCallable("strftime_now", (args, _, _) =>
            args.Count == 1 && args[0] is string fmt ? PyStrftime.Format(_now(), fmt) : throw new JinjaError("strftime_now(format) takes one string")));
        g.Set("range", new JinjaCallable("range", (args, _, _) => Range(args)));
        g.Set("namespace", new JinjaCallable("namespace", (args, kwargs, _) =>
        {
            var ns = new JinjaNamespace();
            foreach (var a in args)
            {
                if (a is not JinjaDict d)
                {
                    throw new JinjaError("namespace() positional arguments must be dicts");
                }

                foreach (var kv in d)
                {
                    ns.Attributes[kv.Key] = kv.Value;
                }
            }

            foreach (var kv in kwargs)
            {
                ns.Attributes[kv.Key] = kv.Value;
            }

            return ns;
        }));
        g.Set("dict", new JinjaCallable("dict", (args, kwargs, _) =>
        {
            var d = new JinjaDict();
            foreach (var kv in kwargs)
            {
                d[kv.Key] = kv.Value;
            }

            return args.Count == 0 ? d : throw new JinjaError("unsupported construct: dict() with positional arguments");
        }));
    }

    private static List<object?> Range(IReadOnlyList<object?> args)
    {
        long[] a = args.Select(x => x is long l ? l : x is bool b ? (b ? 1L : 0L)
            : throw new JinjaError($"'{JinjaRuntime.TypeName(x)}' object cannot be interpreted as an integer")).ToArray();
        (long start, long stop, long step) = a.Length switch
        {
            1 => (0L, a[0], 1L),
            2 => (a[0], a[1], 1L),
            3 => (a[0], a[1], a[2]),
            _ => throw new JinjaError("range expected 1 to 3 arguments"),
        };
        if (step == 0)
        {
            throw new JinjaError("range() arg 3 must not be zero");
        }

        var result = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            if (result.Count >= MaxRange)
            {
                throw new JinjaError($"range too big, maximum size for range is {MaxRange}");
            }

            result.Add(i);
        }

        return result;
    }

    // ---- statements ----

    private Flow Exec(IReadOnlyList<Stmt> body, Scope scope, StringBuilder output)
    {
        foreach (var stmt in body)
        {
            var flow = Exec(stmt, scope, output);
            if (flow != Flow.Normal)
            {
                return flow;
            }
        }

        return Flow.Normal;
    }

    private Flow Exec(Stmt stmt, Scope scope, StringBuilder output)
    {
        switch (stmt)
        {
            case DataStmt d:
                output.Append(d.Text);
                return Flow.Normal;
            case PrintStmt p:
                output.Append(PyText.Str(Eval(p.Value, scope)));
                return Flow.Normal;
            case IfStmt i:
                foreach (var (test, branch) in i.Branches)
                {
                    if (JinjaRuntime.Truthy(Eval(test, scope)))
                    {
                        return Exec(branch, scope, output);
                    }
                }

                return i.Else is null ? Flow.Normal : Exec(i.Else, scope, output);
            case ForStmt f:
                ExecFor(f, scope, output);
                return Flow.Normal;
            case SetStmt s:
                Assign(s.Target, Eval(s.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt sb:
                {
                    var captured = new StringBuilder();
                    Exec(sb.Body, scope, captured);
                    Assign(sb.Target, captured.ToString(), scope);
                    return Flow.Normal;
                }

            case MacroStmt m:
                scope.Set(m.Name, MakeMacro(m));
                return Flow.Normal;
            case CallBlockStmt cb:
                {
                    var caller = new JinjaCallable("caller", (args, kwargs, _) =>
                    {
                        var callerScope = new Scope(scope);
                        for (int i = 0; i < cb.CallerParams.Count; i++)
                        {
                            callerScope.Set(cb.CallerParams[i], i < args.Count ? args[i]
                                : kwargs.TryGetValue(cb.CallerParams[i], out var v) ? v
                                : new Undefined($"parameter '{cb.CallerParams[i]}' was not provided"));
                        }

                        var sb = new StringBuilder();
                        Exec(cb.Body, callerScope, sb);
                        return sb.ToString();
                    }, "<Macro anonymous>");
                    var callee = Eval(cb.Call.Callee, scope);
                    if (callee is not JinjaCallable macro)
                    {
                        throw Error($"'{{% call %}}' needs a macro, got {JinjaRuntime.TypeName(callee)}", cb.Call.Offset);
                    }

                    var (callArgs, callKwargs) = EvalArguments(cb.Call, scope);
                    callKwargs["caller"] = caller;
                    try
                    {
                        output.Append(PyText.Str(macro.Invoke(callArgs, callKwargs, cb.Call.Offset)));
                    }
                    catch (JinjaError e)
                    {
                        throw Error(e.Message, cb.Call.Offset);
                    }

                    return Flow.Normal;
                }

            case FilterBlockStmt fb:
                {
                    var captured = new StringBuilder();
                    Exec(fb.Body, scope, captured);
                    object? value = captured.ToString();
                    foreach (var f in fb.Filters)
                    {
                        var current = value;
                        value = Eval(f with { Value = new ConstExpr(f.Offset, current) }, scope);
                    }

                    output.Append(PyText.Str(value));
                    return Flow.Normal;
                }

            case GenerationStmt g:
                return Exec(g.Body, scope, output);
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
            default:
                throw Error($"unsupported statement {stmt.GetType().Name}", stmt.Offset);
        }
    }

    private void ExecFor(ForStmt f, Scope scope, StringBuilder output)
    {
        var iterValue = Eval(f.Iter, scope);
        IReadOnlyList<object?> items;
        try
        {
            items = JinjaRuntime.Iterate(iterValue);
        }
        catch (JinjaError e)
        {
            throw Error(e.Message, f.Iter.Offset);
        }

        if (f.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                var probe = new Scope(scope);
                Assign(f.Target, item, probe);
                if (JinjaRuntime.Truthy(Eval(f.Filter, probe)))
                {
                    kept.Add(item);
                }
            }

            items = kept;
        }

        if (items.Count == 0)
        {
            if (f.Else is not null)
            {
                Exec(f.Else, scope, output);
            }

            return;
        }

        var loop = new LoopInfo(items);
        for (int i = 0; i < items.Count; i++)
        {
            // Each iteration has its own scope: a 'set' inside the loop does not outlive the iteration (as in Jinja2).
            var iteration = new Scope(scope);
            loop.Index0 = i;
            iteration.Set("loop", loop);
            Assign(f.Target, items[i], iteration);
            if (Exec(f.Body, iteration, output) == Flow.Break)
            {
                break;
            }
        }
    }

    private void Assign(Target target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameTarget n:
                scope.Set(n.Name, value);
                break;
            case TupleTarget t:
                {
                    IReadOnlyList<object?> values;
                    try
                    {
                        values = JinjaRuntime.Iterate(value);
                    }
                    catch (JinjaError e)
                    {
                        throw Error($"cannot unpack: {e.Message}", t.Offset);
                    }

                    if (values.Count != t.Names.Count)
                    {
                        throw Error($"cannot unpack {values.Count} values into {t.Names.Count} names", t.Offset);
                    }

                    for (int i = 0; i < values.Count; i++)
                    {
                        scope.Set(t.Names[i].Name, values[i]);
                    }

                    break;
                }

            case AttrTarget a:
                if (!scope.TryGet(a.Name, out var obj) || obj is not JinjaNamespace ns)
                {
                    throw Error($"cannot assign attribute on non-namespace object '{a.Name}'", a.Offset);
                }

                ns.Attributes[a.Attr] = value;
                break;
        }
    }

    private JinjaCallable MakeMacro(MacroStmt m) => new(m.Name, (args, kwargs, offset) =>
    {
        // Jinja2's Macro.__call__: the first arguments bind positionally, the rest of the parameters by keyword or
        // default; a macro that reads 'caller' takes it out of the keywords; what is left over goes to varargs /
        // kwargs when the body reads them (so a caller the body does not read lands in kwargs), else it is an error.
        var leftover = new JinjaDict();
        foreach (var kv in kwargs)
        {
            int index = IndexOf(m.Params, kv.Key);
            if ((index < 0 || index < args.Count) && !(kv.Key == "caller" && m.CatchCaller))
            {
                leftover[kv.Key] = kv.Value;
            }
        }

        if (leftover.Count > 0 && !m.CatchKwargs)
        {
            throw new JinjaError(leftover.ContainsKey("caller")
                ? $"macro '{m.Name}' was invoked with two values for the special caller argument. This is most likely a bug."
                : $"macro '{m.Name}' takes no keyword argument '{leftover.Keys.First()}'");
        }

        if (args.Count > m.Params.Count && !m.CatchVarargs)
        {
            throw new JinjaError($"macro '{m.Name}' takes not more than {m.Params.Count} argument(s)");
        }

        if (++_macroDepth > MaxMacroDepth)
        {
            _macroDepth = 0;
            throw new JinjaError($"macro '{m.Name}' recursed deeper than {MaxMacroDepth} calls");
        }

        try
        {
            var scope = new Scope(_root);
            for (int i = 0; i < m.Params.Count; i++)
            {
                object? value = i < args.Count ? args[i]
                    : kwargs.TryGetValue(m.Params[i], out var kv) ? kv
                    : m.Defaults[i] is { } dflt ? Eval(dflt, scope)
                    : new Undefined($"parameter '{m.Params[i]}' was not provided");
                scope.Set(m.Params[i], value);
            }

            if (m.CatchCaller)
            {
                scope.Set("caller", kwargs.TryGetValue("caller", out var caller) ? caller : new Undefined("No caller defined"));
            }

            if (m.CatchVarargs)
            {
                scope.Set("varargs", new JinjaTuple(args.Skip(m.Params.Count).ToList()));
            }

            if (m.CatchKwargs)
            {
                scope.Set("kwargs", leftover);
            }

            var sb = new StringBuilder();
            Exec(m.Body, scope, sb);
            return sb.ToString();
        }
        finally
        {
            _macroDepth--;
        }
    }, $"<Macro '{m.Name}'>");

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
        {
            if (names[i] == name)
            {
                return i;
            }
        }

        return -1;
    }

    // ---- expressions ----

    private object? Eval(Expr expr, Scope scope)
    {
        try
        {
            return EvalCore(expr, scope);
        }
        catch (JinjaError e)
        {
            throw Error(e.Message, expr.Offset);
        }
        catch (OverflowException)
        {
            throw Error("integer overflow", expr.Offset);
        }
    }

    private object? EvalCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var v) ? v : new Undefined($"'{n.Name}' is undefined");
            case ListExpr l:
                return l.Items.Select(i => Eval(i, scope)).ToList();
            case TupleExpr t:
                return new JinjaTuple(t.Items.Select(i => Eval(i, scope)).ToList());
            case DictExpr d:
                {
                    var dict = new JinjaDict();
                    foreach (var (k, val) in d.Items)
                    {
                        var key = Eval(k, scope);
                        if (!JinjaDict.IsHashable(key))
                        {
                            throw Error(key is null
                                ? "unsupported construct: None as a dict key"
                                : $"unhashable type: '{JinjaRuntime.TypeName(key)}'", k.Offset);
                        }

                        dict[JinjaDict.Key(key)] = Eval(val, scope);
                    }

                    return dict;
                }

            case GetAttrExpr g:
                return JinjaRuntime.GetAttr(Eval(g.Target, scope), g.Name);
            case GetItemExpr g:
                return JinjaRuntime.GetItem(Eval(g.Target, scope), Eval(g.Key, scope));
            case SliceExpr s:
                return JinjaRuntime.Slice(Eval(s.Target, scope), s.Start is null ? null : Eval(s.Start, scope),
                    s.Stop is null ? null : Eval(s.Stop, scope), s.Step is null ? null : Eval(s.Step, scope));
            case CallExpr c:
                return Call(c, scope);
            case FilterExpr f:
                return JinjaFilters.Apply(this, f.Name, Eval(f.Value, scope), f.Args.Select(a => Eval(a, scope)).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope), StringComparer.Ordinal));
            case TestExpr t:
                {
                    bool result = JinjaFilters.Test(t.Name, Eval(t.Value, scope), t.Args.Select(a => Eval(a, scope)).ToList());
                    return t.Negated ? !result : result;
                }

            case UnaryExpr u:
                {
                    var operand = Eval(u.Operand, scope);
                    return u.Op switch
                    {
                        "not" => !JinjaRuntime.Truthy(operand),
                        "-" => JinjaRuntime.Negate(operand),
                        _ => operand is long or double or bool ? operand : throw new JinjaError($"bad operand type for unary +: '{JinjaRuntime.TypeName(operand)}'"),
                    };
                }

            case BinaryExpr b:
                {
                    var left = Eval(b.Left, scope);
                    switch (b.Op)
                    {
                        case "and":
                            return JinjaRuntime.Truthy(left) ? Eval(b.Right, scope) : left;
                        case "or":
                            return JinjaRuntime.Truthy(left) ? left : Eval(b.Right, scope);
                        case "~":
                            return PyText.Str(left) + PyText.Str(Eval(b.Right, scope));
                        default:
                            return JinjaRuntime.Binary(b.Op, left, Eval(b.Right, scope));
                    }
                }

            case CompareExpr c:
                {
                    var left = Eval(c.First, scope);
                    foreach (var (op, rightExpr) in c.Rest)
                    {
                        var right = Eval(rightExpr, scope);
                        bool ok = op switch
                        {
                            "==" => JinjaRuntime.Equals(left, right),
                            "!=" => !JinjaRuntime.Equals(left, right),
                            "<" => JinjaRuntime.Compare(left, right, op) < 0,
                            "<=" => JinjaRuntime.Compare(left, right, op) <= 0,
                            ">" => JinjaRuntime.Compare(left, right, op) > 0,
                            ">=" => JinjaRuntime.Compare(left, right, op) >= 0,
                            "in" => JinjaRuntime.Contains(right, left),
                            _ => !JinjaRuntime.Contains(right, left),
                        };
                        if (!ok)
                        {
                            return false;
                        }

                        left = right;
                    }

                    return true;
                }

            case CondExpr c:
                return JinjaRuntime.Truthy(Eval(c.Test, scope))
                    ? Eval(c.Then, scope)
                    : c.Else is null ? new Undefined("the inline if-expression evaluated to false and had no else") : Eval(c.Else, scope);
            default:
                throw Error($"unsupported expression {expr.GetType().Name}", expr.Offset);
        }
    }

    private object? Call(CallExpr c, Scope scope)
    {
        var callee = Eval(c.Callee, scope);
        var (args, kwargs) = EvalArguments(c, scope);
        return callee switch
        {
            JinjaCallable f => f.Invoke(args, kwargs, c.Offset),
            Undefined u => throw JinjaRuntime.UndefinedError(u),
            _ => throw new JinjaError($"'{JinjaRuntime.TypeName(callee)}' object is not callable"),
        };
    }

    /// <summary>A call's arguments, with <c>*expr</c> spread after the positional ones and <c>**expr</c> merged into the keywords.</summary>
    private (List<object?> Args, Dictionary<string, object?> Kwargs) EvalArguments(CallExpr c, Scope scope)
    {
        var args = c.Args.Select(a => JinjaRuntime.Plain(Eval(a, scope))).ToList();
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in c.Kwargs)
        {
            kwargs[name] = JinjaRuntime.Plain(Eval(value, scope));
        }

        if (c.DynArgs is { } dynArgs)
        {
            var spread = Eval(dynArgs, scope);
            try
            {
                args.AddRange(JinjaRuntime.Iterate(spread).Select(JinjaRuntime.Plain));
            }
            catch (JinjaError)
            {
                throw Error($"Value after * must be an iterable, not {JinjaRuntime.TypeName(spread)}", dynArgs.Offset);
            }
        }

        if (c.DynKwargs is { } dynKwargs)
        {
            var spread = Eval(dynKwargs, scope);
            if (spread is not JinjaDict dict)
            {
                throw Error($"argument after ** must be a mapping, not {JinjaRuntime.TypeName(spread)}", dynKwargs.Offset);
            }

            foreach (var kv in dict)
            {
                if (kv.Key is not string name)
                {
                    throw Error("keywords must be strings", dynKwargs.Offset);
                }

                if (!kwargs.TryAdd(name, JinjaRuntime.Plain(kv.Value)))
                {
                    throw Error($"got multiple values for keyword argument '{name}'", dynKwargs.Offset);
                }
            }
        }

        return (args, kwargs);
    }

    /// <summary>Calls a filter by name from inside another filter (<c>map('upper')</c>).</summary>
    internal object? ApplyFilter(string name, object? value, IReadOnlyList<object?> args) =>
        JinjaFilters.Apply(this, name, value, args, new Dictionary<string, object?>());
}
