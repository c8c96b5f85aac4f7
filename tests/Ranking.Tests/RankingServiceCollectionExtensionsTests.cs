using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PrefPipe.Ranking.Judges;

namespace PrefPipe.Ranking.Tests;

public sealed class RankingServiceCollectionExtensionsTests
{
    private static ServiceProvider Provider(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddRankingStage(configuration.GetSection("Ranking"));
        return services.BuildServiceProvider();
    }

    private static OptionsValidationException Refused(Dictionary<string, string?> values)
    {
        using var provider = Provider(values);
        return Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
    }

    [Fact]
    public void AddRankingStage_LlmSection_BindsItAndItsMarkersReplaceTheDefault()
    {
        using var provider = Provider(new()
        {
            ["Ranking:Judge"] = "llm", ["Ranking:Reward:BatchSize"] = "32",
            ["Ranking:Llm:Endpoint"] = "http://127.0.0.1:9/v1", ["Ranking:Llm:Model"] = "m", ["Ranking:Llm:AttemptTimeout"] = "00:00:30",
            ["Ranking:Llm:VerdictMarkers:0"] = "A", ["Ranking:Llm:VerdictMarkers:1"] = "B", ["Ranking:Llm:VerdictMarkers:2"] = "tie",
        });

        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<RankingOptions>>().Value;
        Assert.Equal(32, options.Reward.BatchSize);
        Assert.Equal(new Uri("http://127.0.0.1:9/v1"), options.Llm!.Endpoint);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Llm.AttemptTimeout);
        Assert.Equal(["A", "B", "tie"], options.Llm.VerdictMarkers!);
    }

    [Fact]
    public void AddRankingStage_BadRewardModelValue_IsRefusedAtStartNamingItsPath()
    {
        var ex = Refused(new() { ["Ranking:Reward:BatchSize"] = "0" });

        Assert.Contains("The field RankingOptions.Reward.BatchSize must be between 1 and 4096.", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddRankingStage_CrossFieldRulesOfNestedOptions_NameTheirPath()
    {
        var ex = Refused(new()
        {
            ["Ranking:Reward:MaxLength"] = "4096", ["Ranking:Reward:MaxTokensPerBatch"] = "1024",
            ["Ranking:Judge"] = "llm", ["Ranking:Llm:Endpoint"] = "http://127.0.0.1:9/v1", ["Ranking:Llm:Model"] = "m",
            ["Ranking:Llm:PromptTemplate"] = "Which is better? {prompt}",
        });

        Assert.Contains(ex.Failures, f => f.StartsWith("RankingOptions.Reward.MaxTokensPerBatch, RankingOptions.Reward.MaxLength: MaxTokensPerBatch (1024) must be at least MaxLength (4096)", StringComparison.Ordinal));
        Assert.Contains("RankingOptions.Llm.PromptTemplate: judge prompt template lacks the placeholder {response_a}.", ex.Failures);
    }

    [Fact]
    public void AddRankingStage_LlmJudgeWithoutItsSection_IsRefused()
    {
        var ex = Refused(new() { ["Ranking:Judge"] = "llm" });

        Assert.Contains("RankingOptions.Llm: judge is llm but the llm section (endpoint, model) is missing.", ex.Failures);
    }

    [Fact]
    public void Constructor_UnknownJudge_IsRefusedBeforeAnyWork()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => new RankingStage(new RankingOptions { Judge = (JudgeKind)7 }));

        Assert.Contains("RankingOptions.Judge: judge must be reward or llm.", ex.Failures);
    }

    [Fact]
    public void Validate_LlmTemperatureAboveTwo_IsRefused()
    {
        // [Range(0, 2)] compared the temperature as an int: 2.4 became 2 and passed.
        var ex = Assert.Throws<OptionsValidationException>(() => new LlmJudgeOptions { Endpoint = new Uri("http://127.0.0.1:9/"), Model = "m", Temperature = 2.4 }.Validate());

        Assert.Contains("The field LlmJudgeOptions.Temperature must be between 0 and 2.", ex.Message, StringComparison.Ordinal);
    }
}
