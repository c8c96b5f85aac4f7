using System.Text.Json;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Templates.Jinja;

namespace PrefPipe.Text.Tests.Templates;

/// <summary>One small template per supported construct, against jinja2's output (constructs.reference.json), plus errors.</summary>
public sealed class JinjaInterpreterTests
{
    private static readonly JsonElement Reference = Load();

    private static JsonElement Load()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates", "constructs.reference.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }

    public static TheoryData<string> Constructs()
    {
        var data = new TheoryData<string>();
        foreach (var c in Reference.GetProperty("cases").EnumerateArray())
        {
            data.Add(c.GetProperty("name").GetString()!);
        }

        return data;
    }

    private static string Render(string template, IReadOnlyDictionary<string, object?>? vars = null)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var kv in vars ?? new Dictionary<string, object?>())
        {
            variables[kv.Key] = JinjaRuntime.FromDotNet(kv.Value, kv.Key);
        }

        var now = DateTime.Parse(Reference.GetProperty("fixed_now").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        return JinjaTemplate.Parse(template).Render(variables, () => now);
    }

    [Theory]
    [MemberData(nameof(Constructs))]
    public void Render_Construct_MatchesJinja2(string name)
    {
        var c = Reference.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == name);
        var vars = Reference.GetProperty("vars").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());

        Assert.Equal(c.GetProperty("expected").GetString(), Render(c.GetProperty("template").GetString()!, vars));
    }

    [Fact]
    public void Render_RaiseException_SurfacesTemplateMessageAndPosition()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("ok\n  {{ raise_exception('Roles must alternate!') }}"));

        Assert.True(ex.RaisedByTemplate);
        Assert.Equal("Roles must alternate!", ex.Detail);
        Assert.Equal(2, ex.Line);
        Assert.Equal(6, ex.Column);
        Assert.Contains("Roles must alternate!", ex.Message, StringComparison.Ordinal);
        Assert.Contains("line 2, column 6", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a\n{% with x = 1 %}{{ x }}{% endwith %}", "'{% with %}'", 2, 1)]
    [InlineData("{{ 'a'|replace(*l) }}", "*args / **kwargs in a filter", 1, 16)]
    [InlineData("{{ {none: 'a'} }}", "None as a dict key", 1, 5)]
    [InlineData("{% include 'other.jinja' %}", "'{% include %}'", 1, 1)]
    [InlineData("{% extends 'base' %}", "'{% extends %}'", 1, 1)]
    [InlineData("x\n\n  {{ 'a'|wordwrap(3) }}", "filter 'wordwrap'", 3, 10)]
    [InlineData("{{ 1 is prime }}", "test 'prime'", 1, 9)]
    [InlineData("{% for x in y recursive %}{% endfor %}", "'recursive' loops", 1, 15)]
    [InlineData("{{ '{}'.format(1) }}", "str.format()", 1, 9)]
    [InlineData("{{ '%s' % 1 }}", "printf-style", 1, 9)]
    public void Parse_Or_Render_UnsupportedConstruct_NamesItAndItsPosition(string template, string construct, int line, int column)
    {
        var ex = Assert.Throws<TemplateException>(() => Render(template, new Dictionary<string, object?> { ["y"] = new List<object?>() }));

        Assert.Contains("unsupported construct", ex.Message, StringComparison.Ordinal);
        Assert.Contains(construct, ex.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (ex.Line, ex.Column));
        Assert.False(ex.RaisedByTemplate);
    }

    [Theory]
    [InlineData("{% if x %}never closed", "expected '{% elif' or '{% else' or '{% endif %}'")]
    [InlineData("{{ 1 + }}", "expected an expression")]
    [InlineData("{{ 'unterminated }}", "unterminated string literal")]
    [InlineData("{% endfor %}", "no open block")]
    [InlineData("{{ x", "has no matching '}}'")]
    [InlineData("{# open comment", "unterminated comment")]
    public void Parse_SyntaxError_FailsWithMessage(string template, string expected)
    {
        var ex = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(template));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.True(ex.Line >= 1 && ex.Column >= 1);
    }

    [Theory]
    [InlineData("{{ missing.attr }}", "'missing' is undefined")]
    [InlineData("{{ missing + 1 }}", "'missing' is undefined")]
    [InlineData("{{ nofunc() }}", "'nofunc' is undefined")]
    [InlineData("{{ 'a' + 1 }}", "unsupported operand type(s) for +: 'str' and 'int'")]
    [InlineData("{{ 1 < 'a' }}", "'<' not supported between instances of 'int' and 'str'")]
    [InlineData("{{ 1 // 0 }}", "integer division or modulo by zero")]
    [InlineData("{{ none|list }}", "'NoneType' object is not iterable")]
    [InlineData("{{ [1].append(2) }}", "access to attribute 'append' of 'list' object is unsafe")]
    [InlineData("{{ 'a'.nope() }}", "'str object' has no attribute 'nope'")]
    [InlineData("{{ missing|tojson }}", "'missing' is undefined")]
    [InlineData("{% set x = 1 %}{% set x.y = 2 %}", "cannot assign attribute on non-namespace object 'x'")]
    [InlineData("{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, 2) }}", "macro 'f' takes not more than 1 argument(s)")]
    [InlineData("{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, b=2) }}", "macro 'f' takes no keyword argument 'b'")]
    [InlineData("{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, a=2) }}", "macro 'f' takes no keyword argument 'a'")]
    [InlineData("{{ range(*1) }}", "Value after * must be an iterable, not int")]
    [InlineData("{{ dict(**[1]) }}", "argument after ** must be a mapping, not list")]
    [InlineData("{{ dict(a=1, **{'a': 2}) }}", "got multiple values for keyword argument 'a'")]
    public void Render_RuntimeError_FailsLikeJinja2(string template, string expected)
    {
        var ex = Assert.Throws<TemplateException>(() => Render(template));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, ex.Line);
    }

    [Fact]
    public void Render_RangeBeyondSandboxLimit_Fails()
    {
        var ex = Assert.Throws<TemplateException>(() => Render("{% for i in range(1000000) %}{% endfor %}"));

        Assert.Contains("range too big", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_TemplateWithCrLfNewlines_NormalisesLikeJinja2()
    {
        Assert.Equal("a\nb", Render("a\r\n{% if true %}\r\nb{% endif %}\r\n"));
    }
}
