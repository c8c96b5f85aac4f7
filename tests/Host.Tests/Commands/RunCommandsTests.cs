using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

/// <summary>Progress of <c>prefpipe run</c>: bars on a terminal, plain throttled lines elsewhere.</summary>
public sealed class RunCommandsTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static string Pipeline()
    {
        string dir = Directory.CreateTempSubdirectory("prefpipe-progress-").FullName;
        File.WriteAllText(Path.Combine(dir, "p.yaml"), $"""
            name: progress
            storage: {dir}
            inputs:
              prompts: {Path.Combine(AppContext.BaseDirectory, "fixtures", "serve", "prompts-a.jsonl")}
            models:
              policy: {Path.Combine(Demo, "policy")}
              reward: {Path.Combine(Demo, "reward")}
            ingest:
              candidates_per_prompt: 2
              max_new_tokens: 4
              batch_size: 2
              deduplicate: false
            """);
        return Path.Combine(dir, "p.yaml");
    }

    [Fact]
    public async Task Run_OnATerminal_ShowsAProgressBarPerLongStage()
    {
        var console = new TestConsole().Width(160).Interactive().EmitAnsiSequences();

        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(["run", Pipeline(), "--run-id", "p1", "--until", "ingest"], console);

        Assert.Equal(0, exit);
        Assert.Contains("ingest", console.Output, StringComparison.Ordinal);
        Assert.Contains("100%", console.Output, StringComparison.Ordinal);
        Assert.Contains("━", console.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_SetStorageToConnectionString_RefusesBeforeAnyWorkWithoutPrintingTheKey()
    {
        const string key = "cHJlZnBpcGUtdGVzdC1hY2NvdW50LWtleS0wMTIzNDU2Nzg5";
        string pipeline = Pipeline();
        string dir = Path.GetDirectoryName(pipeline)!;
        var console = new TestConsole().Width(160);
        await using var stderr = await StderrCapture.StartAsync();

        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(
            ["run", pipeline, "--run-id", "secret1", "--set", $"storage=DefaultEndpointsProtocol=https;AccountName=a;AccountKey={key};EndpointSuffix=core.windows.net"], console);

        Assert.NotEqual(0, exit);
        Assert.Contains("storage: holds an Azure connection string", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(key, stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(key, console.Output, StringComparison.Ordinal);
        // Nothing was created: no run folder (relative storage resolves beside the file), no work files.
        Assert.Equal([pipeline], Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Run_Redirected_WritesPlainLinesWithoutBars()
    {
        var console = new TestConsole().Width(160);

        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(["run", Pipeline(), "--run-id", "p2", "--until", "ingest"], console);

        Assert.Equal(0, exit);
        Assert.Contains("ingest: done in", console.Output, StringComparison.Ordinal);
        // No bar glyphs and no percentage/elapsed columns (the summary's own "…% went to …" line is text, not a bar).
        Assert.DoesNotContain("━", console.Output, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"\d{1,3}%\s+\d\d:\d\d:\d\d", console.Output);
    }
}
