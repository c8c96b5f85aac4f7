using System.Text.Json;
using PrefPipe.Host.Commands;
using PrefPipe.Models.SafeTensors;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

public sealed class ModelCommandTests
{
    private static readonly string Tiny = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");

    private static async Task<JsonElement> RunJsonAsync(params string[] args)
    {
        var console = new TestConsole().Width(2000);
        int exit = await Cli.InvokeAsync(args, console);
        Assert.Equal(0, exit);
        return JsonDocument.Parse(console.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0]).RootElement.Clone();
    }

    [Fact]
    public async Task Logprobs_ReferenceText_MatchesTransformersSeqLogp()
    {
        using var reference = SafeTensorsFile.Open(Path.Combine(Tiny, "reference.safetensors"));
        float expected = reference.Load("seq_logp").data<float>()[0];

        var line = await RunJsonAsync("model", "logprobs", "--model", Tiny, "--text", "Hello world! The quick brown fox", "--json");

        Assert.Equal(21, line.GetProperty("ids").GetArrayLength());
        Assert.Equal(expected, line.GetProperty("logprob_sum").GetDouble(), 3);
    }

    [Fact]
    public async Task Generate_GreedyOnIds_ReproducesTransformers()
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Tiny, "reference.json")));
        var expected = reference.RootElement.GetProperty("greedy_output_ids").EnumerateArray().Select(e => e.GetInt32()).Skip(4).ToArray();

        var line = await RunJsonAsync("model", "generate", "--model", Tiny, "--prompt-ids", "43,72,79,379", "--max-new-tokens", "12", "--greedy", "--json");

        Assert.Equal(expected, line.GetProperty("new_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([43, 72, 79, 379], line.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public async Task Generate_DemoPolicyText_WritesAReviewAndStopsAtEos()
    {
        string demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy");

        var line = await RunJsonAsync("model", "generate", "--model", demo, "--prompt", "Review of Kite Season:", "--max-new-tokens", "60", "--seed", "3", "--json");

        Assert.Equal("eos", line.GetProperty("finish_reason").GetString());
        Assert.False(string.IsNullOrWhiteSpace(line.GetProperty("text").GetString()));
    }

    [Fact]
    public async Task Logprobs_MissingModel_ExitsTwo()
    {
        Assert.Equal(2, await Cli.InvokeAsync(["model", "logprobs", "--model", "/nonexistent", "--ids", "1,2"], new TestConsole()));
    }
}
