using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PrefPipe.Benchmarks;
using PrefPipe.Models.Runtime;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe bench NAME|all [--device cpu|cuda] [--model 1b|small|demo] [--json FILE] [sizes…]</c>: model-stack speed figures.</summary>
internal static class BenchCommand
{
    private static readonly JsonSerializerOptions IndentedJson = new() { WriteIndented = true };

    public static Command Create(IAnsiConsole? console)
    {
        var name = new Argument<string>("name") { Description = $"Benchmark: {string.Join(", ", PerfSuite.Names)} or all." };
        var sizes = new Argument<string[]>("sizes")
        {
            Description = "Sizes: BxT for training/scoring batches (e.g. 8x1024; DPO pairs = B/2), plain numbers for generation batch sizes (e.g. 1 8 32 64).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var device = new Option<string?>("--device") { Description = "cpu or cuda (default: cuda when libtorch sees a GPU)." };
        var model = new Option<string?>("--model") { Description = "Model shape with random weights: 8b (Llama-3.1-8B), 1b (Llama-3.2-1B), 100m, small, demo (default: 1b on cuda, small on cpu)." };
        var json = new Option<string?>("--json") { Description = "Also write the figures to this JSON file." };
        var steps = new Option<int>("--steps") { Description = "Timed steps per case (median reported).", DefaultValueFactory = _ => 5 };
        var prompt = new Option<int>("--prompt-tokens") { Description = "Generation prompt length.", DefaultValueFactory = _ => 128 };
        var newTokens = new Option<int>("--new-tokens") { Description = "Generation new tokens.", DefaultValueFactory = _ => 128 };
        var loraR = new Option<int>("--lora-r") { Description = "The lora benchmark: LoRA rank (alpha 2r, all-linear); 0 = full fine-tuning.", DefaultValueFactory = _ => 0 };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "The lora benchmark: recompute decoder activations in the backward pass." };
        var refEveryStep = new Option<bool>("--ref-every-step") { Description = "The lora benchmark: the reference forward (adapters off) in every step, as TRL + PEFT by default." };
        var warmup = new Option<int>("--warmup") { Description = "Warm-up steps per case.", DefaultValueFactory = _ => 2 };
        var command = new Command("bench", "Measure training steps, the optimizer, generation, reference and reward passes: tokens/s, peak memory, MFU on CUDA.")
        {
            name, sizes, device, model, json, steps, prompt, newTokens, loraR, checkpointing, refEveryStep, warmup,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var output = console ?? AnsiConsole.Console;
            string which = parse.GetValue(name)!;
            if (which != "all" && !PerfSuite.Names.Contains(which))
            {
                Console.Error.WriteLine($"prefpipe bench: unknown benchmark '{which}'; expected one of {string.Join(", ", PerfSuite.Names)} or all.");
                return Task.FromResult(Cli.ExitCodes.Usage);
            }
            var options = new PerfOptions
            {
                Steps = parse.GetValue(steps), PromptTokens = parse.GetValue(prompt), NewTokens = parse.GetValue(newTokens),
                LoraR = parse.GetValue(loraR), GradientCheckpointing = parse.GetValue(checkpointing), ReferenceEveryStep = parse.GetValue(refEveryStep),
                Warmup = parse.GetValue(warmup),
            };
            var info = TorchRuntime.Describe();
            options.Device = parse.GetValue(device) ?? (info.CudaAvailable ? "cuda" : "cpu");
            options.Model = parse.GetValue(model) ?? (options.Device == "cuda" ? "1b" : "small");
            var batches = new List<int>();
            foreach (string size in parse.GetValue(sizes) ?? [])
            {
                var parts = size.Split('x');
                if (parts.Length == 2 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out int b) && int.TryParse(parts[1], CultureInfo.InvariantCulture, out int t))
                {
                    options.Batch = b;
                    options.SeqLen = t;
                }
                else if (parts.Length == 1 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out int g) && g > 0) batches.Add(g);
                else
                {
                    Console.Error.WriteLine($"prefpipe bench: size '{size}' is neither BxT (e.g. 8x1024) nor a generation batch size (e.g. 32).");
                    return Task.FromResult(Cli.ExitCodes.Usage);
                }
            }
            if (batches.Count > 0) options.GenerationBatches = batches;
            var figures = new List<PerfFigure>();
            try
            {
                foreach (string bench in which == "all" ? PerfSuite.Names : [which])
                {
                    output.MarkupLine($"[bold]{bench}[/] on {options.Device}, model {options.Model}");
                    figures.AddRange(PerfSuite.Run(bench, options, line => output.WriteLine(line), cancellationToken));
                }
            }
            catch (Exception ex) when (CliErrors.IsExpected(ex))
            {
                return Task.FromResult(CliErrors.Report("bench", ex));
            }
            var table = new Table().AddColumn("benchmark").AddColumn("case").AddColumn("metric").AddColumn(new TableColumn("value").RightAligned()).AddColumn("unit");
            foreach (var f in figures)
                table.AddRow(f.Benchmark, Markup.Escape(f.Case), Markup.Escape(f.Metric), f.Value.ToString("G5", CultureInfo.InvariantCulture), Markup.Escape(f.Unit));
            output.Write(table);
            string? jsonPath = parse.GetValue(json);
            if (jsonPath is not null)
            {
                var doc = new
                {
                    device = options.Device,
                    model = options.Model,
                    gpu = info.CudaAvailable ? "cuda" : "none",
                    libtorch = info.LibTorchVersion,
                    date = DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture),
                    figures,
                };
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(doc, IndentedJson));
                output.MarkupLine($"figures written to {Markup.Escape(jsonPath)}");
            }
            return Task.FromResult(Cli.ExitCodes.Ok);
        });
        return command;
    }
}
