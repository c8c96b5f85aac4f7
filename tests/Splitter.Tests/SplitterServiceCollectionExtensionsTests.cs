using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PrefPipe.Splitter.Tests;

public sealed class SplitterServiceCollectionExtensionsTests
{
    private static ServiceProvider Provider(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddSplitterStage(configuration.GetSection("Split"));
        return services.BuildServiceProvider();
    }

    [Fact]
    public void AddSplitterStage_Section_BindsTheOptions()
    {
        using var provider = Provider(new() { ["Split:Rule"] = "Threshold", ["Split:Threshold"] = "0.75", ["Split:NegativeGaps"] = "Flip" });

        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<SplitterOptions>>().Value;
        Assert.Equal(SplitRule.Threshold, options.Rule);
        Assert.Equal(0.75, options.Threshold);
        Assert.Equal(NegativeGapPolicy.Flip, options.NegativeGaps);
    }

    [Fact]
    public void AddSplitterStage_OutOfRangeValue_IsRefusedAtStartNamingTheKeyAndTheLimits()
    {
        using var provider = Provider(new() { ["Split:Quantile"] = "1.5" });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains("The field SplitterOptions.Quantile must be between 0 and 1.", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1.2)]   // [Range(0, 1)] compared it as an int (1) and let it through
    [InlineData(-0.4)]
    public void Constructor_QuantileOutsideZeroToOne_IsRefused(double quantile)
    {
        var ex = Assert.Throws<OptionsValidationException>(() => new SplitterStage(new SplitterOptions { Quantile = quantile }));

        Assert.Contains("Quantile", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_NaNThreshold_IsRefused()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => new SplitterStage(new SplitterOptions { Threshold = double.NaN }));

        Assert.Contains("Threshold: split threshold must be a finite number.", ex.Failures);
    }
}
