using System.Text.Json;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

public sealed class TemplateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("prefpipe-template-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Fixtures => Path.Combine(AppContext.BaseDirectory, "fixtures");

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static async Task<(int Exit, string Output, string Error)> Run(params string[] args)
    {
        var console = new TestConsole().Width(40);
        await using var stderr = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync(args, console);
        return (exit, console.Output, stderr.ToString());
    }

    [Fact]
    public async Task Render_ModelFolder_UsesItsTemplateAndBosToken()
    {
        var (exit, output, _) = await Run("template", "render", "--model", Path.Combine(Fixtures, "templated-bos-policy"),
            "--messages", """[{"role": "user", "content": " Hi "}, {"role": "assistant", "content": "Hello"}]""", "--add-generation-prompt", "false");

        Assert.Equal(0, exit);
        Assert.Equal("<|endoftext|><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n", output);
    }

    [Fact]
    public async Task Render_Json_PrintsTextObjectWithGenerationPromptAndOverriddenBos()
    {
        string messages = Write("messages.json", """[{"role": "user", "content": "Zürich \"q\"\n"}]""");

        var (exit, output, _) = await Run("template", "render", "--model", Path.Combine(Fixtures, "templated-bos-policy"),
            "--messages", messages, "--bos-token", "<B>", "--json");

        Assert.Equal(0, exit);
        var line = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("<B><start_of_turn>user\nZürich \"q\"<end_of_turn>\n<start_of_turn>model\n",
            JsonDocument.Parse(line).RootElement.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Render_RealTemplateWithVars_MatchesJinja2Reference()
    {
        // qwen3 "tools" case of the jinja2 reference: tools come in through --vars, the tokens through options.
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "chat-templates", "chat-templates.reference.json")));
        var t = doc.RootElement.GetProperty("templates").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "qwen3");
        var c = t.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "tools");
        string vars = Write("vars.json", c.GetProperty("extra").GetRawText());

        var (exit, output, _) = await Run("template", "render", "--template", Path.Combine(Fixtures, "chat-templates", t.GetProperty("file").GetString()!),
            "--messages", c.GetProperty("messages").GetRawText(), "--vars", vars, "--eos-token", t.GetProperty("eos_token").GetString()!, "--json");

        Assert.Equal(0, exit);
        Assert.Equal(c.GetProperty("expected").GetString(), JsonDocument.Parse(output).RootElement.GetProperty("text").GetString());
    }

    [Fact]
    public async Task Render_VarsInline_ReachTheTemplate()
    {
        string template = Write("t.jinja", "{{ enable_thinking }}|{{ documents|length }}|{{ reasoning.effort }}|{{ messages[0].tool_calls[0].name }}");

        var (exit, output, _) = await Run("template", "render", "--template", template,
            "--messages", """[{"role": "assistant", "content": null, "tool_calls": [{"name": "f"}]}]""",
            "--vars", """{"enable_thinking": false, "documents": [{"text": "a"}, {"text": "b"}], "reasoning": {"effort": "high"}}""");

        Assert.Equal(0, exit);
        Assert.Equal("False|2|high|f", output);
    }

    [Fact]
    public async Task Render_TemplateRaisesException_ExitsWithUsageCodeAndTheTemplatesMessage()
    {
        string template = Write("t.jinja", "{% if messages[0].role != 'system' %}{{ raise_exception('Conversation roles must start with system!') }}{% endif %}");

        var (exit, output, error) = await Run("template", "render", "--template", template, "--messages", """[{"role": "user", "content": "x"}]""");

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Equal("", output);
        Assert.StartsWith("prefpipe template render: Conversation roles must start with system! (raised by the chat template", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--messages", "{not json", "messages: not valid JSON")]
    [InlineData("--vars", "[1]", "variables: expected a JSON object")]
    public async Task Render_MalformedJson_ExitsWithUsageCode(string option, string value, string expected)
    {
        string template = Write("t.jinja", "x");
        string[] args = option == "--messages"
            ? ["template", "render", "--template", template, "--messages", value]
            : ["template", "render", "--template", template, "--messages", "[]", option, value];

        var (exit, _, error) = await Run(args);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Render_BothOrNeitherSource_ExitsWithUsageCode()
    {
        var (neither, _, error) = await Run("template", "render", "--messages", "[]");
        var (both, _, _) = await Run("template", "render", "--messages", "[]", "--template", Write("t.jinja", "x"), "--model", _dir);

        Assert.Equal(Cli.ExitCodes.Usage, neither);
        Assert.Equal(Cli.ExitCodes.Usage, both);
        Assert.Contains("exactly one of --model or --template", error, StringComparison.Ordinal);
    }
}
