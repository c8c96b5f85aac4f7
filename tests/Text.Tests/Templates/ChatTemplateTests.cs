using System.Text.Json;
using PrefPipe.Text.Templates;

namespace PrefPipe.Text.Tests.Templates;

public sealed class ChatTemplateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("prefpipe-chat-template-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly ChatMessage[] Conversation = [new("user", "Hi"), new("assistant", "Hello!"), new("user", "Bye")];

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Load_TinyLlamaFixture_RendersChatMl()
    {
        var template = ChatTemplate.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama"));

        Assert.Null(template.BosToken);
        Assert.Equal("<|endoftext|>", template.EosToken);
        Assert.Equal(
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
            template.Render(Conversation));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n", template.Render([new("user", "Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Load_NamedTemplateListAndContentObjects_UsesDefaultAndTokenContent()
    {
        Write("tokenizer_config.json", """
            {
              "bos_token": {"content": "<s>", "lstrip": false},
              "eos_token": {"__type": "AddedToken", "content": "</s>"},
              "chat_template": [
                {"name": "tool_use", "template": "TOOLS"},
                {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"}
              ]
            }
            """);

        var template = ChatTemplate.Load(_dir);

        Assert.Equal("<s>", template.BosToken);
        Assert.Equal("</s>", template.EosToken);
        Assert.Equal("<s>[user]Hi</s>[assistant]Hello!</s>[user]Bye</s>", template.Render(Conversation));
    }

    [Fact]
    public void Load_ChatTemplateJinjaFile_TakesPrecedenceOverConfig()
    {
        Write("tokenizer_config.json", """{"eos_token": "<eos>", "chat_template": "FROM CONFIG"}""");
        Write("chat_template.jinja", "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}\n");

        Assert.Equal("Hi<eos>Hello!<eos>Bye<eos>", ChatTemplate.Load(_dir).Render(Conversation));
    }

    [Fact]
    public void Load_NoTemplate_FailsNamingTheFolder()
    {
        Write("tokenizer_config.json", """{"eos_token": "</s>"}""");

        var ex = Assert.Throws<InvalidDataException>(() => ChatTemplate.Load(_dir));

        Assert.Contains("has no chat template", ex.Message, StringComparison.Ordinal);
        Assert.Contains(_dir, ex.Message, StringComparison.Ordinal);
        Assert.Contains("chat_template.jinja", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NamedTemplatesWithoutDefault_FailsListingNames()
    {
        Write("tokenizer_config.json", """{"chat_template": [{"name": "rag", "template": "x"}, {"name": "tool_use", "template": "y"}]}""");

        var ex = Assert.Throws<InvalidDataException>(() => ChatTemplate.Load(_dir));

        Assert.Contains("rag, tool_use", ex.Message, StringComparison.Ordinal);
        Assert.Contains("tokenizer_config.json", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"chat_template": 5}""", "\"chat_template\" must be a string")]
    [InlineData("""{"bos_token": 1, "chat_template": "x"}""", "\"bos_token\" must be a string")]
    [InlineData("""{"chat_template": "x" """, "not valid JSON")]
    public void Load_MalformedConfig_FailsNamingFileAndKey(string json, string expected)
    {
        Write("tokenizer_config.json", json);

        var ex = Assert.Throws<InvalidDataException>(() => ChatTemplate.Load(_dir));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains("tokenizer_config.json", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFolder_Throws()
    {
        Assert.Throws<DirectoryNotFoundException>(() => ChatTemplate.Load(Path.Combine(_dir, "nope")));
    }

    [Fact]
    public void Load_UnsupportedConstruct_FailsAtLoadNotAtRender()
    {
        Write("chat_template.jinja", "{% for m in messages %}\n{% include 'x' %}{% endfor %}");

        var ex = Assert.Throws<TemplateException>(() => ChatTemplate.Load(_dir));

        Assert.Equal(2, ex.Line);
    }

    [Fact]
    public void FromString_NullBos_LeavesVariableUndefined()
    {
        var template = ChatTemplate.FromString("[{{ bos_token }}][{{ bos_token is defined }}][{{ eos_token }}][{{ tools }}][{{ documents }}]", null, "</s>");

        Assert.Equal("[][False][</s>][None][None]", template.Render(Conversation));
    }

    [Fact]
    public void Render_ExtraValues_ConvertedFromDotNetAndJson()
    {
        var template = ChatTemplate.FromString(
            "{{ flag }}|{{ n }}|{{ x }}|{{ names|join(',') }}|{{ obj.k }}|{{ tools|tojson }}|{{ enable_thinking is false }}", null, null);
        using var tools = JsonDocument.Parse("""[{"type": "function", "function": {"name": "f", "parameters": {"a": 1.5}}}]""");

        var text = template.Render(Conversation, extra: new Dictionary<string, object?>
        {
            ["flag"] = true,
            ["n"] = 3,
            ["x"] = 0.25f,
            ["names"] = new[] { "a", "b" },
            ["obj"] = new Dictionary<string, object?> { ["k"] = "v" },
            ["tools"] = tools.RootElement,
            ["enable_thinking"] = false,
        });

        Assert.Equal("True|3|0.25|a,b|v|[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"a\": 1.5}}}]|True", text);
    }

    [Fact]
    public void Render_UnsupportedExtraValue_FailsNamingKey()
    {
        var template = ChatTemplate.FromString("x", null, null);

        var ex = Assert.Throws<ArgumentException>(() => template.Render(Conversation, extra: new Dictionary<string, object?> { ["when"] = DateTime.UnixEpoch }));

        Assert.Contains("extra[\"when\"]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_ExtraRedefiningMessages_Fails()
    {
        var template = ChatTemplate.FromString("x", null, null);

        Assert.Throws<ArgumentException>(() => template.Render(Conversation, extra: new Dictionary<string, object?> { ["messages"] = null }));
    }

    [Fact]
    public void Render_TemplateRejectsConversation_RaisedByTemplate()
    {
        var template = ChatTemplate.FromString("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}", null, null);

        var ex = Assert.Throws<TemplateException>(() => template.Render([new("system", "s"), new("user", "u")]));

        Assert.True(ex.RaisedByTemplate);
        Assert.Equal("System role not supported", ex.Detail);
    }

    [Fact]
    public void Render_StrftimeNow_ReadsTheClock()
    {
        var template = ChatTemplate.FromString("{{ strftime_now('%d %b %Y') }}", null, null);
        template.Clock = new FixedTimeProvider(new DateTime(2025, 1, 31, 23, 0, 0));

        Assert.Equal("31 Jan 2025", template.Render(Conversation));
    }

    [Theory]
    [InlineData("qwen3", "reasoning_content_field")]
    [InlineData("qwen3", "tools")]
    [InlineData("qwen3", "enable_thinking_false")]
    [InlineData("llama-3.1-instruct", "date_string")]
    [InlineData("granite-3.3-instruct", "thinking")]
    public void RenderJson_MessagesAndVariablesAsJson_MatchesJinja2Reference(string templateName, string caseName)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates", "chat-templates.reference.json")));
        var t = doc.RootElement.GetProperty("templates").EnumerateArray().Single(x => x.GetProperty("name").GetString() == templateName);
        var c = t.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == caseName);
        var template = ChatTemplateReferenceTests.Create(t.GetProperty("template").GetString()!, t.GetProperty("bos_token").GetString(), t.GetProperty("eos_token").GetString());

        string text = template.RenderJson(c.GetProperty("messages").GetRawText(), c.GetProperty("add_generation_prompt").GetBoolean(), c.GetProperty("extra").GetRawText());

        Assert.Equal(c.GetProperty("expected").GetString(), text);
    }

    [Theory]
    [InlineData("{\"role\": \"user\"}", null, "messages: expected a JSON array")]
    [InlineData("[{\"content\": \"x\"}]", null, "messages[0]: expected an object with a string \"role\"")]
    [InlineData("[{\"role\": \"user\"", null, "messages: not valid JSON")]
    [InlineData("[]", "[1]", "variables: expected a JSON object")]
    public void RenderJson_MalformedInput_FailsNamingIt(string messages, string? variables, string expected)
    {
        var template = ChatTemplate.FromString("{{ messages }}", null, null);

        var ex = Assert.Throws<InvalidDataException>(() => template.RenderJson(messages, true, variables));

        Assert.StartsWith(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithSpecialTokens_ReplacesOnlyTheGivenTokens()
    {
        var template = ChatTemplate.FromString("[{{ bos_token }}|{{ eos_token }}]", "<s>", "</s>");

        Assert.Equal("[<b>|</s>]", template.WithSpecialTokens("<b>", null).RenderJson("[]"));
        Assert.Equal("[<s>|<e>]", template.WithSpecialTokens(null, "<e>").RenderJson("[]"));
        Assert.Equal("[<s>|</s>]", template.RenderJson("[]"));
    }
}
