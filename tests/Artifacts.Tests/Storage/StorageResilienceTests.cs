using Microsoft.Extensions.Options;
using Azure;
using Microsoft.Extensions.DependencyInjection;
using Polly;
using Polly.CircuitBreaker;
using Polly.Simmy;
using Polly.Registry;
using Polly.Retry;
using Polly.Testing;
using Polly.Timeout;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Storage;

public sealed class StorageResilienceTests
{
    [Fact]
    public void Build_Defaults_TotalTimeoutRetryBreakerAttemptTimeoutInThatOrder()
    {
        var descriptor = StorageResilience.Build().GetPipelineDescriptor();

        Assert.Collection(descriptor.Strategies,
            s => Assert.Equal(TimeSpan.FromMinutes(30), Assert.IsType<TimeoutStrategyOptions>(s.Options).Timeout),
            s =>
            {
                var retry = Assert.IsType<RetryStrategyOptions>(s.Options);
                Assert.Equal(4, retry.MaxRetryAttempts);
                Assert.True(retry.UseJitter);
                Assert.Equal(DelayBackoffType.Exponential, retry.BackoffType);
            },
            s => Assert.Equal(0.5, Assert.IsType<CircuitBreakerStrategyOptions>(s.Options).FailureRatio),
            s => Assert.Equal(TimeSpan.FromMinutes(10), Assert.IsType<TimeoutStrategyOptions>(s.Options).Timeout));
    }

    [Fact]
    public void AddStorageResilience_InDi_RegistersTheNamedPipelineWithConfiguredOptions()
    {
        using var provider = new ServiceCollection().AddStorageResilience(o => o.MaxRetryAttempts = 7).BuildServiceProvider();

        var pipeline = provider.GetRequiredService<ResiliencePipelineProvider<string>>().GetPipeline(StorageResilience.PipelineName);

        var retry = pipeline.GetPipelineDescriptor().Strategies.Select(s => s.Options).OfType<RetryStrategyOptions>().Single();
        Assert.Equal(7, retry.MaxRetryAttempts);
    }

    [Theory]
    [InlineData(nameof(StorageResilienceOptions.MaxRetryAttempts))]
    [InlineData(nameof(StorageResilienceOptions.BreakerFailureRatio))]
    [InlineData(nameof(StorageResilienceOptions.AttemptTimeout))]
    public void Validate_OutOfRange_NamesTheSetting(string setting)
    {
        var options = new StorageResilienceOptions();
        switch (setting)
        {
            case nameof(StorageResilienceOptions.MaxRetryAttempts): options.MaxRetryAttempts = 100; break;
            case nameof(StorageResilienceOptions.BreakerFailureRatio): options.BreakerFailureRatio = 0; break;
            default: options.AttemptTimeout = TimeSpan.FromHours(2); break;
        }

        var ex = Assert.Throws<OptionsValidationException>(() => options.Validate());

        Assert.Contains(setting, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(503, true)]
    [InlineData(500, true)]
    [InlineData(429, true)]
    [InlineData(408, true)]
    [InlineData(0, true)]
    [InlineData(404, false)]
    [InlineData(409, false)]
    [InlineData(412, false)]
    [InlineData(403, false)]
    [InlineData(400, false)]
    public void IsTransient_AzureStatus_RetriesOnlyServerAndThrottling(int status, bool expected) =>
        Assert.Equal(expected, StorageResilience.IsTransient(new RequestFailedException(status, "x")));

    [Fact]
    public void IsTransient_OtherExceptions_MissingFilesAndCancellationAreNotRetried()
    {
        Assert.True(StorageResilience.IsTransient(new IOException("reset")));
        Assert.True(StorageResilience.IsTransient(new TimeoutRejectedException()));
        Assert.False(StorageResilience.IsTransient(new FileNotFoundException()));
        Assert.False(StorageResilience.IsTransient(new OperationCanceledException()));
        Assert.False(StorageResilience.IsTransient(new ArgumentException()));
    }

    [Fact]
    public async Task ResilientStore_NonTransientFault_IsNotRetried()
    {
        int calls = 0;
        var pipeline = new ResiliencePipelineBuilder()
            .AddStorageResilience(new StorageResilienceOptions { RetryBaseDelay = TimeSpan.Zero })
            .AddChaosFault(1.0, () => { calls++; return new UnauthorizedAccessException("denied"); })
            .Build();
        var store = new ResilientArtifactStore(new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-nonretry-").FullName), pipeline);

        await Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await store.ExistsAsync("x"));

        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task ResilientStore_TransientFaultsBeyondTheLimit_Fail()
    {
        int calls = 0;
        var pipeline = new ResiliencePipelineBuilder()
            .AddStorageResilience(new StorageResilienceOptions { MaxRetryAttempts = 3, RetryBaseDelay = TimeSpan.Zero })
            .AddChaosFault(1.0, () => { calls++; return new IOException("transient"); })
            .Build();
        var store = new ResilientArtifactStore(new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-retry-").FullName), pipeline);

        await Assert.ThrowsAsync<IOException>(async () => await store.ExistsAsync("x"));

        Assert.Equal(4, calls);
    }
}
