using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrefPipe.Models.Generation;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.SafeTensors;
using PrefPipe.Models.Scoring;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Tokenizers;
using Spectre.Console;
using static TorchSharp.torch;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe model logprobs|generate</c>: the model stack on a Hugging Face model folder.</summary>
internal static class ModelCommand
{
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(IAnsiConsole? console)
    {
        var root = new Command("model", "Run a Hugging Face causal LM (Llama, Qwen2/3, Mistral, Gemma 2/3, Phi-3, OLMo 2) from a model folder.");
        root.Subcommands.Add(Logprobs(console));
        root.Subcommands.Add(Generate(console));
        root.Subcommands.Add(MergeLora(console));
        return root;
    }

    private static Option<string?> AdapterOption() => new("--adapter") { Description = "A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) applied live on the model." };

    private static Command MergeLora(IAnsiConsole? console)
    {
        var model = new Option<string?>("--model") { Description = "The base model folder (default: the adapter's base_model_name_or_path)." };
        var adapter = new Option<string>("--adapter") { Description = "The PEFT LoRA adapter folder.", Required = true };
        var output = new Option<string>("--output") { Description = "Where the merged model goes: a full Hugging Face checkpoint (config.json, safetensors in the base's dtype, tokenizer).", Required = true };
        var maxShardSize = new Option<string>("--max-shard-size")
        {
            Description = "Largest weight file of the merged model, as transformers' max_shard_size (bytes, or e.g. 500MB, 5GB, 2GiB); larger weights are sharded with model.safetensors.index.json.",
            DefaultValueFactory = _ => "5GB",
        };
        var command = new Command("merge-lora", "Merge a LoRA adapter into its base model's weights (W + scaling·B·A) and write a full checkpoint.") { model, adapter, output, maxShardSize };
        command.SetAction(parse => Run(() =>
        {
            string adapterDir = parse.GetValue(adapter)!;
            string baseDir = parse.GetValue(model) ?? AdapterConfig.Read(adapterDir).ResolveBase(adapterDir);
            string outDir = parse.GetValue(output)!;
            long shardBytes = SafeTensorsWriter.ParseShardSize(parse.GetValue(maxShardSize)!);
            AdapterModels.MergeToFolder(baseDir, adapterDir, outDir, maxShardBytes: shardBytes);
            (console ?? AnsiConsole.Console).MarkupLine($"[green]merged[/] {Markup.Escape(adapterDir)} into {Markup.Escape(baseDir)}: {Markup.Escape(Path.GetFullPath(outDir))}");
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static Option<string> ModelOption() => new("--model") { Description = "Model folder: config.json, model.safetensors (or shards), tokenizer.json.", Required = true };

    private static int[] ParseIds(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int id) && id >= 0 ? id
                : throw new ArgumentException($"token id '{s}' in '{text}' is not valid; expected comma-separated whole numbers 0 or more"))
            .ToArray();

    private static Command Logprobs(IAnsiConsole? console)
    {
        var model = ModelOption();
        var texts = new Option<string[]>("--text") { Description = "Text to score (tokenised as transformers does, special tokens added).", Arity = ArgumentArity.ZeroOrMore };
        var ids = new Option<string[]>("--ids") { Description = "Token ids to score, comma-separated (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var json = new Option<bool>("--json") { Description = "One {\"text\", \"ids\", \"logprob_sum\"} JSON line per input." };
        var adapter = AdapterOption();
        var command = new Command("logprobs", "Σ over positions 1..n−1 of log p(ids[i] | ids[<i]) for each input.") { model, texts, ids, json, adapter };
        command.SetAction(parse => Run(() =>
        {
            string dir = parse.GetValue(model)!;
            var inputs = new List<(string? Text, int[] Ids)>();
            var textValues = parse.GetValue(texts) ?? [];
            ITextTokenizer? tokenizer = textValues.Length > 0 ? HfTokenizer.Load(AdapterModels.ModelFolder(dir)) : null;
            foreach (string t in textValues) inputs.Add((t, tokenizer!.Encode(t).ToArray()));
            foreach (string s in parse.GetValue(ids) ?? []) inputs.Add((null, ParseIds(s)));
            if (inputs.Count == 0) throw new ArgumentException("give --text or --ids");
            if (inputs.Any(i => i.Ids.Length < 2)) throw new ArgumentException("each input needs at least two tokens to score");

            using var lm = AdapterModels.Load(dir);
            using var lora = parse.GetValue(adapter) is { } adapterDir ? LoraAdapter.Load(lm, adapterDir) : null;
            foreach (var input in inputs) lm.Config.CheckTokenIds(input.Ids, input.Text is null ? "--ids" : "--text");
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            int pad = lm.Config.PadTokenId ?? 0;
            using var batch = CompletionBatch.Build(inputs.Select(i => ((IReadOnlyList<int>)i.Ids[..1], (IReadOnlyList<int>)i.Ids[1..])).ToList(), pad, lm.Device);
            var sums = CompletionScorer.Score(lm, batch).LogprobSum.cpu().data<float>().ToArray();
            var output = console ?? AnsiConsole.Console;
            if (parse.GetValue(json))
            {
                for (int i = 0; i < inputs.Count; i++)
                    output.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(new { text = inputs[i].Text, ids = inputs[i].Ids, logprob_sum = (double)sums[i] }, Json));
                output.Profile.Out.Writer.Flush();
            }
            else
            {
                var table = new Table().AddColumn("input").AddColumn("tokens").AddColumn(new TableColumn("logprob_sum").RightAligned());
                for (int i = 0; i < inputs.Count; i++)
                    table.AddRow(Markup.Escape(inputs[i].Text ?? string.Join(',', inputs[i].Ids)), inputs[i].Ids.Length.ToString(CultureInfo.InvariantCulture), sums[i].ToString("F4", CultureInfo.InvariantCulture));
                output.Write(table);
            }
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Generate(IAnsiConsole? console)
    {
        var model = ModelOption();
        var prompt = new Option<string?>("--prompt") { Description = "Prompt text as the model sees it (the tokenizer's specials added unless the text starts with its own BOS)." };
        var messages = new Option<string?>("--messages") { Description = "A conversation as JSON, [{\"role\": \"user\", \"content\": \"…\"}, …], templated as ingest does." };
        var chatTemplate = new Option<ChatTemplateMode>("--chat-template") { Description = "With --messages: auto, always or never (as ingest).", DefaultValueFactory = _ => ChatTemplateMode.Auto };
        var systemPrompt = new Option<string?>("--system-prompt") { Description = "With --messages: a system turn prepended when the conversation has none (as ingest.system_prompt)." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt token ids, comma-separated." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "New tokens at most.", DefaultValueFactory = _ => 32 };
        var greedy = new Option<bool>("--greedy") { Description = "Greedy decoding." };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature.", DefaultValueFactory = _ => 1.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling mass.", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Top-k sampling (0 = off).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print {\"prompt_ids\", \"new_ids\", \"text\"} as JSON." };
        var adapter = AdapterOption();
        var command = new Command("generate", "Generate a continuation; prints the prompt ids the model was fed.") { model, prompt, messages, chatTemplate, systemPrompt, promptIds, maxNew, greedy, temperature, topP, topK, seed, json, adapter };
        command.SetAction((parse, cancellationToken) => Task.FromResult(Run(() =>
        {
            // The pipeline's prompt encoding: what this prints is exactly what ingest feeds the policy.
            var prompted = new PolicyPrompt(parse.GetValue(prompt), parse.GetValue(messages) is { } conversation ? ParseMessages(conversation) : null,
                parse.GetValue(promptIds) is { } given ? ParseIds(given) : null);
            if (new[] { prompted.Text is not null, prompted.Messages is not null, prompted.Ids is not null }.Count(x => x) != 1)
                throw new ArgumentException("give exactly one of --prompt, --messages or --prompt-ids");
            var generated = PolicyGeneration.Generate(parse.GetValue(model)!, prompted, parse.GetValue(chatTemplate), parse.GetValue(systemPrompt), new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                Greedy = parse.GetValue(greedy),
                Temperature = parse.GetValue(temperature),
                TopP = parse.GetValue(topP),
                TopK = parse.GetValue(topK),
            }, parse.GetValue(seed), parse.GetValue(adapter), cancellationToken);
            var (ids, result) = (generated.PromptIds, generated.Result);
            var output = console ?? AnsiConsole.Console;
            if (parse.GetValue(json))
            {
                output.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(new { prompt_ids = ids, new_ids = result.NewIds, text = result.Text, finish_reason = result.FinishReason.ToString().ToLowerInvariant() }, Json));
                output.Profile.Out.Writer.Flush();
            }
            else
            {
                output.MarkupLine($"[grey]prompt ids ({ids.Count}): {string.Join(' ', ids)}[/]");
                output.MarkupLine($"[grey]{Markup.Escape(generated.PromptText)}[/]{Markup.Escape(result.Text ?? "")}");
                output.MarkupLine($"[grey]({result.NewIds.Count} new tokens, finish: {result.FinishReason.ToString().ToLowerInvariant()})[/]");
            }
            return Cli.ExitCodes.Ok;
        })));
        return command;
    }

    /// <summary>Parses --messages: a JSON array of {role, content} objects.</summary>
    private static List<Turn> ParseMessages(string json)
    {
        List<Turn>? turns;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new ArgumentException("--messages: expected a JSON array of {\"role\", \"content\"} objects");
            turns = [.. doc.RootElement.EnumerateArray().Select((m, i) =>
                m.ValueKind == JsonValueKind.Object && m.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String
                    && m.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
                    ? new Turn(role.GetString()!, content.GetString()!)
                    : throw new ArgumentException($"--messages[{i}]: expected an object with string 'role' and 'content'"))];
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"--messages: not valid JSON: {ex.Message}");
        }
        if (turns.Count == 0) throw new ArgumentException("--messages: the conversation is empty; expected at least one user turn");
        return turns;
    }

    private static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (CliErrors.IsExpected(e))
        {
            return CliErrors.Report("model", e);
        }
    }
}
