using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using PrefPipe.Trainer.Ppo;

namespace PrefPipe.Trainer;

/// <summary>Registers the training stages with a host.</summary>
public static class TrainingServiceCollectionExtensions
{
    /// <summary>The subsection of stage 1 (<see cref="DpoTrainingOptions"/>).</summary>
    public const string Stage1Section = "Stage1";

    /// <summary>The subsection of stage 2 (<see cref="PpoOptions"/>).</summary>
    public const string Stage2Section = "Stage2";

    /// <summary>
    /// Binds stage 1's <see cref="DpoTrainingOptions"/> from <paramref name="section"/>'s <c>Stage1</c> and stage 2's
    /// <see cref="PpoOptions"/> from its <c>Stage2</c> (keys are the property names), and checks both with the generated
    /// validators when the host starts, so a bad value stops the host before any work.
    /// </summary>
    public static IServiceCollection AddTrainingStages(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DpoTrainingOptions>, DpoTrainingOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PpoOptions>, PpoOptionsValidator>());
        services.AddOptions<DpoTrainingOptions>().Bind(section.GetSection(Stage1Section)).ValidateOnStart();
        services.AddOptions<PpoOptions>().Bind(section.GetSection(Stage2Section)).ValidateOnStart();
        return services;
    }
}
