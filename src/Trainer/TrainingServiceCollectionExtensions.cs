using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using PrefPipe.Trainer.Ppo;

namespace PrefPipe.Trainer;

/// <summary>Registers the training stages with a host.</summary>
public static class TrainingServiceCollectionExtensions
{
    /// <summary>The subsection of the dpo stage (<see cref="DpoTrainingOptions"/>).</summary>
    public const string DpoSection = "Dpo";

    /// <summary>The subsection of the ppo stage (<see cref="PpoOptions"/>).</summary>
    public const string PpoSection = "Ppo";

    /// <summary>
    /// Binds the dpo stage's <see cref="DpoTrainingOptions"/> from <paramref name="section"/>'s <c>Dpo</c> and the ppo
    /// stage's <see cref="PpoOptions"/> from its <c>Ppo</c> (keys are the property names), and checks both with the generated
    /// validators when the host starts, so a bad value stops the host before any work.
    /// </summary>
    public static IServiceCollection AddTrainingStages(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DpoTrainingOptions>, DpoTrainingOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PpoOptions>, PpoOptionsValidator>());
        services.AddOptions<DpoTrainingOptions>().Bind(section.GetSection(DpoSection)).ValidateOnStart();
        services.AddOptions<PpoOptions>().Bind(section.GetSection(PpoSection)).ValidateOnStart();
        return services;
    }
}
