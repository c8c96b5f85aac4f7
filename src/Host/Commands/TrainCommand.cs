using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Lora;
using PrefPipe.Text.Templates;
using PrefPipe.Trainer;
using PrefPipe.Trainer.Objectives;
using PrefPipe.Trainer.Ppo;
using PrefPipe.Trainer.Stages;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe train dpo | ppo</c>: the trainer stages on their own.</summary>
internal static class TrainCommand
{
    // Option defaults come from the options classes, so the CLI and a pipeline file default alike.
    private static readonly DpoTrainingOptions DpoDefaults = new();
    private static readonly PpoOptions PpoDefaults = new();

    public static Command Create(IAnsiConsole? console)
    {
        var root = new Command("train", "Train a policy on its own: the dpo stage (DPO family) or the ppo stage.");
        root.Subcommands.Add(Dpo(console));
        root.Subcommands.Add(Ppo(console));
        return root;
    }

    private static Command Dpo(IAnsiConsole? console)
    {
        var data = new Option<string>("--data") { Description = "Preference pairs: Parquet with prompt, chosen, rejected (TRL standard; our preferences/easy artifacts); local, az:// or blob URL.", Required = true };
        var model = new Option<string>("--model") { Description = "Policy model folder.", Required = true };
        var refModel = new Option<string?>("--ref-model") { Description = "Reference model folder (default: the policy)." };
        var loss = new Option<string>("--loss") { Description = $"Objective: {string.Join(", ", ObjectiveOptions.LossTypes)}.", DefaultValueFactory = _ => new ObjectiveOptions().LossType };
        var beta = new Option<double?>("--beta") { Description = "β (default per objective)." };
        var lr = new Option<double>("--learning-rate") { Description = "Peak learning rate.", DefaultValueFactory = _ => DpoDefaults.LearningRate };
        var epochs = new Option<int>("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => DpoDefaults.NumTrainEpochs };
        var maxSteps = new Option<int>("--max-steps") { Description = "Optimizer steps (0 = from epochs).", DefaultValueFactory = _ => DpoDefaults.MaxSteps };
        var batch = new Option<int>("--batch-size") { Description = "Pairs per batch.", DefaultValueFactory = _ => DpoDefaults.PerDeviceTrainBatchSize };
        var maxLength = new Option<int>("--max-length") { Description = "Max prompt + completion tokens.", DefaultValueFactory = _ => DpoDefaults.MaxLength };
        var maxPrompt = new Option<int>("--max-prompt-length") { Description = "Max prompt tokens.", DefaultValueFactory = _ => DpoDefaults.MaxPromptLength };
        var saveSteps = new Option<int>("--save-steps") { Description = "Checkpoint every N steps (0 = at the end).", DefaultValueFactory = _ => DpoDefaults.SaveSteps };
        var output = new Option<string>("--output") { Description = "Output folder: checkpoints, metrics, loss chart. A rerun resumes from its latest checkpoint. Not needed with --dry-run." };
        var maxShardSize = MaxShardSizeOption();
        var chatTemplate = new Option<ChatTemplateMode>("--chat-template") { Description = "For conversational pairs: auto, always or never (as ingest).", DefaultValueFactory = _ => ChatTemplateMode.Auto };
        var dryRun = new Option<bool>("--dry-run") { Description = "Encode the pairs and print them (with --json: one {prompt_id, prompt_ids, chosen_ids, rejected_ids} line per pair); train nothing." };
        var json = new Option<bool>("--json") { Description = "With --dry-run: JSON lines." };
        var lora = new LoraArguments();
        var command = new Command("dpo", "The dpo stage: train a DPO-family objective on preference pairs (reference log-probs computed once and stored).")
            { data, model, refModel, loss, beta, lr, epochs, maxSteps, batch, maxLength, maxPrompt, saveSteps, output, maxShardSize, chatTemplate, dryRun, json };
        lora.AddTo(command);
        var checkpointing = GradientCheckpointingOption();
        command.Options.Add(checkpointing);
        command.SetAction((parse, ct) => Execute(async () =>
        {
            var o = console ?? AnsiConsole.Console;
            var options = new DpoTrainingOptions
            {
                Objective = new ObjectiveOptions { LossType = parse.GetValue(loss)!, Beta = parse.GetValue(beta) },
                LearningRate = parse.GetValue(lr), NumTrainEpochs = parse.GetValue(epochs), MaxSteps = parse.GetValue(maxSteps),
                PerDeviceTrainBatchSize = parse.GetValue(batch), MaxLength = parse.GetValue(maxLength), MaxPromptLength = parse.GetValue(maxPrompt),
                SaveSteps = parse.GetValue(saveSteps), LoggingSteps = 1, MaxShardSize = parse.GetValue(maxShardSize)!,
                Lora = lora.Read(parse), GradientCheckpointing = parse.GetValue(checkpointing),
            };
            options.Validate();
            string policy = parse.GetValue(model)!;
            bool dry = parse.GetValue(dryRun);
            if (!dry && parse.GetValue(output) is null) throw new ArgumentException("--output is required (unless --dry-run)");
            var (dataStore, dataPath) = ArtifactStores.OpenFile(parse.GetValue(data)!);
            var pairs = new StoreFile(dataStore, dataPath);
            var format = new PromptFormat(parse.GetValue(chatTemplate));
            var stage = new DpoStage(options);
            if (dry)
            {
                var encoded = await stage.EncodeAsync(pairs, format.Load(policy), ct).ConfigureAwait(false);
                Skipped(encoded.Rejects);
                if (encoded.Pairs.Count == 0) throw new InvalidDataException($"{pairs.Uri}: no usable pairs ({encoded.Rejects.Count} skipped; reasons above)");
                foreach (var p in encoded.Pairs)
                {
                    if (parse.GetValue(json))
                        o.Profile.Out.Writer.WriteLine(JsonSerializer.Serialize(new { prompt_id = p.Key, prompt_ids = p.PromptIds, chosen_ids = p.ChosenIds, rejected_ids = p.RejectedIds }));
                    else
                        o.WriteLine($"{p.Key}: prompt {p.PromptIds.Length} tokens [{string.Join(' ', p.PromptIds.Take(8))}{(p.PromptIds.Length > 8 ? " …" : "")}], chosen {p.ChosenIds.Length}, rejected {p.RejectedIds.Length}");
                }
                if (!parse.GetValue(json)) o.MarkupLine($"{encoded.Pairs.Count} pairs ({encoded.Rejects.Count} skipped); dry run: nothing trained");
                return Cli.ExitCodes.Ok;
            }
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            var r = await stage.RunAsync(pairs, policy, parse.GetValue(refModel) ?? policy, format, new LocalArtifactStore(outDir), "", outDir,
                new Progress<TrainProgress>(p => o.WriteLine($"step {p.Step}/{p.TotalSteps}  {DpoStage.Describe(p.Metrics)}")), line => o.WriteLine(line), cancellationToken: ct).ConfigureAwait(false);
            Skipped(await ParquetArtifacts.ReadAllAsync<RejectRow>(new LocalArtifactStore(outDir), "rejects.parquet", ct).ConfigureAwait(false));
            o.MarkupLine($"{r.Trained} pairs ({r.Rejects.Rows} skipped); reference log-probs {(r.ReferenceReused ? "reused" : "computed")}");
            o.MarkupLine($"[green]done[/]: {r.Steps} steps; model at {Markup.Escape(r.Model.Directory)}");
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static Option<string> MaxShardSizeOption() => new("--max-shard-size")
    {
        Description = "Largest checkpoint weight file, as transformers' max_shard_size (bytes, or e.g. 500MB, 5GB, 2GiB); larger weights are sharded with model.safetensors.index.json.",
        DefaultValueFactory = _ => new DpoTrainingOptions().MaxShardSize,
    };

    private static Command Ppo(IAnsiConsole? console)
    {
        var prompts = new Option<string>("--prompts") { Description = "Prompts: JSON lines or Parquet with a prompt column; local, az:// or blob URL.", Required = true };
        var model = new Option<string>("--model") { Description = "Starting policy folder.", Required = true };
        var refModel = new Option<string?>("--ref-model") { Description = "Reference model folder (default: the policy)." };
        var rewardModel = new Option<string>("--reward-model") { Description = "Reward model folder (model.onnx + tokenizer.json).", Required = true };
        var output = new Option<string>("--output") { Description = "Output folder (a rerun resumes from its latest checkpoint).", Required = true };
        var steps = new Option<int>("--max-steps") { Description = "PPO iterations.", DefaultValueFactory = _ => PpoDefaults.MaxSteps };
        var lr = new Option<double>("--learning-rate") { Description = "Learning rate.", DefaultValueFactory = _ => PpoDefaults.LearningRate };
        var klCoef = new Option<double>("--kl-coef") { Description = "Initial β_KL.", DefaultValueFactory = _ => PpoDefaults.KlCoef };
        var targetKl = new Option<double?>("--target-kl") { Description = "Adaptive KL target (default: fixed β_KL)." };
        var batch = new Option<int>("--rollout-batch-size") { Description = "Prompts per rollout.", DefaultValueFactory = _ => PpoDefaults.RolloutBatchSize };
        var length = new Option<int>("--response-length") { Description = "New tokens per rollout sample.", DefaultValueFactory = _ => PpoDefaults.ResponseLength };
        var chatTemplate = new Option<ChatTemplateMode>("--chat-template") { Description = "Render prompts with the policy's chat template: auto, always or never (as ingest).", DefaultValueFactory = _ => ChatTemplateMode.Auto };
        var maxShardSize = MaxShardSizeOption();
        var lora = new LoraArguments();
        var command = new Command("ppo", "The ppo stage: PPO against the ONNX reward model with a KL penalty to the reference.")
            { prompts, model, refModel, rewardModel, output, steps, lr, klCoef, targetKl, batch, length, maxShardSize, chatTemplate };
        lora.AddTo(command);
        var checkpointing = GradientCheckpointingOption();
        command.Options.Add(checkpointing);
        command.SetAction((parse, ct) => Execute(async () =>
        {
            var o = console ?? AnsiConsole.Console;
            var options = new PpoOptions
            {
                MaxSteps = parse.GetValue(steps), LearningRate = parse.GetValue(lr), KlCoef = parse.GetValue(klCoef), TargetKl = parse.GetValue(targetKl),
                RolloutBatchSize = parse.GetValue(batch), ResponseLength = parse.GetValue(length), MaxShardSize = parse.GetValue(maxShardSize)!,
                Lora = lora.Read(parse), GradientCheckpointing = parse.GetValue(checkpointing),
            };
            options.Validate();
            var (promptStore, promptPath) = ArtifactStores.OpenFile(parse.GetValue(prompts)!);
            string policy = parse.GetValue(model)!;
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            var r = await new PpoStage(options).RunAsync(new StoreFile(promptStore, promptPath), policy, parse.GetValue(refModel) ?? policy, parse.GetValue(rewardModel)!,
                new PromptFormat(parse.GetValue(chatTemplate)), policy, new LocalArtifactStore(outDir), "", outDir,
                new Progress<TrainProgress>(p => o.WriteLine($"iteration {p.Step}/{p.TotalSteps}  {PpoStage.Describe(p.Metrics)}")), ct).ConfigureAwait(false);
            Skipped(await ParquetArtifacts.ReadAllAsync<RejectRow>(new LocalArtifactStore(outDir), "rejects.parquet", ct).ConfigureAwait(false));
            o.MarkupLine($"[green]done[/]: {r.Prompts} prompts ({r.Rejects.Rows} skipped), {r.Steps} iterations; model at {Markup.Escape(r.Model.Directory)}");
            return Cli.ExitCodes.Ok;
        }));
        return command;
    }

    private static Option<bool> GradientCheckpointingOption() =>
        new("--gradient-checkpointing") { Description = "Recompute each decoder layer's activations in the backward pass: less memory, about one more forward pass of time." };

    /// <summary>The LoRA options of <c>train dpo|ppo</c>: --lora-r turns LoRA on; the others need it.</summary>
    private sealed class LoraArguments
    {
        private static readonly LoraOptions Defaults = new();
        private readonly Option<int?> _r = new("--lora-r") { Description = "Train LoRA adapters of this rank on the frozen policy (PEFT files) instead of every weight." };
        private readonly Option<double?> _alpha = new("--lora-alpha") { Description = $"LoRA alpha: updates scaled by alpha/r (default {Defaults.Alpha})." };
        private readonly Option<double?> _dropout = new("--lora-dropout") { Description = $"Dropout on the adapters' input (default {Defaults.Dropout})." };
        private readonly Option<string?> _targets = new("--lora-target-modules") { Description = $"Comma-separated module names (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all-linear (default {string.Join(",", Defaults.TargetModules)})." };
        private readonly Option<bool> _rslora = new("--use-rslora") { Description = "Rank-stabilised LoRA: scale by alpha/√r." };

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { _r, _alpha, _dropout, _targets, _rslora }) command.Options.Add(option);
        }

        /// <summary>The options, or null without --lora-r.</summary>
        /// <exception cref="ArgumentException">A LoRA option without --lora-r.</exception>
        public LoraOptions? Read(ParseResult parse)
        {
            if (parse.GetValue(_r) is not int r)
            {
                if (parse.GetValue(_alpha) is not null || parse.GetValue(_dropout) is not null || parse.GetValue(_targets) is not null || parse.GetValue(_rslora))
                    throw new ArgumentException("--lora-alpha, --lora-dropout, --lora-target-modules and --use-rslora need --lora-r (the rank), which turns LoRA on");
                return null;
            }
            var options = new LoraOptions
            {
                R = r, Alpha = parse.GetValue(_alpha) ?? Defaults.Alpha, Dropout = parse.GetValue(_dropout) ?? Defaults.Dropout, UseRslora = parse.GetValue(_rslora),
                TargetModules = parse.GetValue(_targets) is { } list ? [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)] : [.. Defaults.TargetModules],
            };
            options.Validate("lora");
            return options;
        }
    }

    /// <summary>Says on stderr which rows were skipped and why.</summary>
    private static void Skipped(IEnumerable<RejectRow> rejects)
    {
        foreach (var r in rejects) Console.Error.WriteLine($"{r.Source} row {r.Row}: skipped: {r.Reason}");
    }

    private static async Task<int> Execute(Func<Task<int>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (Exception e) when (CliErrors.IsExpected(e))
        {
            return CliErrors.Report("train", e);
        }
    }
}
