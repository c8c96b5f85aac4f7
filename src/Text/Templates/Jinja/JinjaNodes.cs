namespace PrefPipe.Text.Templates.Jinja;

// The syntax tree of the supported Jinja subset. Offset is the node's position in the normalised source.

internal abstract record Node(int Offset);

internal abstract record Stmt(int Offset) : Node(Offset);

internal sealed record DataStmt(int Offset, string Text) : Stmt(Offset);

internal sealed record PrintStmt(int Offset, Expr Value) : Stmt(Offset);

internal sealed record IfStmt(int Offset, IReadOnlyList<(Expr Test, IReadOnlyList<Stmt> Body)> Branches, IReadOnlyList<Stmt>? Else)
    : Stmt(Offset);

internal sealed record ForStmt(int Offset, Target Target, Expr Iter, Expr? Filter, IReadOnlyList<Stmt> Body, IReadOnlyList<Stmt>? Else)
    : Stmt(Offset);

internal sealed record SetStmt(int Offset, Target Target, Expr Value) : Stmt(Offset);

internal sealed record SetBlockStmt(int Offset, Target Target, IReadOnlyList<Stmt> Body) : Stmt(Offset);

/// <summary>
/// <c>{% macro name(params) %}</c>. As in Jinja2, a macro whose body mentions <c>varargs</c> takes extra positional
/// arguments (as that tuple), one that mentions <c>kwargs</c> takes extra keyword arguments (as that dict), and one
/// that mentions <c>caller</c> takes the <c>{% call %}</c> body as <c>caller</c> (else a passed caller is just
/// another keyword argument).
/// </summary>
internal sealed record MacroStmt(int Offset, string Name, IReadOnlyList<string> Params, IReadOnlyList<Expr?> Defaults, IReadOnlyList<Stmt> Body,
    bool CatchVarargs, bool CatchKwargs, bool CatchCaller = false)
    : Stmt(Offset);

/// <summary><c>{% filter f|g(args) %}body{% endfilter %}</c>: the rendered body passed through the filters.</summary>
internal sealed record FilterBlockStmt(int Offset, IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Stmt> Body) : Stmt(Offset);

/// <summary><c>{% call(params) macro(args) %}body{% endcall %}</c>: calls the macro with <c>caller()</c> rendering the body.</summary>
internal sealed record CallBlockStmt(int Offset, IReadOnlyList<string> CallerParams, CallExpr Call, IReadOnlyList<Stmt> Body) : Stmt(Offset);

internal sealed record BreakStmt(int Offset) : Stmt(Offset);

internal sealed record ContinueStmt(int Offset) : Stmt(Offset);

/// <summary>transformers' <c>{% generation %}</c> block (assistant-token masks): renders its body unchanged.</summary>
internal sealed record GenerationStmt(int Offset, IReadOnlyList<Stmt> Body) : Stmt(Offset);

internal abstract record Target(int Offset) : Node(Offset);

internal sealed record NameTarget(int Offset, string Name) : Target(Offset);

internal sealed record TupleTarget(int Offset, IReadOnlyList<NameTarget> Names) : Target(Offset);

internal sealed record AttrTarget(int Offset, string Name, string Attr) : Target(Offset);

internal abstract record Expr(int Offset) : Node(Offset);

internal sealed record ConstExpr(int Offset, object? Value) : Expr(Offset);

internal sealed record NameExpr(int Offset, string Name) : Expr(Offset);

internal sealed record ListExpr(int Offset, IReadOnlyList<Expr> Items) : Expr(Offset);

internal sealed record TupleExpr(int Offset, IReadOnlyList<Expr> Items) : Expr(Offset);

internal sealed record DictExpr(int Offset, IReadOnlyList<(Expr Key, Expr Value)> Items) : Expr(Offset);

internal sealed record GetAttrExpr(int Offset, Expr Target, string Name) : Expr(Offset);

internal sealed record GetItemExpr(int Offset, Expr Target, Expr Key) : Expr(Offset);

internal sealed record SliceExpr(int Offset, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Offset);

/// <summary>A call; <paramref name="DynArgs"/> and <paramref name="DynKwargs"/> are <c>*expr</c> and <c>**expr</c>.</summary>
internal sealed record CallExpr(int Offset, Expr Callee, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs,
    Expr? DynArgs = null, Expr? DynKwargs = null)
    : Expr(Offset);

internal sealed record FilterExpr(int Offset, Expr Value, string Name, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs)
    : Expr(Offset);

internal sealed record TestExpr(int Offset, Expr Value, string Name, IReadOnlyList<Expr> Args, bool Negated) : Expr(Offset);

internal sealed record UnaryExpr(int Offset, string Op, Expr Operand) : Expr(Offset);

internal sealed record BinaryExpr(int Offset, string Op, Expr Left, Expr Right) : Expr(Offset);

internal sealed record CompareExpr(int Offset, Expr First, IReadOnlyList<(string Op, Expr Right)> Rest) : Expr(Offset);

internal sealed record CondExpr(int Offset, Expr Test, Expr Then, Expr? Else) : Expr(Offset);
