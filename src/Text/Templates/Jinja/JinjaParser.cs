namespace PrefPipe.Text.Templates.Jinja;

/// <summary>
/// Recursive-descent parser for the Jinja subset chat templates use, following Jinja2's grammar and operator
/// precedence (conditional, or, and, not, comparisons, + -, ~, * / // %, **, unary, then postfix, filters, tests).
/// </summary>
internal sealed class JinjaParser
{
    private static readonly HashSet<string> UnsupportedTags =
    [
        "with", "include", "import", "from", "extends", "block", "autoescape", "do", "trans",
        "pluralize",
    ];

    private readonly string _source;
    private readonly List<Token> _tokens;
    private int _i;

    // Names read inside each macro body being parsed (innermost last): whether a macro takes varargs / kwargs.
    private readonly List<HashSet<string>> _macroBodyNames = [];

    private JinjaParser(string source, List<Token> tokens)
    {
        _source = source;
        _tokens = tokens;
    }

    public static IReadOnlyList<Stmt> Parse(string normalizedSource)
    {
        var parser = new JinjaParser(normalizedSource, JinjaLexer.Tokenize(normalizedSource));
        var (body, end) = parser.ParseStatements([]);
        if (end is not null)
        {
            throw parser.Error($"unexpected '{{% {end.Value.Text} %}}' with no open block", end.Value.Offset);
        }

        return body;
    }

    private Token Peek => _tokens[_i];

    private Token PeekAt(int k) => _tokens[Math.Min(_i + k, _tokens.Count - 1)];

    private Token Next() => _tokens[_i++];

    private TemplateException Error(string message, int offset) => TemplateException.At(message, _source, offset);

    private bool IsOp(string op) => Peek.Kind == TokenKind.Operator && Peek.Text == op;

    private bool IsName(string name) => Peek.Kind == TokenKind.Name && Peek.Text == name;

    private bool SkipOp(string op)
    {
        if (!IsOp(op))
        {
            return false;
        }

        _i++;
        return true;
    }

    private bool SkipName(string name)
    {
        if (!IsName(name))
        {
            return false;
        }

        _i++;
        return true;
    }

    private Token ExpectOp(string op) =>
        IsOp(op) ? Next() : throw Error($"expected '{op}', found {Peek}", Peek.Offset);

    private Token ExpectName() =>
        Peek.Kind == TokenKind.Name ? Next() : throw Error($"expected a name, found {Peek}", Peek.Offset);

    private void ExpectBlockEnd(string tag)
    {
        if (Peek.Kind != TokenKind.BlockEnd)
        {
            throw Error($"unexpected {Peek} in '{{% {tag} %}}' (expected '%}}')", Peek.Offset);
        }

        _i++;
    }

    /// <summary>Parses statements until a block tag named in <paramref name="endNames"/>; returns that tag's name token (consumed, its arguments not).</summary>
    private (List<Stmt> Body, Token? End) ParseStatements(string[] endNames)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Peek;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    if (endNames.Length > 0)
                    {
                        throw Error($"unexpected end of template: expected '{{% {string.Join("' or '{% ", endNames)} %}}'", t.Offset);
                    }

                    return (body, null);
                case TokenKind.Data:
                    _i++;
                    body.Add(new DataStmt(t.Offset, t.Text));
                    break;
                case TokenKind.VariableBegin:
                    {
                        _i++;
                        var value = ParseTuple(allowCondExpr: true);
                        if (Peek.Kind != TokenKind.VariableEnd)
                        {
                            throw Error($"unexpected {Peek} in '{{{{ ... }}}}' (expected '}}}}')", Peek.Offset);
                        }

                        _i++;
                        body.Add(new PrintStmt(t.Offset, value));
                        break;
                    }

                case TokenKind.BlockBegin:
                    {
                        _i++;
                        var name = ExpectName();
                        if (Array.IndexOf(endNames, name.Text) >= 0)
                        {
                            return (body, name);
                        }

                        body.Add(ParseStatement(t.Offset, name));
                        break;
                    }

                default:
                    throw Error($"unexpected {t}", t.Offset);
            }
        }
    }

    private Stmt ParseStatement(int offset, Token name)
    {
        switch (name.Text)
        {
            case "if":
                return ParseIf(offset);
            case "for":
                return ParseFor(offset);
            case "set":
                return ParseSet(offset);
            case "macro":
                return ParseMacro(offset);
            case "break":
                ExpectBlockEnd("break");
                return new BreakStmt(offset);
            case "continue":
                ExpectBlockEnd("continue");
                return new ContinueStmt(offset);
            case "call":
                {
                    var callerParams = new List<string>();
                    if (SkipOp("("))
                    {
                        while (!IsOp(")"))
                        {
                            if (callerParams.Count > 0)
                            {
                                ExpectOp(",");
                            }

                            callerParams.Add(ExpectName().Text);
                            if (IsOp("="))
                            {
                                throw Error("unsupported construct: default values for caller() parameters", Peek.Offset);
                            }
                        }

                        ExpectOp(")");
                    }

                    if (ParsePostfix(ParsePrimary()) is not CallExpr call)
                    {
                        throw Error("expected a macro call after '{% call'", offset);
                    }

                    ExpectBlockEnd("call");
                    var (body, _) = ParseStatements(["endcall"]);
                    ExpectBlockEnd("endcall");
                    return new CallBlockStmt(offset, callerParams, call, body);
                }

            case "filter":
                {
                    // Filters applied to a placeholder; the interpreter substitutes the rendered body.
                    var node = ParseFilterExpr(new ConstExpr(offset, null), requireFirstPipe: false);
                    var filters = new List<FilterExpr>();
                    for (var n = node; n is FilterExpr f; n = f.Value)
                    {
                        filters.Insert(0, f);
                    }

                    if (filters.Count == 0)
                    {
                        throw Error("expected a filter name after '{% filter'", offset);
                    }

                    ExpectBlockEnd("filter");
                    var (body, _) = ParseStatements(["endfilter"]);
                    ExpectBlockEnd("endfilter");
                    return new FilterBlockStmt(offset, filters, body);
                }

            case "generation":
                {
                    ExpectBlockEnd("generation");
                    var (body, _) = ParseStatements(["endgeneration"]);
                    ExpectBlockEnd("endgeneration");
                    return new GenerationStmt(offset, body);
                }

            default:
                if (name.Text.StartsWith("end", StringComparison.Ordinal) || name.Text is "elif" or "else")
                {
                    throw Error($"unexpected '{{% {name.Text} %}}' with no open block", offset);
                }

                if (UnsupportedTags.Contains(name.Text))
                {
                    throw Error($"unsupported construct '{{% {name.Text} %}}'", offset);
                }

                throw Error($"unknown tag '{{% {name.Text} %}}'", offset);
        }
    }

    private IfStmt ParseIf(int offset)
    {
        var branches = new List<(Expr, IReadOnlyList<Stmt>)>();
        var test = ParseTuple(allowCondExpr: true);
        ExpectBlockEnd("if");
        while (true)
        {
            var (body, end) = ParseStatements(["elif", "else", "endif"]);
            branches.Add((test, body));
            switch (end!.Value.Text)
            {
                case "elif":
                    test = ParseTuple(allowCondExpr: true);
                    ExpectBlockEnd("elif");
                    continue;
                case "else":
                    {
                        ExpectBlockEnd("else");
                        var (elseBody, _) = ParseStatements(["endif"]);
                        ExpectBlockEnd("endif");
                        return new IfStmt(offset, branches, elseBody);
                    }

                default:
                    ExpectBlockEnd("endif");
                    return new IfStmt(offset, branches, null);
            }
        }
    }

    private ForStmt ParseFor(int offset)
    {
        var target = ParseAssignTarget(allowAttr: false);
        if (!SkipName("in"))
        {
            throw Error($"expected 'in' in '{{% for %}}', found {Peek}", Peek.Offset);
        }

        var iter = ParseTuple(allowCondExpr: false);
        Expr? filter = null;
        if (SkipName("if"))
        {
            filter = ParseExpression();
        }

        if (IsName("recursive"))
        {
            throw Error("unsupported construct 'recursive' loops", Peek.Offset);
        }

        ExpectBlockEnd("for");
        var (body, end) = ParseStatements(["endfor", "else"]);
        List<Stmt>? elseBody = null;
        if (end!.Value.Text == "else")
        {
            ExpectBlockEnd("else");
            (elseBody, _) = ParseStatements(["endfor"]);
        }

        ExpectBlockEnd("endfor");
        return new ForStmt(offset, target, iter, filter, body, elseBody);
    }

    private Stmt ParseSet(int offset)
    {
        var target = ParseAssignTarget(allowAttr: true);
        if (SkipOp("="))
        {
            var value = ParseTuple(allowCondExpr: true);
            ExpectBlockEnd("set");
            return new SetStmt(offset, target, value);
        }

        if (IsOp("|"))
        {
            throw Error("unsupported construct: filters on a '{% set %}' block", Peek.Offset);
        }

        ExpectBlockEnd("set");
        var (body, _) = ParseStatements(["endset"]);
        ExpectBlockEnd("endset");
        return new SetBlockStmt(offset, target, body);
    }

    private NameExpr Name(Token t)
    {
        if (_macroBodyNames.Count > 0)
        {
            _macroBodyNames[^1].Add(t.Text);
        }

        return new NameExpr(t.Offset, t.Text);
    }

    private MacroStmt ParseMacro(int offset)
    {
        var name = ExpectName().Text;
        ExpectOp("(");
        var names = new List<string>();
        var defaults = new List<Expr?>();
        while (!IsOp(")"))
        {
            if (names.Count > 0)
            {
                ExpectOp(",");
                if (IsOp(")"))
                {
                    break;
                }
            }

            names.Add(ExpectName().Text);
            defaults.Add(SkipOp("=") ? ParseExpression() : null);
        }

        ExpectOp(")");
        ExpectBlockEnd("macro");
        // Jinja2 decides from the names the body reads (nested macros included) whether the macro catches them.
        var bodyNames = new HashSet<string>(StringComparer.Ordinal);
        _macroBodyNames.Add(bodyNames);
        var (body, _) = ParseStatements(["endmacro"]);
        _macroBodyNames.RemoveAt(_macroBodyNames.Count - 1);
        if (_macroBodyNames.Count > 0)
        {
            _macroBodyNames[^1].UnionWith(bodyNames);
        }

        if (Peek.Kind == TokenKind.Name)
        {
            _i++;
        }

        ExpectBlockEnd("endmacro");
        return new MacroStmt(offset, name, names, defaults, body,
            bodyNames.Contains("varargs") && !names.Contains("varargs"), bodyNames.Contains("kwargs") && !names.Contains("kwargs"),
            bodyNames.Contains("caller") && !names.Contains("caller"));
    }

    private Target ParseAssignTarget(bool allowAttr)
    {
        var first = ExpectName();
        if (allowAttr && SkipOp("."))
        {
            var attr = ExpectName();
            return new AttrTarget(first.Offset, first.Text, attr.Text);
        }

        if (!IsOp(","))
        {
            return new NameTarget(first.Offset, first.Text);
        }

        var names = new List<NameTarget> { new(first.Offset, first.Text) };
        while (SkipOp(","))
        {
            if (Peek.Kind != TokenKind.Name || IsName("in"))
            {
                break;
            }

            var n = Next();
            names.Add(new NameTarget(n.Offset, n.Text));
        }

        return new TupleTarget(first.Offset, names);
    }

    // ---- expressions ----

    /// <summary>An expression, or an implicit tuple <c>a, b</c>.</summary>
    private Expr ParseTuple(bool allowCondExpr)
    {
        int offset = Peek.Offset;
        var first = allowCondExpr ? ParseExpression() : ParseOr();
        if (!IsOp(","))
        {
            return first;
        }

        var items = new List<Expr> { first };
        while (SkipOp(","))
        {
            if (IsTupleEnd())
            {
                break;
            }

            items.Add(allowCondExpr ? ParseExpression() : ParseOr());
        }

        return new TupleExpr(offset, items);
    }

    private bool IsTupleEnd() =>
        Peek.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd or TokenKind.Eof || IsOp(")") || IsName("if");

    private Expr ParseExpression()
    {
        var expr = ParseOr();
        while (IsName("if"))
        {
            int offset = Next().Offset;
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseExpression() : null;
            expr = new CondExpr(offset, test, expr, otherwise);
        }

        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            int offset = Next().Offset;
            left = new BinaryExpr(offset, "or", left, ParseAnd());
        }

        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            int offset = Next().Offset;
            left = new BinaryExpr(offset, "and", left, ParseNot());
        }

        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            int offset = Next().Offset;
            return new UnaryExpr(offset, "not", ParseNot());
        }

        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        int offset = Peek.Offset;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Peek.Kind == TokenKind.Operator && Peek.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = Next().Text;
                rest.Add((op, ParseMath1()));
            }
            else if (IsName("in"))
            {
                _i++;
                rest.Add(("in", ParseMath1()));
            }
            else if (IsName("not") && PeekAt(1).Kind == TokenKind.Name && PeekAt(1).Text == "in")
            {
                _i += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else
            {
                break;
            }
        }

        return rest.Count == 0 ? first : new CompareExpr(offset, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "+" or "-")
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, op.Text, left, ParseConcat());
        }

        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (IsOp("~"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "~", left, ParseMath2());
        }

        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Peek.Kind == TokenKind.Operator && Peek.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, op.Text, left, ParsePow());
        }

        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (IsOp("**"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "**", left, ParseUnary(withFilter: true));
        }

        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (Peek.Kind == TokenKind.Operator && Peek.Text is "-" or "+")
        {
            var op = Next();
            node = new UnaryExpr(op.Offset, op.Text, ParseUnary(withFilter: false));
        }
        else
        {
            node = ParsePostfix(ParsePrimary());
        }

        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new ConstExpr(t.Offset, true),
                    "false" or "False" => new ConstExpr(t.Offset, false),
                    "none" or "None" => new ConstExpr(t.Offset, null),
                    _ => Name(t),
                };
            case TokenKind.String:
                {
                    var s = (string)t.Value!;
                    while (Peek.Kind == TokenKind.String)
                    {
                        s += (string)Next().Value!;
                    }

                    return new ConstExpr(t.Offset, s);
                }

            case TokenKind.Integer:
            case TokenKind.Float:
                return new ConstExpr(t.Offset, t.Value);
            case TokenKind.Operator when t.Text == "(":
                {
                    if (SkipOp(")"))
                    {
                        return new TupleExpr(t.Offset, []);
                    }

                    var inner = ParseExpression();
                    if (!IsOp(","))
                    {
                        ExpectOp(")");
                        return inner;
                    }

                    var items = new List<Expr> { inner };
                    while (SkipOp(","))
                    {
                        if (IsOp(")"))
                        {
                            break;
                        }

                        items.Add(ParseExpression());
                    }

                    ExpectOp(")");
                    return new TupleExpr(t.Offset, items);
                }

            case TokenKind.Operator when t.Text == "[":
                {
                    var items = new List<Expr>();
                    while (!IsOp("]"))
                    {
                        if (items.Count > 0)
                        {
                            ExpectOp(",");
                            if (IsOp("]"))
                            {
                                break;
                            }
                        }

                        items.Add(ParseExpression());
                    }

                    ExpectOp("]");
                    return new ListExpr(t.Offset, items);
                }

            case TokenKind.Operator when t.Text == "{":
                {
                    var items = new List<(Expr, Expr)>();
                    while (!IsOp("}"))
                    {
                        if (items.Count > 0)
                        {
                            ExpectOp(",");
                            if (IsOp("}"))
                            {
                                break;
                            }
                        }

                        var key = ParseExpression();
                        ExpectOp(":");
                        items.Add((key, ParseExpression()));
                    }

                    ExpectOp("}");
                    return new DictExpr(t.Offset, items);
                }

            default:
                throw Error($"unexpected {t} (expected an expression)", t.Offset);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (IsOp("."))
            {
                var dot = Next();
                if (Peek.Kind == TokenKind.Integer)
                {
                    node = new GetItemExpr(dot.Offset, node, new ConstExpr(Peek.Offset, Next().Value));
                    continue;
                }

                var name = ExpectName();
                node = new GetAttrExpr(name.Offset, node, name.Text);
            }
            else if (IsOp("["))
            {
                var open = Next();
                node = ParseSubscript(open.Offset, node);
            }
            else if (IsOp("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(int offset, Expr target)
    {
        Expr? start = null, stop = null, step = null;
        bool isSlice = false;
        if (!IsOp(":"))
        {
            start = ParseExpression();
        }

        if (SkipOp(":"))
        {
            isSlice = true;
            if (!IsOp("]") && !IsOp(":"))
            {
                stop = ParseExpression();
            }

            if (SkipOp(":") && !IsOp("]"))
            {
                step = ParseExpression();
            }
        }
        else if (IsOp(","))
        {
            throw Error("unsupported construct: tuple subscripts", Peek.Offset);
        }

        ExpectOp("]");
        return isSlice ? new SliceExpr(offset, target, start, stop, step) : new GetItemExpr(offset, target, start!);
    }

    private CallExpr ParseCall(Expr callee)
    {
        ExpectOp("(");
        var (args, kwargs, dynArgs, dynKwargs) = ParseCallArgs();
        return new CallExpr(callee.Offset, callee, args, kwargs, dynArgs, dynKwargs);
    }

    /// <summary>Arguments of a filter or test: no <c>*args</c> / <c>**kwargs</c> there.</summary>
    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArgs()
    {
        int offset = Peek.Offset;
        var (args, kwargs, dynArgs, dynKwargs) = ParseCallArgs();
        if (dynArgs is not null || dynKwargs is not null)
        {
            throw Error("unsupported construct: *args / **kwargs in a filter or test", offset);
        }

        return (args, kwargs);
    }

    /// <summary>
    /// Call arguments as Jinja2 parses them: positional, then keyword; <c>*expr</c> after the positional ones and
    /// <c>**expr</c> last (Jinja2's <c>parse_call_args</c> rejects any other order).
    /// </summary>
    private (List<Expr> Args, List<(string, Expr)> Kwargs, Expr? DynArgs, Expr? DynKwargs) ParseCallArgs()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        Expr? dynArgs = null, dynKwargs = null;
        bool first = true;
        while (!IsOp(")"))
        {
            if (!first)
            {
                ExpectOp(",");
                if (IsOp(")"))
                {
                    break;
                }
            }

            first = false;
            int offset = Peek.Offset;
            if (SkipOp("*"))
            {
                if (dynArgs is not null || dynKwargs is not null)
                {
                    throw Error("invalid syntax for function call expression: *args after *args or **kwargs", offset);
                }

                dynArgs = ParseExpression();
            }
            else if (SkipOp("**"))
            {
                if (dynKwargs is not null)
                {
                    throw Error("invalid syntax for function call expression: a second **kwargs", offset);
                }

                dynKwargs = ParseExpression();
            }
            else if (Peek.Kind == TokenKind.Name && PeekAt(1).Kind == TokenKind.Operator && PeekAt(1).Text == "=")
            {
                if (dynKwargs is not null)
                {
                    throw Error("invalid syntax for function call expression: keyword argument after **kwargs", offset);
                }

                var key = Next().Text;
                _i++;
                kwargs.Add((key, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0 || dynArgs is not null || dynKwargs is not null)
                {
                    throw Error("positional argument follows keyword argument or *args", offset);
                }

                args.Add(ParseExpression());
            }
        }

        ExpectOp(")");
        return (args, kwargs, dynArgs, dynKwargs);
    }

    private Expr ParseFilterExpr(Expr node, bool requireFirstPipe = true)
    {
        bool first = true;
        while (true)
        {
            bool pipe = IsOp("|");
            if (pipe || (first && !requireFirstPipe && Peek.Kind == TokenKind.Name))
            {
                first = false;
                if (pipe)
                {
                    _i++;
                }

                var name = ExpectName();
                var filterName = name.Text;
                while (IsOp(".") && PeekAt(1).Kind == TokenKind.Name)
                {
                    _i++;
                    filterName += "." + Next().Text;
                }

                List<Expr> args = [];
                List<(string, Expr)> kwargs = [];
                if (SkipOp("("))
                {
                    (args, kwargs) = ParseArgs();
                }

                node = new FilterExpr(name.Offset, node, filterName, args, kwargs);
            }
            else if (IsName("is"))
            {
                _i++;
                bool negated = SkipName("not");
                var name = ExpectName();
                List<Expr> args = [];
                if (IsOp("("))
                {
                    _i++;
                    var (a, kw) = ParseArgs();
                    if (kw.Count > 0)
                    {
                        throw Error("unsupported construct: keyword arguments to a test", name.Offset);
                    }

                    args = a;
                }
                else if (Peek.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || IsOp("[") || IsOp("{") || IsOp("("))
                {
                    if (!(Peek.Kind == TokenKind.Name && Peek.Text is "else" or "or" or "and" or "if" or "is" or "in" or "not"))
                    {
                        args = [ParsePostfix(ParsePrimary())];
                    }
                }

                node = new TestExpr(name.Offset, node, name.Text, args, negated);
            }
            else if (IsOp("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }
}
