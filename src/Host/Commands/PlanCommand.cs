using System.CommandLine;
using System.Globalization;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Runtime;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe plan --model DIR …</c>: the peak memory of a DPO training step, by part, and whether it fits.</summary>
internal static class PlanCommand
{
    public static Command Create(IAnsiConsole? console)
    {
        var model = new Option<string>("--model") { Description = "Model folder (config.json is read; a LoRA adapter folder plans its base).", Required = true };
        var loraR = new Option<int?>("--lora-r") { Description = "Plan LoRA of this rank (alpha 2r) instead of full fine-tuning." };
        var targets = new Option<string>("--lora-target-modules") { Description = "With --lora-r: comma-separated module names or all-linear.", DefaultValueFactory = _ => LoraTargets.AllLinear };
        var batch = new Option<int>("--batch-size") { Description = "Pairs per micro-batch (per_device_train_batch_size).", DefaultValueFactory = _ => 8 };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per sequence (prompt + completion).", DefaultValueFactory = _ => 1024 };
        var promptLength = new Option<int?>("--max-prompt-length") { Description = "Prompt tokens per sequence (default: half of --max-length)." };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "Plan with activation checkpointing." };
        var device = new Option<string>("--device") { Description = "cpu (float32) or cuda (bfloat16).", DefaultValueFactory = _ => "cpu" };
        var deviceMemory = new Option<double?>("--device-memory") { Description = "Memory available, GiB (default on CPU: the machine's; on CUDA: none, the verdict is left out)." };
        var command = new Command("plan", "Estimate the peak memory of a DPO training step (weights, gradients, optimizer states, activations, logits) and say whether it fits.")
            { model, loraR, targets, batch, maxLength, promptLength, checkpointing, device, deviceMemory };
        command.SetAction(parse =>
        {
            try
            {
                string dir = AdapterModels.ModelFolder(parse.GetValue(model)!);
                var config = DecoderConfig.Load(dir);
                string dev = parse.GetValue(device)!;
                if (dev is not ("cpu" or "cuda")) throw new ArgumentException($"--device must be cpu or cuda, not '{dev}'");
                int length = parse.GetValue(maxLength);
                int prompt = parse.GetValue(promptLength) ?? length / 2;
                if (parse.GetValue(batch) < 1 || length < 2 || prompt < 0 || prompt >= length)
                    throw new ArgumentException("--batch-size must be at least 1, --max-length at least 2 and --max-prompt-length below it");
                LoraOptions? lora = null;
                if (parse.GetValue(loraR) is int r)
                {
                    lora = new LoraOptions { R = r, Alpha = 2 * r, TargetModules = [.. parse.GetValue(targets)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)] };
                    lora.Validate("lora");
                }
                // On CPU the runtime part starts from this process's resident memory with libtorch loaded, as a training process's would.
                var estimate = MemoryPlan.Estimate(config, new MemoryPlanInput(parse.GetValue(batch), length, prompt, dev == "cuda", lora, parse.GetValue(checkpointing),
                    ProcessBaselineBytes: dev == "cuda" ? null : MemoryPlan.ProcessResidentBytes()));
                double? available = parse.GetValue(deviceMemory) is double gib ? gib * (1L << 30) : dev == "cpu" ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : null;
                var output = console ?? AnsiConsole.Console;
                output.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                    $"{config.ModelType}: {estimate.Parameters:N0} parameters, {estimate.Trainable:N0} trainable ({(lora is null ? "full fine-tuning" : $"LoRA r={lora.R}")}{(parse.GetValue(checkpointing) ? ", gradient checkpointing" : "")}), {parse.GetValue(batch)} pairs × {length} tokens on {dev}")));
                // MiB for small plans (a CPU run of a small model), GiB from 10 GiB up.
                bool inGiB = estimate.Total >= 10.0 * (1L << 30);
                var table = new Table().AddColumn("part").AddColumn(new TableColumn(inGiB ? "GiB" : "MiB").RightAligned());
                foreach (var (part, bytes) in estimate.Rows())
                    table.AddRow(part, inGiB ? (bytes / (1L << 30)).ToString("F2", CultureInfo.InvariantCulture) : (bytes / (1L << 20)).ToString("F0", CultureInfo.InvariantCulture));
                output.Write(table);
                output.MarkupLine(Markup.Escape(MemoryPlan.Describe(estimate, available)));
                return available is double a && !estimate.Fits(a) ? Cli.ExitCodes.Failed : Cli.ExitCodes.Ok;
            }
            catch (Exception e) when (CliErrors.IsExpected(e))
            {
                return CliErrors.Report("plan", e);
            }
        });
        return command;
    }
}
