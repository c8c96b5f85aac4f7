using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests;

/// <summary>A small pipeline on the demo models, and the CLI run in-process with its standard error captured.</summary>
internal static class SmallPipeline
{
    public static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    /// <summary>Writes <c>p.yaml</c> in <paramref name="dir"/>: two 4-token candidates per prompt; storage defaults to <c>dir/runs</c>.</summary>
    public static string Write(string dir, string prompts, string name = "small", string? storage = null)
    {
        string file = Path.Combine(dir, "p.yaml");
        File.WriteAllText(file, $"""
            name: {name}
            storage: {storage ?? Path.Combine(dir, "runs")}
            inputs:
              prompts: {prompts}
            models:
              policy: {Path.Combine(Demo, "policy")}
              reward: {Path.Combine(Demo, "reward")}
            ingest:
              candidates_per_prompt: 2
              max_new_tokens: 4
              batch_size: 2
              deduplicate: false
            """);
        return file;
    }

    /// <summary>Runs <c>prefpipe ARGS</c> in-process: exit code, standard error and standard output.</summary>
    public static async Task<(int Exit, string Error, string Output)> InvokeAsync(params string[] args)
    {
        var console = new TestConsole().Width(300);
        await using var error = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync(args, console);
        return (exit, error.ToString(), console.Output);
    }
}
