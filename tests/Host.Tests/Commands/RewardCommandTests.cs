using System.Text.Json;
using PrefPipe.Host.Commands;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Commands;

public sealed class RewardCommandTests
{
    private static string Fixture(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "fixtures", .. parts]);

    private static async Task<List<(string Text, double Score)>> ScoreAsync(string model, IEnumerable<string> texts)
    {
        var console = new TestConsole().Width(1000);
        var args = new List<string> { "reward", "score", "--model", model, "--json" };
        foreach (var t in texts) { args.Add("--text"); args.Add(t); }

        int exit = await Cli.InvokeAsync([.. args], console);

        Assert.Equal(0, exit);
        return console.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .Select(e => (e.GetProperty("text").GetString()!, e.GetProperty("score").GetDouble()))
            .ToList();
    }

    [Fact]
    public async Task Score_TinyRewardReferenceTexts_MatchTorchOnnxLogitsWithin1e4()
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Fixture("tiny-reward-onnx", "reference.json")));
        var texts = reference.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToList();
        var logits = reference.RootElement.GetProperty("logits").EnumerateArray().Select(r => r[0].GetDouble()).ToList();

        var scores = await ScoreAsync(Fixture("tiny-reward-onnx"), texts);

        Assert.Equal(texts, scores.Select(s => s.Text));
        for (int i = 0; i < texts.Count; i++)
            Assert.True(Math.Abs(logits[i] - scores[i].Score) <= 1e-4, $"'{texts[i]}': expected {logits[i]}, got {scores[i].Score}");
    }

    [Fact]
    public async Task Score_DemoRewardModel_ReproducesTheSampleRewardsAndPrefersPositiveReviews()
    {
        using var readme = JsonDocument.Parse(File.ReadAllText(Fixture("demo", "README.json")));
        var samples = readme.RootElement.GetProperty("samples").EnumerateArray().Select(s => (Text: s[0].GetString()!, Reward: s[1].GetDouble())).ToList();

        var scores = await ScoreAsync(Fixture("demo", "reward"), samples.Select(s => s.Text));

        for (int i = 0; i < samples.Count; i++)
            Assert.True(Math.Abs(samples[i].Reward - scores[i].Score) <= 1e-4, $"sample {i}: expected {samples[i].Reward}, got {scores[i].Score}");
    }

    [Fact]
    public async Task Score_MissingModelFolder_ExitsTwoNamingTheFile()
    {
        await using var error = await StderrCapture.StartAsync();
        int exit = await Cli.InvokeAsync(["reward", "score", "--model", "/nonexistent/reward", "--text", "x"], new TestConsole());
        Assert.Equal(2, exit);
        Assert.Contains("/nonexistent/reward", error.ToString(), StringComparison.Ordinal);
    }
}
