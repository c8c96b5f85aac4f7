using System.Text.Json;
using PrefPipe.Text.Templates.Jinja;

namespace PrefPipe.Text.Templates;

/// <summary>
/// A model's chat template, rendered the way transformers' <c>tokenizer.apply_chat_template(messages,
/// tokenize=False, add_generation_prompt=...)</c> renders it: a Jinja2 interpreter for the subset chat templates use
/// (<c>trim_blocks</c> and <c>lstrip_blocks</c> on, as transformers sets them), with transformers' globals
/// <c>raise_exception</c> and <c>strftime_now</c> and its <c>tojson</c>.
/// </summary>
/// <remarks>
/// Supported: <c>{{ }}</c>, <c>{% %}</c>, <c>{# #}</c>, whitespace control, <c>if/elif/else</c>, <c>for</c> (loop
/// variable, <c>if</c> filter, <c>else</c>, <c>break/continue</c>), <c>set</c> (also <c>namespace()</c> attributes and
/// block sets), <c>macro</c> (with Jinja2's <c>varargs</c>/<c>kwargs</c>), <c>call</c> and <c>filter</c> blocks, <c>*args</c> /
/// <c>**kwargs</c> in calls, <c>raw</c>, <c>generation</c>, dict literals with any hashable keys (str, int, float, bool,
/// tuple; Python's key equality), the common filters (<c>dictsort</c> and <c>sort</c> included), tests, operators and
/// Python string/dict methods. Anything else (<c>include</c>, <c>extends</c>, unknown filters or tests, ...) fails with a
/// <see cref="TemplateException"/> naming the construct and its line and column, never with a silently different text.
/// </remarks>
public sealed class ChatTemplate
{
    private static readonly string[] SpecialTokenKeys = ["bos_token", "eos_token", "unk_token", "pad_token"];

    private readonly JinjaTemplate _template;
    private readonly Dictionary<string, string> _specialTokens;

    private ChatTemplate(string source, JinjaTemplate template, Dictionary<string, string> specialTokens)
    {
        Source = source;
        _template = template;
        _specialTokens = specialTokens;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>The BOS token string passed to the template as <c>bos_token</c>; null when the tokenizer has none.</summary>
    public string? BosToken => _specialTokens.GetValueOrDefault("bos_token");

    /// <summary>The EOS token string passed to the template as <c>eos_token</c>; null when the tokenizer has none.</summary>
    public string? EosToken => _specialTokens.GetValueOrDefault("eos_token");

    /// <summary>The clock <c>strftime_now</c> reads (local time, as Python's <c>datetime.now()</c>); tests pin it.</summary>
    internal TimeProvider Clock { get; set; } = TimeProvider.System;

    /// <summary>
    /// Loads the chat template of a Hugging Face model folder: <c>chat_template.jinja</c> when present (transformers 5
    /// layout), else <c>tokenizer_config.json</c>'s <c>chat_template</c> (a string, or a list of <c>{name, template}</c>
    /// where "default" is used). Special tokens (<c>bos_token</c>, <c>eos_token</c>, <c>unk_token</c>, <c>pad_token</c>)
    /// come from <c>tokenizer_config.json</c>, as strings or <c>{"content": ...}</c> objects.
    /// </summary>
    /// <param name="modelDir">The model folder.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">tokenizer_config.json is malformed, or the model has no chat template.</exception>
    /// <exception cref="TemplateException">The template does not parse or uses an unsupported construct.</exception>
    public static ChatTemplate Load(string modelDir)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        if (!Directory.Exists(modelDir))
        {
            throw new DirectoryNotFoundException($"Model folder '{modelDir}' does not exist.");
        }

        var configPath = Path.Combine(modelDir, "tokenizer_config.json");
        var jinjaPath = Path.Combine(modelDir, "chat_template.jinja");
        var specialTokens = new Dictionary<string, string>(StringComparer.Ordinal);
        string? template = null;
        if (File.Exists(configPath))
        {
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(File.ReadAllText(configPath));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{configPath}: not valid JSON ({e.Message}).", e);
            }

            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    throw new InvalidDataException($"{configPath}: expected a JSON object at the top level.");
                }

                foreach (var key in SpecialTokenKeys)
                {
                    if (ReadToken(root, key, configPath) is { } token)
                    {
                        specialTokens[key] = token;
                    }
                }

                if (root.TryGetProperty("chat_template", out var ct))
                {
                    template = ReadTemplate(ct, configPath);
                }
            }
        }

        if (File.Exists(jinjaPath))
        {
            template = File.ReadAllText(jinjaPath);
        }

        if (template is null)
        {
            throw new InvalidDataException(
                $"Model folder '{modelDir}' has no chat template: " +
                (File.Exists(configPath) ? "tokenizer_config.json has no \"chat_template\" key" : "there is no tokenizer_config.json") +
                " and there is no chat_template.jinja. Base (non-instruct) models usually have none; give the model a template " +
                "or use plain-text prompts.");
        }

        return new ChatTemplate(template, JinjaTemplate.Parse(template), specialTokens);
    }

    /// <summary>Parses a template given as text.</summary>
    /// <param name="template">The Jinja template text.</param>
    /// <param name="bosToken">Passed as <c>bos_token</c>; when null the variable is undefined, as in transformers.</param>
    /// <param name="eosToken">Passed as <c>eos_token</c>; when null the variable is undefined.</param>
    /// <exception cref="TemplateException">The template does not parse or uses an unsupported construct.</exception>
    public static ChatTemplate FromString(string template, string? bosToken, string? eosToken)
    {
        ArgumentNullException.ThrowIfNull(template);
        var specialTokens = new Dictionary<string, string>(StringComparer.Ordinal);
        if (bosToken is not null)
        {
            specialTokens["bos_token"] = bosToken;
        }

        if (eosToken is not null)
        {
            specialTokens["eos_token"] = eosToken;
        }

        return new ChatTemplate(template, JinjaTemplate.Parse(template), specialTokens);
    }

    /// <summary>
    /// Renders a conversation: the text <c>apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=addGenerationPrompt, **extra)</c> returns.
    /// </summary>
    /// <param name="messages">The conversation, passed as <c>messages</c> (a list of <c>{role, content}</c>).</param>
    /// <param name="addGenerationPrompt">Append the assistant turn header so the model answers next.</param>
    /// <param name="extra">
    /// More template variables, as transformers' extra keyword arguments (e.g. <c>enable_thinking</c>,
    /// <c>date_string</c>, <c>tools</c>). Values: null, bool, integers, floating point, string, lists,
    /// string-keyed dictionaries, <see cref="JsonElement"/>.
    /// </param>
    /// <returns>The rendered prompt.</returns>
    /// <exception cref="TemplateException">Rendering failed, or the template rejected the conversation with <c>raise_exception</c> (<see cref="TemplateException.RaisedByTemplate"/>).</exception>
    /// <exception cref="ArgumentException">An <paramref name="extra"/> value cannot be passed to a template, or it redefines <c>messages</c>/<c>add_generation_prompt</c>.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<object?>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ArgumentException($"messages[{i}] is null.", nameof(messages));
            list.Add(JinjaRuntime.FromDotNet(m, $"messages[{i}]"));
        }

        return RenderValues(list, addGenerationPrompt, extra);
    }

    /// <summary>
    /// This template with other special tokens: each non-null argument replaces the model's <c>bos_token</c> or
    /// <c>eos_token</c>; a null one keeps it.
    /// </summary>
    /// <param name="bosToken">The <c>bos_token</c> to pass, or null to keep the current one.</param>
    /// <param name="eosToken">The <c>eos_token</c> to pass, or null to keep the current one.</param>
    /// <returns>A template that renders with those tokens.</returns>
    public ChatTemplate WithSpecialTokens(string? bosToken, string? eosToken)
    {
        var specialTokens = new Dictionary<string, string>(_specialTokens, StringComparer.Ordinal);
        if (bosToken is not null)
        {
            specialTokens["bos_token"] = bosToken;
        }

        if (eosToken is not null)
        {
            specialTokens["eos_token"] = eosToken;
        }

        return new ChatTemplate(Source, _template, specialTokens) { Clock = Clock };
    }

    /// <summary>
    /// Renders a conversation given as JSON, the way transformers takes it: each message an object with a
    /// <c>role</c> and any other keys the template reads (<c>content</c> as a string or a list of parts,
    /// <c>tool_calls</c>, <c>reasoning_content</c>, ...), and more template variables as a JSON object (<c>tools</c>,
    /// <c>documents</c>, <c>enable_thinking</c>, ...).
    /// </summary>
    /// <param name="messagesJson">A JSON array of message objects, passed as <c>messages</c>.</param>
    /// <param name="addGenerationPrompt">Append the assistant turn header so the model answers next.</param>
    /// <param name="variablesJson">A JSON object of more variables, or null for none.</param>
    /// <returns>The rendered prompt.</returns>
    /// <exception cref="InvalidDataException">The messages are not a JSON array of objects with a string role, or the variables are not a JSON object.</exception>
    /// <exception cref="TemplateException">Rendering failed, or the template rejected the conversation with <c>raise_exception</c>.</exception>
    /// <exception cref="ArgumentException">The variables redefine <c>messages</c> or <c>add_generation_prompt</c>.</exception>
    public string RenderJson(string messagesJson, bool addGenerationPrompt = true, string? variablesJson = null)
    {
        ArgumentNullException.ThrowIfNull(messagesJson);
        using var messagesDoc = ParseJson(messagesJson, "messages");
        var root = messagesDoc.RootElement;
        if (root.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"messages: expected a JSON array of {{\"role\", \"content\"}} objects; found {root.ValueKind}.");
        }

        int i = 0;
        foreach (var m in root.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
            {
                throw new InvalidDataException($"messages[{i}]: expected an object with a string \"role\".");
            }

            i++;
        }

        Dictionary<string, object?>? extra = null;
        if (variablesJson is not null)
        {
            using var varsDoc = ParseJson(variablesJson, "variables");
            if (varsDoc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"variables: expected a JSON object of name: value; found {varsDoc.RootElement.ValueKind}.");
            }

            extra = varsDoc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone(), StringComparer.Ordinal);
        }

        return RenderValues((List<object?>)JinjaRuntime.FromJson(root)!, addGenerationPrompt, extra);
    }

    private static JsonDocument ParseJson(string json, string what)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{what}: not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>Renders with messages already in template form (dicts that may carry more keys than role and content).</summary>
    internal string RenderValues(List<object?> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra)
    {
        // transformers: render(messages=..., tools=None, documents=None, add_generation_prompt=..., **special_tokens, **kwargs)
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["tools"] = null,
            ["documents"] = null,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        foreach (var kv in _specialTokens)
        {
            variables[kv.Key] = kv.Value;
        }

        if (extra is not null)
        {
            foreach (var kv in extra)
            {
                if (kv.Key is "messages" or "add_generation_prompt")
                {
                    throw new ArgumentException($"extra[\"{kv.Key}\"]: pass it through the Render parameter instead.", nameof(extra));
                }

                variables[kv.Key] = JinjaRuntime.FromDotNet(kv.Value, $"extra[\"{kv.Key}\"]");
            }
        }

        return _template.Render(variables, () => Clock.GetLocalNow().DateTime);
    }

    private static string? ReadToken(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v))
        {
            return null;
        }

        return v.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw new InvalidDataException($"{path}: \"{key}\" must be a string, null or an object with a string \"content\"; found {v.ValueKind}."),
        };
    }

    private static string ReadTemplate(JsonElement ct, string path)
    {
        switch (ct.ValueKind)
        {
            case JsonValueKind.String:
                return ct.GetString()!;
            case JsonValueKind.Array:
                {
                    var names = new List<string>();
                    foreach (var item in ct.EnumerateArray())
                    {
                        if (item.ValueKind != JsonValueKind.Object ||
                            !item.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String ||
                            !item.TryGetProperty("template", out var text) || text.ValueKind != JsonValueKind.String)
                        {
                            throw new InvalidDataException($"{path}: \"chat_template\" list items must be objects with string \"name\" and \"template\".");
                        }

                        if (name.GetString() == "default")
                        {
                            return text.GetString()!;
                        }

                        names.Add(name.GetString()!);
                    }

                    throw new InvalidDataException(
                        $"{path}: \"chat_template\" has named templates ({string.Join(", ", names)}) but none named \"default\".");
                }

            default:
                throw new InvalidDataException($"{path}: \"chat_template\" must be a string or a list of {{name, template}}; found {ct.ValueKind}.");
        }
    }
}
