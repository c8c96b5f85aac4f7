using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrefPipe.Text.Templates;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe template render</c>: the text a chat template renders for a conversation, as transformers would.</summary>
internal static class TemplateCommand
{
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(IAnsiConsole? console)
    {
        var command = new Command("template", "Chat templates (Jinja, as transformers renders them).");
        command.Subcommands.Add(CreateRender(console));
        return command;
    }

    private static Command CreateRender(IAnsiConsole? console)
    {
        var model = new Option<string?>("--model")
        {
            Description = "A model folder: its chat_template.jinja or tokenizer_config.json chat_template, bos_token and eos_token.",
        };
        var templateFile = new Option<string?>("--template") { Description = "A Jinja template file (instead of --model)." };
        var messages = new Option<string>("--messages")
        {
            Description = "The conversation: a JSON file or JSON text, [{\"role\": \"user\", \"content\": \"…\"}, …]; other message keys (tool_calls, reasoning_content, …) reach the template.",
            Required = true,
        };
        var addGenerationPrompt = new Option<bool>("--add-generation-prompt")
        {
            Description = "Append the assistant turn header (true or false; default true).",
            DefaultValueFactory = _ => true,
        };
        var bos = new Option<string?>("--bos-token") { Description = "The bos_token to pass (overrides the model's)." };
        var eos = new Option<string?>("--eos-token") { Description = "The eos_token to pass (overrides the model's)." };
        var vars = new Option<string?>("--vars")
        {
            Description = "More template variables: a JSON file or JSON object text, e.g. {\"tools\": [...], \"enable_thinking\": false}.",
        };
        var json = new Option<bool>("--json") { Description = "Print {\"text\": \"…\"} on one line." };
        var command = new Command("render", "Print the text a chat template renders for a conversation (apply_chat_template(..., tokenize=False)).")
        {
            model, templateFile, messages, addGenerationPrompt, bos, eos, vars, json,
        };
        command.SetAction(parse =>
        {
            string text;
            try
            {
                string? modelDir = parse.GetValue(model), file = parse.GetValue(templateFile);
                if ((modelDir is null) == (file is null))
                {
                    throw new ArgumentException("give exactly one of --model or --template");
                }

                var template = modelDir is not null
                    ? ChatTemplate.Load(modelDir).WithSpecialTokens(parse.GetValue(bos), parse.GetValue(eos))
                    : ChatTemplate.FromString(ReadFile(file!, "--template"), parse.GetValue(bos), parse.GetValue(eos));
                text = template.RenderJson(FileOrText(parse.GetValue(messages)!), parse.GetValue(addGenerationPrompt),
                    parse.GetValue(vars) is { } v ? FileOrText(v) : null);
            }
            catch (Exception e) when (CliErrors.IsExpected(e))
            {
                return CliErrors.Report("template render", e);
            }

            // Straight to the writer: Spectre would wrap long lines and read markup in the text.
            var writer = (console ?? AnsiConsole.Console).Profile.Out.Writer;
            if (parse.GetValue(json))
            {
                writer.WriteLine(ToJsonLine(text));
            }
            else
            {
                writer.Write(text);
            }

            writer.Flush();
            return Cli.ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>An option that takes a JSON file or JSON text: a path to an existing file is read, anything else is the text.</summary>
    private static string FileOrText(string value) => File.Exists(value) ? File.ReadAllText(value) : value;

    private static string ReadFile(string path, string option) =>
        File.Exists(path) ? File.ReadAllText(path) : throw new FileNotFoundException($"{option}: '{path}' does not exist.", path);

    internal static string ToJsonLine(string text)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("text", text);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
