using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Commands;
using PrefPipe.Host.Runs;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>Empty work is an error: the stage fails with a clear message, the run stops there and nothing looks complete.</summary>
public sealed class EmptyWorkTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static string Pipeline(string dir, string prompts) => SmallPipeline.Write(dir, prompts, "empty");

    private static async Task<(int Exit, string Text)> Invoke(params string[] args)
    {
        var (exit, error, output) = await SmallPipeline.InvokeAsync(args);
        return (exit, error + output);
    }

    [Fact]
    public async Task Run_EveryPromptRejected_IngestFailsNamingTheFileAndTheRunStops()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-empty-ingest-").FullName;
        string prompts = Path.Combine(dir, "all-bad.jsonl");
        File.WriteAllLines(prompts, ["{\"prompt\": \"   \"}", "not json", "{\"text\": \"no prompt key\"}"]);

        var (exit, text) = await Invoke("run", Pipeline(dir, prompts), "--run-id", "e1");

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains($"{prompts}: 0 prompts accepted of 3 rows", text, StringComparison.Ordinal);
        var run = await RunRecord.LoadAsync(new LocalArtifactStore(Path.Combine(dir, "runs")), "e1", CancellationToken.None);
        Assert.NotNull(run);
        Assert.Equal(RunStatus.Failed, run.Status);
        Assert.Equal(StageStatus.Failed, run.Stage(PrefPipe.Host.Runs.PipelineStage.Ingest).Status);
        Assert.All(PrefPipe.Host.Runs.Stages.All.Skip(1), s => Assert.Equal(StageStatus.Pending, run.Stage(s).Status));
        string ingest = Path.Combine(dir, "runs", "e1", "ingest");
        Assert.True(File.Exists(Path.Combine(ingest, "rejects.parquet")), "the rejects say why");
        Assert.False(File.Exists(Path.Combine(ingest, "prompts.parquet")), "no prompts artifact that looks complete");
        Assert.False(File.Exists(Path.Combine(ingest, "candidates.parquet")), "no candidates artifact that looks complete");
        Assert.False(Directory.Exists(Path.Combine(dir, "runs", "e1", "rank")));
    }

    [Fact]
    public async Task Split_EmptyPreferences_FailsAndWritesNothing()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-empty-split-").FullName;
        await ParquetArtifacts.WriteAsync(new LocalArtifactStore(dir), "preferences.parquet", new List<PreferenceRow>());

        var (exit, text) = await Invoke("split", "--preferences", Path.Combine(dir, "preferences.parquet"), "--output", Path.Combine(dir, "split"));

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains("preferences.parquet: 0 preference pairs; nothing to split", text, StringComparison.Ordinal);
        Assert.Empty(Directory.Exists(Path.Combine(dir, "split")) ? Directory.GetFiles(Path.Combine(dir, "split"), "*", SearchOption.AllDirectories) : []);
    }

    [Fact]
    public async Task RunEvaluate_NoUsableEvalPrompts_FailsNamingTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-empty-eval-").FullName;
        string prompts = Path.Combine(dir, "prompts.jsonl");
        File.WriteAllLines(prompts, File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(8));
        string eval = Path.Combine(dir, "eval.jsonl");
        File.WriteAllLines(eval, ["{\"prompt\": \"  \"}", "{\"prompt\": \"\"}"]);
        string file = Pipeline(dir, prompts);
        File.AppendAllText(file, $"""

            training:
              plan: ppo
              ppo:
                max_steps: 1
                rollout_batch_size: 4
                response_length: 4
            """);
        File.WriteAllText(file, File.ReadAllText(file).Replace($"  prompts: {prompts}", $"  prompts: {prompts}\n  eval_prompts: {eval}", StringComparison.Ordinal));

        var (exit, text) = await Invoke("run", file, "--run-id", "v1");

        Assert.NotEqual(0, exit);
        Assert.Contains($"{eval}: no usable evaluation prompts", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Sequence contains no elements", text, StringComparison.Ordinal);
    }
}
