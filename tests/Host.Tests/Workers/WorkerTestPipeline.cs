using System.Security.Cryptography;
using PrefPipe.Artifacts.Storage;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Workers;

/// <summary>A small demo pipeline (a slice of the demo prompts, 3 short candidates each) for worker tests.</summary>
internal static class WorkerTestPipeline
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    /// <summary>Writes the pipeline file (and the prompt slice) into <paramref name="folder"/>; storage is <paramref name="storage"/>.</summary>
    public static string Write(string folder, string storage, int prompts = 32)
    {
        Directory.CreateDirectory(folder);
        string slice = Path.Combine(folder, "prompts.jsonl");
        File.WriteAllLines(slice, File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(prompts));
        string yaml = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "pipelines", "demo.yaml"))
            // Relative, as users write them: workers resolve them against the pipeline's folder recorded in run.json.
            .Replace("../assets/demo/prompts.jsonl", "prompts.jsonl", StringComparison.Ordinal)
            .Replace("../assets/demo", Path.GetRelativePath(folder, Demo), StringComparison.Ordinal)
            .Replace("${PREFPIPE_STORAGE:-../runs}", storage, StringComparison.Ordinal)
            .Replace("candidates_per_prompt: 4", "candidates_per_prompt: 3", StringComparison.Ordinal)
            .Replace("max_new_tokens: 48\n  temperature: 1.0\n  batch_size: 16", "max_new_tokens: 20\n  temperature: 1.0\n  batch_size: 16", StringComparison.Ordinal);
        string path = Path.Combine(folder, "pipeline.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    public static async Task<(int Exit, string Output)> Cli(params string[] args)
    {
        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(args, console);
        return (exit, console.Output);
    }

    public static async Task<string> Sha256Async(IArtifactStore store, string path)
    {
        await using var stream = await store.OpenReadAsync(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream));
    }

    /// <summary>Rank artifacts whose bytes are reproducible (comparisons also record each judge call's wall time).</summary>
    public static readonly string[] RankArtifacts = ["scored_candidates", "preferences", "unpaired"];

    /// <summary>Same comparisons, in the same order, apart from the measured latency.</summary>
    public static async Task AssertSameComparisonsAsync(IArtifactStore expectedStore, string expected, IArtifactStore actualStore, string actual)
    {
        var e = await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.ComparisonRow>(expectedStore, expected);
        var a = await PrefPipe.Artifacts.ParquetArtifacts.ReadAllAsync<PrefPipe.Artifacts.Rows.ComparisonRow>(actualStore, actual);
        Assert.NotEmpty(a);
        Assert.Equal(e.Select(c => c with { LatencyMs = 0 }), a.Select(c => c with { LatencyMs = 0 }));
    }
}
