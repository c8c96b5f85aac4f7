using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace PrefPipe.Ranking;

/// <summary>Registers the ranking stage with a host.</summary>
public static class RankingServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="RankingOptions"/> (with its <c>Reward</c> and <c>Llm</c> sections) from <paramref name="section"/>
    /// (keys are the property names) and checks them with the generated validator when the host starts, so a bad value
    /// stops the host before any work.
    /// </summary>
    /// <returns>The options builder, for further configuration.</returns>
    public static OptionsBuilder<RankingOptions> AddRankingStage(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RankingOptions>, RankingOptionsValidator>());
        return services.AddOptions<RankingOptions>().Bind(section).ValidateOnStart();
    }
}
