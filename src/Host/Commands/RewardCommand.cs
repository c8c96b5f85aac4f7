using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrefPipe.Models.Reward;
using PrefPipe.Text.Tokenizers;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe reward score</c>: reward-model scores for texts, from an ONNX sequence classifier.</summary>
internal static class RewardCommand
{
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(IAnsiConsole? console)
    {
        var model = new Option<string>("--model") { Description = "Folder with model.onnx and tokenizer.json (a Hugging Face sequence classifier exported to ONNX).", Required = true };
        var texts = new Option<string[]>("--text") { Description = "Text to score (prompt and response as the reward model reads them); repeat for several.", Required = true, Arity = ArgumentArity.OneOrMore };
        var maxLength = new Option<int>("--max-length") { Description = "Longest input in tokens; longer inputs keep their last tokens.", DefaultValueFactory = _ => 1024 };
        var scoreIndex = new Option<int>("--score-index") { Description = "Column of a [batch, n] output to use as the reward.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one {\"text\", \"score\"} JSON line per text." };
        var score = new Command("score", "Score texts with an ONNX reward model.") { model, texts, maxLength, scoreIndex, json };
        score.SetAction((parse, cancellationToken) =>
        {
            string dir = parse.GetValue(model)!;
            var output = console ?? AnsiConsole.Console;
            OnnxRewardModel reward;
            try
            {
                var tokenizer = HfTokenizer.Load(dir);
                reward = OnnxRewardModel.Load(dir, tokenizer, new RewardModelOptions
                {
                    MaxLength = parse.GetValue(maxLength),
                    MaxTokensPerBatch = Math.Max(16_384, parse.GetValue(maxLength)),
                    ScoreIndex = parse.GetValue(scoreIndex),
                });
            }
            catch (Exception e) when (CliErrors.IsExpected(e))
            {
                return Task.FromResult(CliErrors.Report("reward score", e));
            }
            using (reward)
            {
                var inputs = parse.GetValue(texts)!;
                var result = reward.ScoreTexts(inputs, cancellationToken: cancellationToken);
                foreach (var r in result.Rejections)
                    Console.Error.WriteLine($"prefpipe reward score: text {r.Index + 1} not scored: {r.Reason}");
                if (parse.GetValue(json))
                {
                    var writer = output.Profile.Out.Writer;
                    for (int i = 0; i < inputs.Length; i++) writer.WriteLine(ToJsonLine(inputs[i], result.Scores[i]));
                    writer.Flush();
                }
                else
                {
                    var table = new Table().Border(TableBorder.Rounded).AddColumn("text").AddColumn(new TableColumn("score").RightAligned());
                    for (int i = 0; i < inputs.Length; i++)
                        table.AddRow(Markup.Escape(inputs[i]), result.Scores[i].ToString("F4", CultureInfo.InvariantCulture));
                    output.Write(table);
                    output.MarkupLine($"[grey]{Markup.Escape(dir)}: {reward.ExecutionProvider}, padding {reward.PaddingSide.ToString().ToLowerInvariant()}, pad id {reward.PadTokenId}{(reward.ExecutionProviderNote is { } note ? "; " + Markup.Escape(note) : "")}[/]");
                }
                return Task.FromResult(result.Rejections.Count == 0 ? Cli.ExitCodes.Ok : Cli.ExitCodes.Failed);
            }
        });
        return new Command("reward", "Reward-model commands.") { score };
    }

    internal static string ToJsonLine(string text, float score)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, JsonOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("text", text);
            if (float.IsNaN(score)) writer.WriteNull("score");
            else writer.WriteNumber("score", score);
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
