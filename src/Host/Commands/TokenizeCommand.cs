using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrefPipe.Text.Tokenizers;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe tokenize</c>: the ids a Hugging Face tokenizer gives for some texts, as transformers would.</summary>
internal static class TokenizeCommand
{
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(IAnsiConsole? console)
    {
        var tokenizerPath = new Option<string>("--tokenizer")
        {
            Description = "A tokenizer.json file, or a model folder holding one (tokenizer_config.json beside it is read too).",
            Required = true,
        };
        var texts = new Option<string[]>("--text")
        {
            Description = "Text to tokenize; repeat for several.",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var noSpecialTokens = new Option<bool>("--no-special-tokens")
        {
            Description = "Do not apply the post-processor (no BOS/EOS added), like add_special_tokens=False.",
        };
        var json = new Option<bool>("--json") { Description = "Print one {\"text\", \"ids\"} JSON line per text." };
        var command = new Command("tokenize", "Encode texts with a Hugging Face tokenizer.json (ids identical to transformers).")
        {
            tokenizerPath, texts, noSpecialTokens, json,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(tokenizerPath)!;
            ITextTokenizer tokenizer;
            try
            {
                tokenizer = HfTokenizer.Load(path);
            }
            catch (Exception e) when (CliErrors.IsExpected(e))
            {
                return CliErrors.Report("tokenize", e);
            }

            bool addSpecialTokens = !parse.GetValue(noSpecialTokens);
            var results = parse.GetValue(texts)!.Select(t => (Text: t, Ids: tokenizer.Encode(t, addSpecialTokens))).ToList();
            var output = console ?? AnsiConsole.Console;
            if (parse.GetValue(json))
            {
                // Straight to the writer: Spectre would wrap long lines at the console width.
                var writer = output.Profile.Out.Writer;
                foreach (var (text, ids) in results) writer.WriteLine(ToJsonLine(text, ids));
                writer.Flush();
            }
            else
            {
                Render(output, path, results);
            }
            return Cli.ExitCodes.Ok;
        });
        return command;
    }

    internal static string ToJsonLine(string text, IReadOnlyList<int> ids)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("text", text);
            writer.WriteStartArray("ids");
            foreach (int id in ids) writer.WriteNumberValue(id);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static void Render(IAnsiConsole console, string path, List<(string Text, IReadOnlyList<int> Ids)> results)
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(path)}[/]");
        table.AddColumn("Text");
        table.AddColumn(new TableColumn("Tokens").RightAligned());
        table.AddColumn("Ids");
        foreach (var (text, ids) in results)
            table.AddRow(Markup.Escape(text), ids.Count.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(string.Join(' ', ids.Select(i => i.ToString(CultureInfo.InvariantCulture)))));
        console.Write(table);
    }
}
