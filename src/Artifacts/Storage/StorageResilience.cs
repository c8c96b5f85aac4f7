using System.ComponentModel.DataAnnotations;
using System.Net.Http;
using Azure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// Settings of the storage resilience pipeline (<see cref="StorageResilience.PipelineName"/>): a total timeout, retries
/// with exponential back-off and jitter on transient faults only, a circuit breaker, and a per-attempt timeout.
/// Bind it from configuration (section <c>Storage:Resilience</c>) or set it in code; <see cref="Validate"/> checks it.
/// </summary>
public sealed class StorageResilienceOptions : IValidatableObject
{
    /// <summary>Limit on one storage operation including all its retries.</summary>
    /// <value>Default 30 minutes (large artifact uploads); 1 second to 1 day.</value>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Limit on one attempt.</summary>
    /// <value>Default 10 minutes; 10 ms to 1 day.</value>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Retries after the first attempt (transient faults only).</summary>
    /// <value>Default 4; 0 to 20.</value>
    [Range(0, 20)]
    public int MaxRetryAttempts { get; set; } = 4;

    /// <summary>Base delay of the exponential back-off (jittered).</summary>
    /// <value>Default 500 ms; 0 to 1 minute.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Upper bound of one back-off delay.</summary>
    /// <value>Default 30 seconds; 0 to 10 minutes.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Share of failed attempts within <see cref="BreakerSamplingDuration"/> that opens the circuit.</summary>
    /// <value>Default 0.5; above 0, at most 1.</value>
    [Range(0.01, 1.0)]
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Attempts needed within the sampling window before the breaker may open.</summary>
    /// <value>Default 20; at least 2.</value>
    [Range(2, int.MaxValue)]
    public int BreakerMinimumThroughput { get; set; } = 20;

    /// <summary>Sampling window of the breaker.</summary>
    /// <value>Default 60 seconds; 0.5 s to 1 hour.</value>
    [Range(typeof(TimeSpan), "00:00:00.500", "01:00:00")]
    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long the circuit stays open (calls fail fast with <see cref="BrokenCircuitException"/>).</summary>
    /// <value>Default 30 seconds; 0.5 s to 1 hour.</value>
    [Range(typeof(TimeSpan), "00:00:00.500", "01:00:00")]
    public TimeSpan BreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws when a setting is out of range, naming it and its limits.</summary>
    /// <param name="name">What the names in messages start with (a configuration section); default: the type name.</param>
    /// <exception cref="OptionsValidationException">A setting is out of range; <see cref="OptionsValidationException.Failures"/> has one line each.</exception>
    public void Validate(string? name = null)
    {
        var result = new StorageResilienceOptionsValidator().Validate(name, this);
        if (result.Failed) throw new OptionsValidationException(name ?? Options.DefaultName, typeof(StorageResilienceOptions), result.Failures);
    }

    /// <inheritdoc />
    IEnumerable<ValidationResult> IValidatableObject.Validate(ValidationContext validationContext)
    {
        if (AttemptTimeout > TotalTimeout)
            yield return new ValidationResult($"AttemptTimeout ({AttemptTimeout}) must not exceed TotalTimeout ({TotalTimeout}).", [nameof(AttemptTimeout), nameof(TotalTimeout)]);
    }
}

/// <summary>
/// The named Polly 8 pipeline for storage I/O, and the rule for what counts as transient.
/// </summary>
/// <remarks>
/// Order, outermost first: total timeout → retry (exponential, jittered, transient faults only) → circuit breaker →
/// attempt timeout. Polly owns retries: stores made by <see cref="ArtifactStores"/> build their Azure clients with
/// <see cref="BlobArtifactStore.CreateClientOptions"/> (SDK <c>Retry.MaxRetries = 0</c>), so a failing request is
/// retried by one layer only, at most <see cref="StorageResilienceOptions.MaxRetryAttempts"/> times, instead of
/// SDK retries × Polly retries.
/// </remarks>
public static class StorageResilience
{
    /// <summary>The pipeline's name in DI and in telemetry.</summary>
    public const string PipelineName = "prefpipe-storage";

    /// <summary>Adds the storage strategies to <paramref name="builder"/> (options are validated first).</summary>
    public static ResiliencePipelineBuilder AddStorageResilience(this ResiliencePipelineBuilder builder, StorageResilienceOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var transient = new PredicateBuilder().Handle<Exception>(IsTransient);
        return builder
            .AddTimeout(new TimeoutStrategyOptions { Name = "storage-total-timeout", Timeout = options.TotalTimeout })
            .AddRetry(new RetryStrategyOptions
            {
                Name = "storage-retry",
                ShouldHandle = transient,
                MaxRetryAttempts = Math.Max(options.MaxRetryAttempts, 0),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.RetryMaxDelay,
            })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                Name = "storage-circuit-breaker",
                ShouldHandle = transient,
                FailureRatio = options.BreakerFailureRatio,
                MinimumThroughput = options.BreakerMinimumThroughput,
                SamplingDuration = options.BreakerSamplingDuration,
                BreakDuration = options.BreakerBreakDuration,
            })
            .AddTimeout(new TimeoutStrategyOptions { Name = "storage-attempt-timeout", Timeout = options.AttemptTimeout });
    }

    /// <summary>Builds the storage pipeline from <paramref name="options"/> (defaults when null).</summary>
    public static ResiliencePipeline Build(StorageResilienceOptions? options = null) =>
        new ResiliencePipelineBuilder { Name = PipelineName }.AddStorageResilience(options ?? new StorageResilienceOptions()).Build();

    /// <summary>
    /// Registers <see cref="StorageResilienceOptions"/> (validated on start) and the named pipeline
    /// <see cref="PipelineName"/>; resolve it with <c>ResiliencePipelineProvider&lt;string&gt;.GetPipeline(PipelineName)</c>.
    /// </summary>
    public static IServiceCollection AddStorageResilience(this IServiceCollection services, Action<StorageResilienceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StorageResilienceOptions>, StorageResilienceOptionsValidator>());
        var optionsBuilder = services.AddOptions<StorageResilienceOptions>();
        if (configure is not null) optionsBuilder.Configure(configure);
        optionsBuilder.ValidateOnStart();
        services.AddResiliencePipeline(PipelineName, (builder, context) =>
            builder.AddStorageResilience(context.ServiceProvider.GetRequiredService<IOptions<StorageResilienceOptions>>().Value));
        return services;
    }

    /// <summary>
    /// Whether a storage fault is worth retrying: timeouts, throttling and server errors (HTTP 408, 429, 500, 502, 503,
    /// 504), connection failures (status 0, <see cref="HttpRequestException"/>), attempt timeouts, and I/O errors other
    /// than a missing file or folder. Never: not found, conflicts, authorisation, bad requests, cancellation.
    /// </summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        RequestFailedException rfe => rfe.Status is 0 or 408 or 429 or 500 or 502 or 503 or 504,
        TimeoutRejectedException => true,
        HttpRequestException => true,
        FileNotFoundException or DirectoryNotFoundException or PathTooLongException => false,
        IOException => true,
        _ => false,
    };
}
