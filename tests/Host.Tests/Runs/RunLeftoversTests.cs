using PrefPipe.Host.Commands;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>A run that starts again (run, resume, rerun) removes the staging files a failed attempt left, e.g. on a full disk.</summary>
public sealed class RunLeftoversTests
{
    private static string Pipeline(string dir, string prompts) => SmallPipeline.Write(dir, prompts, "leftovers");

    private static async Task<(int Exit, string Text)> Invoke(params string[] args)
    {
        var (exit, error, output) = await SmallPipeline.InvokeAsync(args);
        return (exit, error + output);
    }

    [Fact]
    public async Task Run_StartingAgainAfterAFailure_RemovesLeftoverPartialFiles()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-partials-").FullName;
        string pipeline = Pipeline(dir, Path.Combine(AppContext.BaseDirectory, "fixtures", "serve", "prompts-a.jsonl"));
        var (first, firstText) = await Invoke("run", pipeline, "--run-id", "p1", "--until", "ingest");
        Assert.True(first == 0, firstText);
        // What a full disk leaves: a half-copied artifact and a half-written checkpoint folder.
        string runDir = Path.Combine(dir, "runs", "p1");
        string half = Path.Combine(runDir, "rank", "preferences.parquet.5f1c.partial");
        string checkpoint = Path.Combine(runDir, "train", "checkpoint-2.partial");
        Directory.CreateDirectory(Path.GetDirectoryName(half)!);
        File.WriteAllText(half, "half");
        Directory.CreateDirectory(checkpoint);
        File.WriteAllText(Path.Combine(checkpoint, "model.safetensors"), "half");

        // run, resume and rerun all start through PipelineRunner.RunAsync under the run lock; this one keeps to ingest.
        var (exit, text) = await Invoke("run", pipeline, "--run-id", "p1", "--until", "ingest");

        Assert.True(exit == 0, text);
        Assert.False(File.Exists(half), text);
        Assert.False(Directory.Exists(checkpoint), text);
        Assert.Contains("removed 2 leftover staging file(s)", text, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(runDir, "ingest", "candidates.parquet")), "committed artifacts stay");
    }
}
