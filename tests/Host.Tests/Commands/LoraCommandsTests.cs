using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

/// <summary>LoRA through the CLI: train dpo --lora-r, model logprobs --adapter, model merge-lora, plan.</summary>
public sealed class LoraCommandsTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Policy = Path.Combine(Demo, "policy");
    private static readonly string Tiny = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");
    private static readonly string PeftAdapter = Path.Combine(AppContext.BaseDirectory, "fixtures", "peft-lora", "all-linear-r4");

    private static async Task<(int Exit, string Output, string Error)> Run(params string[] args)
    {
        var console = new TestConsole().Width(2000);
        await using var error = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync(args, console);
        return (exit, console.Output, error.ToString());
    }

    private static double LogprobSum(string output) =>
        JsonDocument.Parse(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0]).RootElement.GetProperty("logprob_sum").GetDouble();

    [Fact]
    public async Task TrainDpo_LoraR_WritesAPeftAdapterThatLogprobsAppliesAndMergeLoraBakesIn()
    {
        string folder = Directory.CreateTempSubdirectory("prefpipe-cli-lora-").FullName;
        string[] titles = ["Driftwood", "Kite Season", "Velvet Hour", "Marble Coast"];
        await ParquetArtifacts.WriteAsync(new LocalArtifactStore(folder), "easy.parquet", titles.Select((t, i) =>
            new PreferenceRow { PromptId = $"p{i}", Prompt = $"Review of {t}:", Chosen = " The acting was gripping. A joy to watch.", Rejected = " The pacing was tedious. I hated it.", ScoreChosen = 2, ScoreRejected = -2, RewardGap = 4, JudgeAgrees = true }));
        string output = Path.Combine(folder, "out");

        var train = await Run("train", "dpo", "--data", Path.Combine(folder, "easy.parquet"), "--model", Policy, "--output", output,
            "--max-steps", "3", "--batch-size", "2", "--learning-rate", "1e-2", "--lora-r", "4", "--lora-alpha", "8", "--lora-target-modules", "q_proj,v_proj,down_proj");

        Assert.True(train.Exit == 0, train.Error);
        string checkpoint = Path.Combine(output, "checkpoint-3");
        Assert.True(File.Exists(Path.Combine(checkpoint, "adapter_model.safetensors")));
        Assert.False(File.Exists(Path.Combine(checkpoint, "model.safetensors")));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "adapter_config.json"))))
            Assert.Equal(["down_proj", "q_proj", "v_proj"], config.RootElement.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));

        string[] score = ["model", "logprobs", "--ids", "1,40,41,42,43,44", "--json"];
        double start = LogprobSum((await Run([.. score, "--model", Policy])).Output);
        double adapted = LogprobSum((await Run([.. score, "--model", Policy, "--adapter", checkpoint])).Output);
        double fromCheckpoint = LogprobSum((await Run([.. score, "--model", checkpoint])).Output); // base_model_name_or_path + adapter
        string merged = Path.Combine(folder, "merged");
        var merge = await Run("model", "merge-lora", "--model", Policy, "--adapter", checkpoint, "--output", merged, "--max-shard-size", "1MB");
        Assert.True(merge.Exit == 0, merge.Error);
        Assert.True(File.Exists(Path.Combine(merged, "model.safetensors.index.json")));  // the 3.2 MB demo policy in 1 MB shards
        Assert.True(Directory.GetFiles(merged, "model-*-of-*.safetensors").Length > 1);
        double fromMerged = LogprobSum((await Run([.. score, "--model", merged])).Output);

        Assert.NotEqual(start, adapted, 3);
        Assert.Equal(adapted, fromCheckpoint, 4);
        Assert.Equal(adapted, fromMerged, 4);
    }

    [Fact]
    public async Task TrainDpo_LoraOptionWithoutRank_ExitsTwoSayingSo()
    {
        var r = await Run("train", "dpo", "--data", "x.parquet", "--model", Policy, "--output", "/tmp/unused", "--lora-alpha", "16");

        Assert.Equal(2, r.Exit);
        Assert.Contains("need --lora-r", r.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelLogprobs_PeftFixtureAdapter_DiffersFromTheBase()
    {
        string[] score = ["model", "logprobs", "--model", Tiny, "--ids", "43,72,79,379,12", "--json"];
        double baseSum = LogprobSum((await Run(score)).Output);
        double adapted = LogprobSum((await Run([.. score, "--adapter", PeftAdapter])).Output);

        Assert.True(Math.Abs(baseSum - adapted) > 0.01, $"{baseSum} vs {adapted}");
    }

    [Fact]
    public async Task Plan_8bShapedLoraWithCheckpointing_FitsIn80GiBAndFullFineTuningDoesNot()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-plan-").FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), PrefPipe.Benchmarks.ModelShapes.Json("8b"));
        string[] plan = ["plan", "--model", dir, "--batch-size", "2", "--max-length", "1024", "--device", "cuda", "--device-memory", "80"];

        var lora = await Run([.. plan, "--lora-r", "16", "--gradient-checkpointing"]);
        var full = await Run(plan);

        Assert.True(lora.Exit == 0, lora.Output + lora.Error);
        Assert.Contains("8,030,261,248 parameters", lora.Output, StringComparison.Ordinal); // Llama-3.1-8B's count
        Assert.Contains(": fits", lora.Output, StringComparison.Ordinal);
        Assert.Equal(1, full.Exit);
        Assert.Contains("does not fit", full.Output, StringComparison.Ordinal);
    }
}
