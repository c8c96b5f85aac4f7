using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PrefPipe.Trainer.Optimization;
using PrefPipe.Trainer.Ppo;

namespace PrefPipe.Trainer.Tests;

public sealed class TrainingServiceCollectionExtensionsTests
{
    private static ServiceProvider Provider(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddTrainingStages(configuration.GetSection("Training"));
        return services.BuildServiceProvider();
    }

    private static OptionsValidationException Refused(Dictionary<string, string?> values)
    {
        using var provider = Provider(values);
        return Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
    }

    [Fact]
    public void AddTrainingStages_Sections_BindBothStagesWithTrlDefaultsKept()
    {
        using var provider = Provider(new()
        {
            ["Training:Dpo:LearningRate"] = "5e-05", ["Training:Dpo:LrSchedulerType"] = "Linear",
            ["Training:Dpo:Objective:LossType"] = "mipo", ["Training:Dpo:Objective:Beta"] = "",
            ["Training:Ppo:TargetKl"] = "0.1", ["Training:Ppo:MissingEosPenalty"] = "",
        });

        provider.GetRequiredService<IStartupValidator>().Validate();
        var stage1 = provider.GetRequiredService<IOptions<DpoTrainingOptions>>().Value;
        var stage2 = provider.GetRequiredService<IOptions<PpoOptions>>().Value;
        Assert.Equal(5e-5, stage1.LearningRate);
        Assert.Equal(ScheduleKind.Linear, stage1.LrSchedulerType);
        Assert.Equal("mipo", stage1.Objective.LossType);
        Assert.Null(stage1.Objective.Beta);
        Assert.Equal(20.0, stage1.Objective.EffectiveBeta);
        Assert.Equal(0.1, stage2.TargetKl);
        Assert.Null(stage2.MissingEosPenalty);
    }

    [Fact]
    public void AddTrainingStages_BadObjectiveValue_IsRefusedAtStartNamingItsPath()
    {
        var ex = Refused(new() { ["Training:Dpo:Objective:Beta"] = "-1", ["Training:Dpo:Objective:LossType"] = "dpo++" });

        Assert.Contains(ex.Failures, f => f.Contains("The field DpoTrainingOptions.Objective.Beta must be between", StringComparison.Ordinal));
        Assert.Contains(ex.Failures, f => f.StartsWith("DpoTrainingOptions.Objective.LossType: loss_type 'dpo++' is not known; expected one of sigmoid", StringComparison.Ordinal));
    }

    [Fact]
    public void AddTrainingStages_PromptLongerThanSequence_IsRefusedNamingBothKeys()
    {
        var ex = Refused(new() { ["Training:Dpo:MaxLength"] = "512", ["Training:Dpo:MaxPromptLength"] = "600" });

        Assert.Contains("DpoTrainingOptions.MaxPromptLength, DpoTrainingOptions.MaxLength: max_prompt_length (600) must be less than max_length (512).", ex.Failures);
    }

    [Theory]
    [InlineData("Gamma", "1.4")]  // [Range(0, 1)] compared it as an int (1) and let it through
    [InlineData("Lam", "1.3")]
    [InlineData("ValueModelInit", "reward")]
    public void AddTrainingStages_BadPpoValue_IsRefusedAtStartNamingIt(string key, string value)
    {
        var ex = Refused(new() { [$"Training:Ppo:{key}"] = value });

        Assert.Contains(ex.Failures, f => f.StartsWith($"{key}: ", StringComparison.Ordinal));
    }
}
