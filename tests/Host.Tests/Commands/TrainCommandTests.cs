using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using PrefPipe.Models.Decoders;
using Spectre.Console.Testing;
using static TorchSharp.torch;

namespace PrefPipe.Host.Tests.Commands;

/// <summary><c>prefpipe train dpo | ppo</c> through the CLI entry, on the demo policy and reward model with tiny settings.</summary>
public sealed class TrainCommandTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string Policy = Path.Combine(Demo, "policy");

    private static async Task<(int Exit, string Output, string Error)> Run(params string[] args)
    {
        var console = new TestConsole().Width(200);
        await using var error = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync(args, console);
        return (exit, console.Output, error.ToString());
    }

    /// <summary>A TRL standard preference file in the demo's style (our preferences artifact schema).</summary>
    private static async Task<string> PairsFile(string folder)
    {
        string[] titles = ["Driftwood", "Kite Season", "Velvet Hour", "Marble Coast"];
        var rows = titles.SelectMany((t, i) => new[]
        {
            new PreferenceRow { PromptId = $"p{i}a", Prompt = $"Review of {t}:", Chosen = " The acting was gripping. A joy to watch.", Rejected = " The pacing was tedious. I hated it.", ScoreChosen = 2, ScoreRejected = -2, RewardGap = 4, JudgeAgrees = true },
            new PreferenceRow { PromptId = $"p{i}b", Prompt = $"Review of {t}:", Chosen = " I found the story charming. I would watch it again.", Rejected = " The ending was painful. Not recommended.", ScoreChosen = 2, ScoreRejected = -2, RewardGap = 4, JudgeAgrees = true },
        });
        await ParquetArtifacts.WriteAsync(new LocalArtifactStore(folder), "easy.parquet", rows);
        return Path.Combine(folder, "easy.parquet");
    }

    private static string LatestCheckpoint(string output) =>
        Directory.GetDirectories(output, "checkpoint-*").OrderBy(d => int.Parse(Path.GetFileName(d)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture)).Last();

    private static float MaxParameterChange(string checkpoint)
    {
        using var start = CausalLM.Load(Policy, CPU);
        using var trained = CausalLM.Load(checkpoint, CPU);
        using var _ = NewDisposeScope();
        return start.named_parameters().Zip(trained.named_parameters()).Max(p => (p.First.parameter - p.Second.parameter).abs().max().item<float>());
    }

    [Fact]
    public async Task TrainDpo_DemoPairsMipo_WritesLoadableCheckpointAndMetrics()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-train-dpo-").FullName;
        string output = Path.Combine(root, "stage1");

        var (exit, text, error) = await Run("train", "dpo", "--data", await PairsFile(root), "--model", Policy, "--output", output,
            "--loss", "mipo", "--learning-rate", "1e-4", "--max-steps", "2", "--batch-size", "4", "--max-length", "96", "--max-prompt-length", "32");

        Assert.True(exit == 0, $"exit {exit}: {error}");
        Assert.Contains("8 pairs (0 skipped)", text, StringComparison.Ordinal);
        string checkpoint = LatestCheckpoint(output);
        Assert.EndsWith("checkpoint-2", checkpoint, StringComparison.Ordinal);
        Assert.True(MaxParameterChange(checkpoint) > 0, "the checkpoint should hold updated weights");
        var metrics = await ParquetArtifacts.ReadAllAsync<MetricRow>(new LocalArtifactStore(output), "metrics.parquet");
        Assert.Equal([1L, 2L], metrics.Where(m => m.Name == "loss").Select(m => m.Step));
        Assert.All(metrics.Where(m => m.Name == "loss"), m => Assert.True(double.IsFinite(m.Value) && m.Value > 0));
    }

    [Fact]
    public async Task TrainPpo_DemoPrompts_WritesLoadableCheckpointAndMetrics()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-train-ppo-").FullName;
        string prompts = Path.Combine(root, "prompts.jsonl");
        File.WriteAllLines(prompts, File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(8).Append("{\"prompt\": \"\"}"));
        string output = Path.Combine(root, "stage2");

        var (exit, _, error) = await Run("train", "ppo", "--prompts", prompts, "--model", Policy, "--ref-model", Policy, "--reward-model", Path.Combine(Demo, "reward"),
            "--output", output, "--max-steps", "1", "--rollout-batch-size", "4", "--response-length", "8", "--learning-rate", "1e-4");

        Assert.True(exit == 0, $"exit {exit}: {error}");
        // The blank prompt is reported, not silently dropped.
        Assert.Contains("skipped", error, StringComparison.Ordinal);
        Assert.Contains("prompts.jsonl", error, StringComparison.Ordinal);
        string checkpoint = LatestCheckpoint(output);
        Assert.True(MaxParameterChange(checkpoint) > 0, "the checkpoint should hold updated weights");
        var metrics = await ParquetArtifacts.ReadAllAsync<MetricRow>(new LocalArtifactStore(output), "metrics.parquet");
        Assert.Contains(metrics, m => m.Name == "objective/kl" && m.Step == 1 && double.IsFinite(m.Value));
    }

    [Theory]
    [InlineData("dpo", "--loss", "nonsense", "nonsense")]
    [InlineData("dpo", "--batch-size", "0", "PerDeviceTrainBatchSize")]
    [InlineData("ppo", "--max-steps", "0", "MaxSteps")]
    [InlineData("ppo", "--kl-coef", "abc", "abc")]
    public async Task Train_BadOption_ExitsTwoNamingIt(string objective, string option, string value, string named)
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-train-bad-").FullName;
        string[] args = objective == "dpo"
            ? ["train", "dpo", "--data", await PairsFile(root), "--model", Policy, "--output", Path.Combine(root, "out"), option, value]
            : ["train", "ppo", "--prompts", Path.Combine(Demo, "prompts.jsonl"), "--model", Policy, "--reward-model", Path.Combine(Demo, "reward"),
               "--output", Path.Combine(root, "out"), option, value];

        var (exit, _, error) = await Run(args);

        Assert.Equal(2, exit);
        Assert.Contains(named, error, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(Directory.Exists(Path.Combine(root, "out")) ? Directory.GetDirectories(Path.Combine(root, "out"), "checkpoint-*") : []);
    }

    [Fact]
    public async Task TrainDpo_MissingData_ExitsTwoNamingTheFile()
    {
        string output = Directory.CreateTempSubdirectory("prefpipe-train-bad-").FullName;

        var missing = await Run("train", "dpo", "--data", "/nonexistent-prefpipe/easy.parquet", "--model", Policy, "--output", output);

        Assert.Equal(2, missing.Exit);
        Assert.Contains("/nonexistent-prefpipe/easy.parquet", missing.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrainDpoDryRun_ConversationalPairs_PromptTemplatedAsIngestTemplatesIt()
    {
        // TRL conversational pairs (UltraFeedback style) on a policy whose template starts with {{ bos_token }}: the prompt
        // turns are rendered and encoded exactly as ingest encodes a conversation (one BOS), not refused.
        string conversational = Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", "conversational_preference.parquet");
        string policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "templated-bos-policy");
        var encoder = PrefPipe.Text.Tokenizers.PromptEncoder.Load(policy);
        var expected = new Dictionary<string, IReadOnlyList<int>>();
        var (store, path) = ArtifactStores.OpenFile(conversational);
        await foreach (var input in PrefPipe.Artifacts.Inputs.PreferenceSource.ReadAsync(store, path))
            if (input.Pair is { } pair)
                expected[pair.PromptId] = encoder.Encode([.. pair.PromptMessages!.Select(t => new PrefPipe.Text.Tokenizers.Turn(t.Role, t.Content))]).Ids;

        var (exit, text, error) = await Run("train", "dpo", "--data", conversational, "--model", policy, "--max-length", "4096", "--max-prompt-length", "2048", "--dry-run", "--json");

        Assert.True(exit == 0, error);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.NotEmpty(lines);
        foreach (var line in lines)
        {
            var ids = line.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
            Assert.Equal(expected[line.GetProperty("prompt_id").GetString()!], ids);
            Assert.Single(ids.TakeWhile(i => i == encoder.Tokenizer.BosTokenId));
        }
    }

    /// <summary>A TRL conversational pair with the prompt implicit: chosen and rejected are whole conversations sharing their first turns.</summary>
    public sealed class ImplicitConversationalPair
    {
        [System.Text.Json.Serialization.JsonPropertyName("chosen")] public List<ChatTurnRow> Chosen { get; set; } = [];
        [System.Text.Json.Serialization.JsonPropertyName("rejected")] public List<ChatTurnRow> Rejected { get; set; } = [];
    }

    [Fact]
    public async Task TrainDpo_ConversationalFiles_TrainAndEveryRowIsTrainedOrInRejects()
    {
        string root = Directory.CreateTempSubdirectory("prefpipe-train-conv-").FullName;
        string policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "templated-bos-policy");
        // The explicit-prompt fixture (pyarrow, UltraFeedback style) and an implicit-prompt file, one row of which has no
        // assistant turn on its chosen side.
        static List<ChatTurnRow> Turns(params string[] roleContent) => [.. roleContent.Chunk(2).Select(x => new ChatTurnRow { Role = x[0], Content = x[1] })];
        var implicitRows = new List<ImplicitConversationalPair>
        {
            new() { Chosen = Turns("user", "Review of Driftwood:", "assistant", " The acting was gripping."), Rejected = Turns("user", "Review of Driftwood:", "assistant", " I hated it.") },
            new() { Chosen = Turns("system", "Be brief.", "user", "Review of Kite Season:", "assistant", " Charming."), Rejected = Turns("system", "Be brief.", "user", "Review of Kite Season:", "assistant", " Tedious.") },
            new() { Chosen = Turns("user", "Review of Velvet Hour:"), Rejected = Turns("user", "Review of Velvet Hour:", "assistant", " Flat.") },
        };
        await ParquetArtifacts.WriteAsync(new LocalArtifactStore(root), "implicit.parquet", implicitRows);
        string[] files = [Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", "conversational_preference.parquet"), Path.Combine(root, "implicit.parquet")];

        foreach (string data in files)
        {
            string output = Path.Combine(root, Path.GetFileNameWithoutExtension(data));
            var (exit, text, error) = await Run("train", "dpo", "--data", data, "--model", policy, "--output", output,
                "--max-steps", "1", "--batch-size", "2", "--max-length", "1024", "--max-prompt-length", "512");

            Assert.True(exit == 0, $"{data}: exit {exit}: {error}");
            Assert.EndsWith("checkpoint-1", LatestCheckpoint(output), StringComparison.Ordinal);
            var outputStore = new LocalArtifactStore(output);
            var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(outputStore, "rejects.parquet");
            long rowsIn = await CountRowsAsync(data);
            var trained = System.Text.RegularExpressions.Regex.Match(text, @"(\d+) pairs \((\d+) skipped\)");
            Assert.True(trained.Success, text);
            Assert.Equal(rowsIn, long.Parse(trained.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + rejects.Count);
            Assert.Equal(rejects.Count, int.Parse(trained.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
            Assert.Contains(await ParquetArtifacts.ReadAllAsync<MetricRow>(outputStore, "metrics.parquet"), m => m.Name == "loss" && m.Step == 1 && double.IsFinite(m.Value));
        }
        var implicitRejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(new LocalArtifactStore(Path.Combine(root, "implicit")), "rejects.parquet");
        var reject = Assert.Single(implicitRejects);
        Assert.Equal(2, reject.Row);
        Assert.Contains("assistant turn", reject.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("duckdb_ultrafeedback.parquet", 6, new long[] { 3, 4 })]
    [InlineData("duckdb_conversational_prompt.parquet", 4, new long[] { 2 })]
    public async Task TrainDpo_DuckDbWrittenConversationalFile_TrainsAndEveryRowIsTrainedOrInRejects(string file, long rowsInFile, long[] rejectedRows)
    {
        // Files written by DuckDB's Parquet writer (make_duckdb_preferences.mjs): UltraFeedback-binarized style with
        // struct fields in the dataset's order (content, role), several ZSTD row groups and a NULL list; and an explicit
        // conversational prompt with assistant-only chosen/rejected.
        string root = Directory.CreateTempSubdirectory("prefpipe-train-duckdb-").FullName;
        string policy = Path.Combine(AppContext.BaseDirectory, "fixtures", "templated-bos-policy");
        string data = Path.Combine(AppContext.BaseDirectory, "fixtures", "datasets", file);
        string output = Path.Combine(root, "out");

        var (exit, text, error) = await Run("train", "dpo", "--data", data, "--model", policy, "--output", output,
            "--max-steps", "1", "--batch-size", "2", "--max-length", "1024", "--max-prompt-length", "512");

        Assert.True(exit == 0, $"exit {exit}: {error}");
        Assert.EndsWith("checkpoint-1", LatestCheckpoint(output), StringComparison.Ordinal);
        var outputStore = new LocalArtifactStore(output);
        var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(outputStore, "rejects.parquet");
        Assert.Equal(rejectedRows, rejects.Select(r => r.Row).Order());
        Assert.All(rejects, r => Assert.False(string.IsNullOrWhiteSpace(r.Reason)));
        var trained = System.Text.RegularExpressions.Regex.Match(text, @"(\d+) pairs \((\d+) skipped\)");
        Assert.True(trained.Success, text);
        Assert.Equal(rowsInFile - rejectedRows.Length, long.Parse(trained.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(rejectedRows.Length, int.Parse(trained.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains(await ParquetArtifacts.ReadAllAsync<MetricRow>(outputStore, "metrics.parquet"), m => m.Name == "loss" && m.Step == 1 && double.IsFinite(m.Value));
    }

    private static async Task<long> CountRowsAsync(string file)
    {
        long n = 0;
        var (store, path) = ArtifactStores.OpenFile(file);
        await foreach (var _ in PrefPipe.Artifacts.Inputs.PreferenceSource.ReadAsync(store, path)) n++;
        return n;
    }
}
