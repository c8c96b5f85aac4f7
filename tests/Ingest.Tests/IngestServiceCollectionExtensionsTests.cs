using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PrefPipe.Ingest.Tests;

public sealed class IngestServiceCollectionExtensionsTests
{
    private static ServiceProvider Provider(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddIngestStage(configuration.GetSection("Ingest"));
        return services.BuildServiceProvider();
    }

    [Fact]
    public void AddIngestStage_Section_BindsEveryKindOfOption()
    {
        using var provider = Provider(new()
        {
            ["Ingest:CandidatesPerPrompt"] = "6", ["Ingest:Temperature"] = "0.7", ["Ingest:OverLong"] = "Truncate", ["Ingest:StopStrings:0"] = "\n\n",
        });

        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<IngestOptions>>().Value;
        Assert.Equal(6, options.CandidatesPerPrompt);
        Assert.Equal(0.7, options.Temperature);
        Assert.Equal(OverLongPolicy.Truncate, options.OverLong);
        Assert.Equal(["\n\n"], options.StopStrings);
    }

    [Fact]
    public void AddIngestStage_OutOfRangeValue_IsRefusedAtStartNamingTheKeyAndTheLimits()
    {
        using var provider = Provider(new() { ["Ingest:Temperature"] = "9" });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains("The field IngestOptions.Temperature must be between 0 and 5.", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_InvalidOptions_RefusesEveryProblemBeforeAnyWork()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => new IngestStage(new IngestOptions { CandidatesPerPrompt = 1, StopStrings = [""] }));

        Assert.Contains("CandidatesPerPrompt: The field IngestOptions.CandidatesPerPrompt must be between 2 and 64.", ex.Failures);
        Assert.Contains("IngestOptions.StopStrings: stop strings must not be empty.", ex.Failures);
    }
}
