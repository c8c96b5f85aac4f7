using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace PrefPipe.Ingest;

/// <summary>Registers the ingest stage with a host.</summary>
public static class IngestServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="IngestOptions"/> from <paramref name="section"/> (keys are the property names) and checks them
    /// with the generated validator when the host starts, so a bad value stops the host before any work.
    /// </summary>
    /// <returns>The options builder, for further configuration.</returns>
    public static OptionsBuilder<IngestOptions> AddIngestStage(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<IngestOptions>, IngestOptionsValidator>());
        return services.AddOptions<IngestOptions>().Bind(section).ValidateOnStart();
    }
}
