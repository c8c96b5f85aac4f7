using System.Text.Json;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Templates.Jinja;

namespace PrefPipe.Text.Tests.Templates;

/// <summary>
/// Every real chat template in tests/fixtures/chat-templates rendered over every conversation must match, character
/// for character, what jinja2 renders when configured as transformers configures it (make_reference.py).
/// </summary>
public sealed class ChatTemplateReferenceTests
{
    private static readonly JsonElement Reference = LoadReference();

    private static JsonElement LoadReference()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates", "chat-templates.reference.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.Clone();
    }

    internal static DateTime FixedNow =>
        DateTime.Parse(Reference.GetProperty("fixed_now").GetString()!, System.Globalization.CultureInfo.InvariantCulture);

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var t in Reference.GetProperty("templates").EnumerateArray())
        {
            foreach (var c in t.GetProperty("cases").EnumerateArray())
            {
                data.Add(t.GetProperty("name").GetString()!, c.GetProperty("name").GetString()!);
            }
        }

        return data;
    }

    private static (JsonElement Template, JsonElement Case) Find(string template, string caseName)
    {
        var t = Reference.GetProperty("templates").EnumerateArray().Single(x => x.GetProperty("name").GetString() == template);
        var c = t.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("name").GetString() == caseName);
        return (t, c);
    }

    internal static ChatTemplate Create(string source, string? bos, string? eos)
    {
        var template = ChatTemplate.FromString(source, bos, eos);
        template.Clock = new FixedTimeProvider(FixedNow);
        return template;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Render_RealTemplate_MatchesJinja2Reference(string templateName, string caseName)
    {
        var (t, c) = Find(templateName, caseName);
        var template = Create(t.GetProperty("template").GetString()!, t.GetProperty("bos_token").GetString(), t.GetProperty("eos_token").GetString());
        var messages = c.GetProperty("messages");
        bool agp = c.GetProperty("add_generation_prompt").GetBoolean();
        var extra = c.GetProperty("extra").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        bool plain = messages.EnumerateArray().All(m => m.EnumerateObject().Count() == 2
            && m.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String
            && m.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String);

        string Render() => plain
            ? template.Render(messages.EnumerateArray().Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList(), agp, extra)
            : template.RenderValues((List<object?>)JinjaRuntime.FromJson(messages)!, agp, extra);

        if (c.TryGetProperty("error", out var error))
        {
            var ex = Assert.Throws<TemplateException>(Render);
            bool raisedByTemplate = c.GetProperty("raised_by_template").GetBoolean();
            Assert.Equal(raisedByTemplate, ex.RaisedByTemplate);
            if (raisedByTemplate)
            {
                Assert.Equal(error.GetString(), ex.Detail);
            }
        }
        else
        {
            Assert.Equal(c.GetProperty("expected").GetString(), Render());
        }
    }

    [Fact]
    public void Reference_CoversTheFamiliesTheIssueNames()
    {
        var names = Reference.GetProperty("templates").EnumerateArray().Select(t => t.GetProperty("name").GetString()).ToHashSet();
        foreach (var family in new[]
        {
            "chatml-tiny-llama", "qwen2.5-instruct", "qwen3", "llama-3.1-instruct", "llama-3.2-instruct", "mistral-7b-instruct-v0.3",
            "mistral-nemo-instruct-2407", "llama-2-chat", "gemma-2-it",

            // The survey of current templates (issue 16).
            "qwen3.5", "llama-3-instruct", "gemma-3-it", "gemma-4-it", "phi-4", "phi-4-mini-instruct", "mistral-small-3.2",
            "deepseek-v3", "deepseek-v3.1", "smollm3", "granite-4.0", "command-r-plus-tool-use", "command-r7b-tool-use",
            "jamba-mini-1.7", "seed-oss", "gpt-oss",
        })
        {
            Assert.Contains(family, names);
        }

        Assert.True(Cases().Count >= 400);
    }

    [Fact]
    public void Reference_TemplateFilesAreTheTemplatesRendered()
    {
        foreach (var t in Reference.GetProperty("templates").EnumerateArray())
        {
            var file = Path.Combine(AppContext.BaseDirectory, "fixtures", "chat-templates", t.GetProperty("file").GetString()!);
            Assert.Equal(t.GetProperty("template").GetString(), File.ReadAllText(file));
        }
    }
}

/// <summary>A clock frozen at one local time (UTC zone), for strftime_now.</summary>
internal sealed class FixedTimeProvider(DateTime localNow) : TimeProvider
{
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override DateTimeOffset GetUtcNow() => new(DateTime.SpecifyKind(localNow, DateTimeKind.Utc));
}
