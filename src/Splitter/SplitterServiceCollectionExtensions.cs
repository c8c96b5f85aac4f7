using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace PrefPipe.Splitter;

/// <summary>Registers the splitter stage with a host.</summary>
public static class SplitterServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="SplitterOptions"/> from <paramref name="section"/> (keys are the property names) and checks them
    /// with the generated validator when the host starts, so a bad value stops the host before any work.
    /// </summary>
    /// <returns>The options builder, for further configuration.</returns>
    public static OptionsBuilder<SplitterOptions> AddSplitterStage(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SplitterOptions>, SplitterOptionsValidator>());
        return services.AddOptions<SplitterOptions>().Bind(section).ValidateOnStart();
    }
}
